/**
 * The settlement server on its own, called as the authentication server would call it (mutual
 * TLS with its client certificate), but with requests a compromised or buggy broker could send:
 * the issuer's own checks must hold without trusting the broker — its registry of credentials,
 * its onboarded merchants, the approval rule and the PIN-block binding.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair } from 'jose';
import { newId, sealJson, Secret, signJson, typ } from '@kessai/protocol';
import { createAccount, insertCard, panLookup } from '@kessai/settlement-server';
import { demoMerchantName } from '@kessai/cli/demo-data';
import { BankCaller, type EnrolledDevice } from './support/bank.ts';
import { demoCard, startTestSystem, type TestSystem } from './support/system.ts';

let system: TestSystem;
let bank: BankCaller;
let merchant: { id: string; name: string };
let device: EnrolledDevice;
const payer = demoCard('4242424242424242');

beforeAll(async () => {
  system = await startTestSystem();
  const client = system.pki.leaves['auth-server']!;
  bank = new BankCaller(sakura().url, 'sakura-bank', { caCertPem: system.pki.caCertPem, certPem: client.certPem, keyPem: client.keyPem });
  merchant = { id: system.merchant.merchantId, name: demoMerchantName };
  device = await bank.enroll(payer);
});
afterAll(async () => {
  await bank?.close();
  await system?.stop();
});

function sakura() {
  return system.settlements.find((s) => s.issuer.id === 'sakura-bank')!;
}

const authorize = (body: unknown) => bank.call('POST', '/internal/v1/authorizations', body);

function decision(jws: string): { decision: string; code: string | null; amt: string } {
  return JSON.parse(Buffer.from(jws.split('.')[1]!, 'base64url').toString('utf8'));
}

/** `body` with its approval re-signed by the device after `patch` (a terminal that signed other fields). */
async function withApproval<T extends { approval: string }>(body: T, patch: Record<string, unknown>): Promise<T> {
  const payload = JSON.parse(Buffer.from(body.approval.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
  return { ...body, approval: await signJson({ ...payload, ...patch }, device.privateKey, { typ: typ.approval }) };
}

describe('the settlement server’s own checks at authorization', () => {
  it('approves a well-formed request and answers a retry with the same signed decision', async () => {
    const body = await bank.authorizeBody(device, payer, merchant);
    const first = await authorize(body);
    expect(first.status).toBe(200);
    expect(decision(first.body.authorization)).toMatchObject({ decision: 'approved', code: null, amt: '6500' });
    const second = await authorize(body);
    expect(second.body.authorization).toBe(first.body.authorization);
  });

  it('refuses a credential it never registered with credential_unknown', async () => {
    const stranger = await bank.device(payer);
    expect(await authorize(await bank.authorizeBody(stranger, payer, merchant))).toMatchObject({ status: 403, body: { code: 'credential_unknown' } });
  });

  it('refuses a registered credential id sealed around another device key with credential_unknown', async () => {
    // The broker seals the registered id around a device key of its own: the registry holds another thumbprint.
    const forged = await bank.device(payer);
    const sealed = await sealJson({ v: 1, holder_name: payer.holderName, card_number: payer.cardNumber, expiry: payer.expiry, device_jwk: forged.deviceJwk }, (await bank.keys()).current('enc'), { typ: typ.credential, cred: device.credentialId, iss: 'sakura-bank', dkt: forged.dkt });
    const body = await bank.authorizeBody({ ...forged, credentialId: device.credentialId, sealed }, payer, merchant);
    expect(await authorize(body)).toMatchObject({ status: 403, body: { code: 'credential_unknown' } });
  });

  it('refuses a credential revoked at the bank with credential_revoked, whatever the broker forwards', async () => {
    const revoked = await bank.enroll(payer);
    expect((await authorize(await bank.authorizeBody(revoked, payer, merchant))).status).toBe(200);
    const revocation = await bank.call('POST', `/internal/v1/credentials/${revoked.credentialId}/revoke`, { revoked_by: 'payer' });
    expect(revocation).toMatchObject({ status: 200, body: { credential_id: revoked.credentialId, status: 'revoked', revoked_by: 'payer' } });
    expect(await authorize(await bank.authorizeBody(revoked, payer, merchant))).toMatchObject({ status: 403, body: { code: 'credential_revoked' } });
  });

  it('refuses a merchant it has not onboarded with merchant_unknown', async () => {
    const unknown = { id: newId('mer'), name: 'Shady Imports' };
    expect(await authorize(await bank.authorizeBody(device, payer, unknown))).toMatchObject({ status: 422, body: { code: 'merchant_unknown' } });
  });

  it('refuses a broker that asks for more than the payer approved with approval_mismatch', async () => {
    const body = await bank.authorizeBody(device, payer, merchant, { approvedAmount: '6500', requestedAmount: '650000' });
    expect(await authorize(body)).toMatchObject({ status: 422, body: { code: 'approval_mismatch' } });
  });

  it('refuses an approval that names the merchant under another name than the bank onboarded with approval_mismatch', async () => {
    const body = await bank.authorizeBody(device, payer, merchant, { mnm: 'Kessai Tea House (official)' });
    expect(await authorize(body)).toMatchObject({ status: 422, body: { code: 'approval_mismatch' } });
  });

  it('refuses an approval signed for another merchant id with approval_mismatch', async () => {
    const body = await withApproval(await bank.authorizeBody(device, payer, merchant), { mid: newId('mer') });
    expect(await authorize(body)).toMatchObject({ status: 422, body: { code: 'approval_mismatch' } });
  });

  it('refuses line items other than the ones whose hash the payer signed with approval_mismatch', async () => {
    const body = await bank.authorizeBody(device, payer, merchant);
    const swapped = { ...body, request: { ...body.request, line_items: [{ description: 'Gold bar', quantity: 1, unit_price_minor: '6500' }] } };
    expect(await authorize(swapped)).toMatchObject({ status: 422, body: { code: 'approval_mismatch' } });
  });

  it('refuses an approval signed for another currency with approval_mismatch', async () => {
    const body = await withApproval(await bank.authorizeBody(device, payer, merchant), { cur: 'USD' });
    expect(await authorize(body)).toMatchObject({ status: 422, body: { code: 'approval_mismatch' } });
  });

  it('refuses an approval signed for request A when presented for request B with approval_mismatch', async () => {
    const a = await bank.authorizeBody(device, payer, merchant);
    expect((await authorize(a)).status).toBe(200);
    // The broker replays A's approval and PIN block for a fresh request of the same amount: the signed rid names A.
    const b = { ...a, request: { ...a.request, rid: newId('pr') } };
    expect(await authorize(b)).toMatchObject({ status: 422, body: { code: 'approval_mismatch' } });
  });

  it('refuses a second authorization row for an already spent approval nonce with approval_replayed', async () => {
    const body = await bank.authorizeBody(device, payer, merchant);
    expect((await authorize(body)).status).toBe(200);
    // The stored decision answers a retry by request id; without it, the spent nonce is the backstop.
    await sakura().config.db.query('delete from authorizations where request_id = $1', [body.request.rid]);
    expect(await authorize(body)).toMatchObject({ status: 409, body: { code: 'approval_replayed' } });
  });

  it('refuses an approval not signed by the registered device key with approval_invalid', async () => {
    const stranger = await generateKeyPair('ES256');
    const body = await bank.authorizeBody(device, payer, merchant, { approvalKey: stranger.privateKey });
    expect(await authorize(body)).toMatchObject({ status: 422, body: { code: 'approval_invalid' } });
  });

  it('refuses an approval older than approvalAgeMsMax with approval_stale', async () => {
    const body = await bank.authorizeBody(device, payer, merchant, { iatOffsetS: -3600 });
    expect(await authorize(body)).toMatchObject({ status: 422, body: { code: 'approval_stale' } });
  });

  it('refuses a fresh approval whose own expiry has passed with approval_stale', async () => {
    const now = Math.floor(Date.now() / 1000);
    const body = await withApproval(await bank.authorizeBody(device, payer, merchant), { iat: now - 120, exp: now - 90 });
    expect(await authorize(body)).toMatchObject({ status: 422, body: { code: 'approval_stale' } });
  });

  it('refuses a PIN block encrypted for another request with pin_invalid', async () => {
    const body = await bank.authorizeBody(device, payer, merchant);
    const other = await bank.authorizeBody(device, payer, merchant);
    expect(await authorize({ ...body, pin: other.pin })).toMatchObject({ status: 422, body: { code: 'pin_invalid' } });
  });

  it('refuses a PIN block bound to another approval nonce of the same request with pin_invalid', async () => {
    const rid = newId('pr');
    const body = await bank.authorizeBody(device, payer, merchant, { rid });
    const other = await bank.authorizeBody(device, payer, merchant, { rid });
    expect(await authorize({ ...body, pin: other.pin })).toMatchObject({ status: 422, body: { code: 'pin_invalid' } });
  });

  it('refuses a PIN block bound to another device key with pin_invalid', async () => {
    const rid = newId('pr');
    const nonce = 'bm9uY2Utb2YtdGhpcy1yZXF1ZXN0';
    const other = await bank.enroll(payer);
    const body = await bank.authorizeBody(device, payer, merchant, { rid, nonce });
    const elsewhere = await bank.authorizeBody(other, payer, merchant, { rid, nonce });
    expect(await authorize({ ...body, pin: elsewhere.pin })).toMatchObject({ status: 422, body: { code: 'pin_invalid' } });
  });

  it('declines a request in another currency than the account with currency_mismatch', async () => {
    const response = await authorize(await bank.authorizeBody(device, payer, merchant, { currency: 'USD' }));
    expect(decision(response.body.authorization)).toMatchObject({ decision: 'declined', code: 'currency_mismatch' });
  });

  it('declines a card that has expired since enrollment with card_expired', async () => {
    const expired = { cardNumber: '4000000000000010', holderName: 'OLD CARD', expiry: '01/20', pin: '5820' };
    const config = sakura().config;
    const accountId = await config.db.transaction(async (tx) => {
      const account = await createAccount(tx, 'cardholder', 'JPY', { debitsMustNotExceedCredits: true });
      await insertCard(tx, config.cardKeys, { cardNumber: expired.cardNumber, holderName: expired.holderName, expiry: expired.expiry, accountId: account, status: 'active', pin: new Secret(expired.pin) });
      return account;
    });
    // Registered while the card was valid (the bank refuses an expired card at enrollment): the row enrollment wrote then.
    const old = await bank.device(expired);
    await config.db.query("insert into credentials (id, device_jkt, pan_lookup, account_id, status) values ($1, $2, $3, $4, 'active')", [old.credentialId, old.dkt, panLookup(config.cardKeys, expired.cardNumber), accountId]);
    const response = await authorize(await bank.authorizeBody(old, expired, merchant));
    expect(decision(response.body.authorization)).toMatchObject({ decision: 'declined', code: 'card_expired' });
  });

  it('answers authorization_not_found for a capture of an unknown request', async () => {
    expect(await bank.call('POST', `/internal/v1/authorizations/${newId('pr')}/capture`, { amount_minor: '1' })).toMatchObject({ status: 404, body: { code: 'authorization_not_found' } });
  });
});

describe('the settlement server’s own checks at enrollment', () => {
  const enrollWith = async (card: typeof payer, pin: string = card.pin) => {
    const fresh = await bank.device(card);
    return { fresh, answer: await bank.call('POST', '/internal/v1/enrollments', await bank.enrollmentBody(fresh, pin)) };
  };

  it('registers a device for a card whose holder knows the PIN and answers a signed registration', async () => {
    const { fresh, answer } = await enrollWith(payer);
    expect(answer.status).toBe(200);
    expect(JSON.parse(Buffer.from(answer.body.registration.split('.')[1], 'base64url').toString('utf8'))).toMatchObject({ iss: 'sakura-bank', cred: fresh.credentialId, dkt: fresh.dkt });
  });

  it('refuses a wrong PIN, an unknown card, another holder name or expiry and a blocked card with the one code enrollment_refused', async () => {
    const refused = { status: 422, body: { code: 'enrollment_refused' } };
    expect((await enrollWith(demoCard('4000056655665556'), '0000')).answer).toMatchObject(refused);
    expect((await enrollWith({ ...payer, cardNumber: '4111111111111111' })).answer).toMatchObject(refused);
    expect((await enrollWith({ ...payer, holderName: 'HANAKO SUZUKI' })).answer).toMatchObject(refused);
    expect((await enrollWith({ ...payer, expiry: '11/33' })).answer).toMatchObject(refused);
    expect((await enrollWith(demoCard('4000000000000002'))).answer).toMatchObject(refused);
  });

  it('refuses an enrollment PIN block bound to another device key with pin_invalid', async () => {
    const fresh = await bank.device(payer);
    const other = await bank.device(payer);
    const body = await bank.enrollmentBody(fresh, payer.pin);
    const moved = { ...body, pin_block: (await bank.enrollmentBody(other, payer.pin)).pin_block };
    expect(await bank.call('POST', '/internal/v1/enrollments', moved)).toMatchObject({ status: 422, body: { code: 'pin_invalid' } });
  });

  it('refuses card data sealed for another device key than the one enrolled with credential_device_mismatch', async () => {
    const fresh = await bank.device(payer);
    const other = await bank.device(payer);
    const body = await bank.enrollmentBody(fresh, payer.pin);
    expect(await bank.call('POST', '/internal/v1/enrollments', { ...body, device_jwk: other.deviceJwk })).toMatchObject({ status: 422, body: { code: 'credential_device_mismatch' } });
  });
});
