/**
 * The settlement server on its own, called as the authentication server would call it (mutual
 * TLS with its client certificate), but with requests a compromised or buggy broker could send:
 * the issuer's own checks must hold without trusting the broker.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportJWK, generateKeyPair } from 'jose';
import { Agent, request } from 'undici';
import { base64url, itemsHash, keyEntryFromJwk, KeyRing, newId, sealJson, signJson, thumbprint, typ, type JWK } from '@kessai/protocol';
import { createAccount, insertCard } from '@kessai/settlement-server';
import { Secret } from '@kessai/protocol';
import { demoCard, startTestSystem, type TestSystem } from './support/system.ts';

let system: TestSystem;
let agent: Agent;
let issuerKeys: KeyRing;
const items = [{ description: 'Chawan', quantity: 1, unit_price_minor: '6500' }];

beforeAll(async () => {
  system = await startTestSystem();
  const client = system.pki.leaves['auth-server']!;
  agent = new Agent({ connect: { ca: system.pki.caCertPem, cert: client.certPem, key: client.keyPem } });
  const jwks = await post('GET', '/.well-known/jwks.json');
  issuerKeys = new KeyRing(await Promise.all((jwks.body.keys as JWK[]).map((k) => keyEntryFromJwk(k))));
});
afterAll(async () => {
  await agent?.close();
  await system?.stop();
});

function sakura() {
  return system.settlements.find((s) => s.issuer.id === 'sakura-bank')!;
}

async function post(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any -- reads fields of the issuer's JSON
  const response = await request(`${sakura().url}${path}`, { method, dispatcher: agent, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) });
  return { status: response.statusCode, body: await response.body.json() };
}

interface Card {
  cardNumber: string;
  holderName: string;
  expiry: string;
  pin: string;
}

/** Everything a terminal and an honest broker would produce for one payment, made here from the parts. */
async function authorizeBody(card: Card, options: { approvedAmount?: string; requestedAmount?: string; currency?: string; pin?: string; approvalKey?: CryptoKey; iatOffsetS?: number } = {}) {
  const device = await generateKeyPair('ES256', { extractable: true });
  const { kty, crv, x, y } = await exportJWK(device.publicKey);
  const deviceJwk = { kty: kty as 'EC', crv: crv as 'P-256', x: x!, y: y! };
  const rid = newId('pr');
  const mid = newId('mer');
  const sealed = await sealJson({ v: 1, holder_name: card.holderName, card_number: card.cardNumber, expiry: card.expiry, device_jwk: deviceJwk }, issuerKeys.current('enc'), { typ: typ.credential, cred: newId('cred'), iss: 'sakura-bank', dkt: await thumbprint(deviceJwk) });
  const cur = options.currency ?? 'JPY';
  const ih = await itemsHash(items);
  const nonce = base64url(crypto.getRandomValues(new Uint8Array(18)));
  const approval = await signJson({ rid, mid, amt: options.approvedAmount ?? '6500', cur, ih, iat: Math.floor(Date.now() / 1000) + (options.iatOffsetS ?? 0), nonce }, options.approvalKey ?? device.privateKey, { typ: typ.approval });
  const pin = await sealJson({ pin: options.pin ?? card.pin, rid }, issuerKeys.current('enc'), { typ: typ.pin, rid });
  return { request: { rid, mid, amt: options.requestedAmount ?? options.approvedAmount ?? '6500', cur, ih }, sealed_credential: sealed, approval, pin };
}

function decision(jws: string): { decision: string; code: string | null; amt: string } {
  return JSON.parse(Buffer.from(jws.split('.')[1]!, 'base64url').toString('utf8'));
}

describe('the settlement server’s own checks', () => {
  const payer = () => demoCard('4242424242424242');

  it('approves a well-formed request and answers a retry with the same signed decision', async () => {
    const body = await authorizeBody(payer());
    const first = await post('POST', '/internal/v1/authorizations', body);
    expect(first.status).toBe(200);
    expect(decision(first.body.authorization)).toMatchObject({ decision: 'approved', code: null, amt: '6500' });
    const second = await post('POST', '/internal/v1/authorizations', body);
    expect(second.body.authorization).toBe(first.body.authorization);
  });

  it('refuses a broker that asks for more than the payer approved with approval_mismatch', async () => {
    const body = await authorizeBody(payer(), { approvedAmount: '6500', requestedAmount: '650000' });
    const response = await post('POST', '/internal/v1/authorizations', body);
    expect(response).toMatchObject({ status: 422, body: { code: 'approval_mismatch' } });
  });

  it('refuses an approval not signed by the device key inside the credential with approval_invalid', async () => {
    const stranger = await generateKeyPair('ES256');
    const body = await authorizeBody(payer(), { approvalKey: stranger.privateKey });
    expect(await post('POST', '/internal/v1/authorizations', body)).toMatchObject({ status: 422, body: { code: 'approval_invalid' } });
  });

  it('refuses an approval older than approvalAgeMsMax with approval_stale', async () => {
    const body = await authorizeBody(payer(), { iatOffsetS: -3600 });
    expect(await post('POST', '/internal/v1/authorizations', body)).toMatchObject({ status: 422, body: { code: 'approval_stale' } });
  });

  it('refuses a PIN encrypted for another request with pin_invalid', async () => {
    const body = await authorizeBody(payer());
    const other = await authorizeBody(payer());
    expect(await post('POST', '/internal/v1/authorizations', { ...body, pin: other.pin })).toMatchObject({ status: 422, body: { code: 'pin_invalid' } });
  });

  it('refuses a replayed approval nonce on another request with approval_replayed', async () => {
    const body = await authorizeBody(payer());
    expect((await post('POST', '/internal/v1/authorizations', body)).status).toBe(200);
    // Same credential, approval and PIN, but the stored decision is keyed by request id: a new row for the same nonce is refused.
    await sakura().config.db.query('delete from authorizations where request_id = $1', [body.request.rid]);
    expect(await post('POST', '/internal/v1/authorizations', body)).toMatchObject({ status: 409, body: { code: 'approval_replayed' } });
  });

  it('declines a request in another currency than the account with currency_mismatch', async () => {
    const body = await authorizeBody(payer(), { currency: 'USD' });
    const response = await post('POST', '/internal/v1/authorizations', body);
    expect(decision(response.body.authorization)).toMatchObject({ decision: 'declined', code: 'currency_mismatch' });
  });

  it('declines a card that has expired since enrollment with card_expired', async () => {
    const expired = { cardNumber: '4000000000000010', holderName: 'OLD CARD', expiry: '01/20', pin: '5820' };
    const db = sakura().config.db;
    await db.transaction(async (tx) => {
      const accountId = await createAccount(tx, 'cardholder', 'JPY', { debitsMustNotExceedCredits: true });
      await insertCard(tx, sakura().config.cardKeys, { cardNumber: expired.cardNumber, holderName: expired.holderName, expiry: expired.expiry, accountId, status: 'active', pin: new Secret(expired.pin) });
    });
    const response = await post('POST', '/internal/v1/authorizations', await authorizeBody(expired));
    expect(decision(response.body.authorization)).toMatchObject({ decision: 'declined', code: 'card_expired' });
  });

  it('answers authorization_not_found for a capture of an unknown request', async () => {
    expect(await post('POST', `/internal/v1/authorizations/${newId('pr')}/capture`, { amount_minor: '1' })).toMatchObject({ status: 404, body: { code: 'authorization_not_found' } });
  });
});
