/**
 * The attack suite (issue 5): each test is one attempt an attacker could make against a running
 * Kessai system — real servers, real HTTPS and mutual TLS, real JOSE — and the refusal that stops
 * it. Attacks already proven elsewhere are not repeated here: test/refusals.test.ts (altered JWE
 * header and ciphertext, approvals for another amount, merchant or item hash, replayed approvals,
 * credential swap, cross-merchant reads), test/issuer.test.ts (a broker asking for more than the
 * payer approved) and test/input-validation.test.ts (oversized bodies, forged device proofs,
 * unsigned webhooks). docs/threat-model.md maps each test to its threat.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from 'undici';
import { CompactEncrypt, CompactSign, exportJWK, exportSPKI, generateKeyPair, importJWK, type JWK as JoseJwk } from 'jose';
import { generateKeyEntry, itemsHash, keyEntryFromJwk, limits, newId, sealJson, signDeviceProof, signWebhook, typ, type CreatePaymentRequest } from '@kessai/protocol';
import { MerchantClient, type WalletClient } from '@kessai/sdk';
import { loadOrCreateDevPki } from '@kessai/service';
import { saveWallet } from '@kessai/wallet';
import { demoMerchantName } from '@kessai/cli/demo-data';
import { BankCaller, type EnrolledDevice } from '../support/bank.ts';
import { demoCard, enroll, startTestSystem, type TestSystem } from '../support/system.ts';
import { checkout, orderOf } from '../support/shop.ts';
import { b64, decodePart, expectProblem, sendRaw, tamperPart, type Answer } from './support.ts';
import { codeOf } from '../support/errors.ts';

let system: TestSystem;
let merchant: MerchantClient;
/** Trusts the development CA, presents no client certificate. */
let anonymous: Agent;
/** Presents the authentication server's client certificate: what a (compromised) broker can send to an issuer. */
let broker: Agent;

beforeAll(async () => {
  system = await startTestSystem();
  merchant = new MerchantClient({ maxNetworkRetries: 0, baseUrl: system.auth.url, apiKey: system.merchant.apiKey, caCertPem: system.pki.caCertPem });
  anonymous = new Agent({ connect: { ca: system.pki.caCertPem } });
  const leaf = system.pki.leaves['auth-server']!;
  broker = new Agent({ connect: { ca: system.pki.caCertPem, cert: leaf.certPem, key: leaf.keyPem } });
});
afterAll(async () => {
  await merchant?.close();
  await anonymous?.close();
  await broker?.close();
  await system?.stop();
});

const lines: CreatePaymentRequest['line_items'] = [
  { description: 'Sencha, 100 g', quantity: 2, unit_price_minor: '1200' },
  { description: 'Chasen', quantity: 1, unit_price_minor: '3300' },
];

function paymentRequest(wallet: WalletClient, overrides: Partial<CreatePaymentRequest> = {}) {
  const body: CreatePaymentRequest = { order_id: `order-${randomBytes(4).toString('hex')}`, currency: 'JPY', amount_minor: '5700', line_items: lines, wallet_handle: wallet.wallet.credential_id, ...overrides };
  return merchant.createPaymentRequest(body, randomBytes(12).toString('hex'));
}

/** A pending request for `wallet`, the approval body its terminal would send, and its decoded parts. */
async function pendingApproval(wallet: WalletClient, cardNumber: string) {
  const created = await paymentRequest(wallet);
  const request = await wallet.fetchRequest(created.id);
  const body = await wallet.approvalBody(request, demoCard(cardNumber).pin);
  return { id: created.id, request, body, credentialHeader: decodePart(body.sealed_credential, 0), approvalPayload: decodePart(body.approval, 1) };
}

async function statusOf(id: string): Promise<string> {
  return (await merchant.getPaymentRequest(id)).status;
}

const modes = [
  ['re-seal', '4242424242424242'],
  ['pass-through', '5555555555554444'],
] as const;

// ---- tampered and foreign JWEs --------------------------------------------------------------------

describe('a sealed credential altered in any part is refused, in both modes', () => {
  const parts = [
    ['encrypted key', 1],
    ['initialisation vector', 2],
    ['authentication tag', 4],
  ] as const;
  describe.each(modes)('%s', (_mode, cardNumber) => {
    let wallet: WalletClient;
    beforeAll(async () => {
      wallet = await enroll(system, cardNumber);
    });
    afterAll(async () => {
      await wallet?.close();
    });

    it.each(parts)('refuses a sealed credential whose %s was altered with credential_invalid, and leaves the request pending', async (_part, index) => {
      const { id, body } = await pendingApproval(wallet, cardNumber);
      expect(await codeOf(wallet.sendApproval(id, { ...body, sealed_credential: tamperPart(body.sealed_credential, index) }))).toBe('credential_invalid');
      expect(await statusOf(id)).toBe('pending');
    });

    it('refuses a sealed credential under a key nobody holds (unknown kid) with credential_invalid', async () => {
      const { id, body, credentialHeader } = await pendingApproval(wallet, cardNumber);
      const stranger = await generateKeyPair('ECDH-ES+A256KW', { crv: 'P-256', extractable: true });
      const strangerKey = await keyEntryFromJwk({ ...(await exportJWK(stranger.privateKey)), kid: `kid-${randomBytes(8).toString('hex')}`, alg: 'ECDH-ES+A256KW', use: 'enc' });
      const { cred, iss, dkt } = credentialHeader as Record<string, string>;
      const forged = await sealJson({ v: 1, holder_name: 'MALLORY', card_number: '4242424242424242', expiry: '12/34' }, strangerKey, { typ: typ.credential, cred: cred!, iss: iss!, dkt: dkt! });
      expect(await codeOf(wallet.sendApproval(id, { ...body, sealed_credential: forged }))).toBe('credential_invalid');
      expect(await statusOf(id)).toBe('pending');
    });

    it('refuses a credential JWE with alg "dir" (a guessed symmetric key) where ECDH-ES or RSA-OAEP is expected, with credential_invalid', async () => {
      const { id, body, credentialHeader } = await pendingApproval(wallet, cardNumber);
      const { typ: t, cred, iss, dkt, kid } = credentialHeader as Record<string, string>;
      const forged = await new CompactEncrypt(new TextEncoder().encode(JSON.stringify({ v: 1, card_number: '4242424242424242' })))
        .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', typ: t!, cred: cred!, iss: iss!, dkt: dkt!, kid: kid! })
        .encrypt(new Uint8Array(32));
      expect(await codeOf(wallet.sendApproval(id, { ...body, sealed_credential: forged }))).toBe('credential_invalid');
    });

    it('refuses a PIN JWE whose authentication tag was altered with pin_invalid', async () => {
      const { id, body } = await pendingApproval(wallet, cardNumber);
      expect(await codeOf(wallet.sendApproval(id, { ...body, pin: tamperPart(body.pin, 4) }))).toBe('pin_invalid');
      expect(await statusOf(id)).toBe('pending');
    });
  });
});

// ---- algorithm confusion and approvals for something else -------------------------------------------

describe('the authentication server refuses an approval the device key did not sign for exactly this request', () => {
  const cardNumber = '4242424242424242';
  let wallet: WalletClient;
  beforeAll(async () => {
    wallet = await enroll(system, cardNumber);
  });
  afterAll(async () => {
    await wallet?.close();
  });

  it('refuses an unsigned approval (alg "none") with approval_invalid', async () => {
    const { id, body, approvalPayload } = await pendingApproval(wallet, cardNumber);
    const unsigned = `${b64({ alg: 'none', typ: typ.approval })}.${b64(approvalPayload)}.`;
    expect(await codeOf(wallet.sendApproval(id, { ...body, approval: unsigned }))).toBe('approval_invalid');
    expect(await statusOf(id)).toBe('pending');
  });

  it('refuses an approval MACed with HS256 using the device public key as the secret with approval_invalid', async () => {
    const { kty, crv, x, y } = wallet.wallet.device_private_jwk as JoseJwk;
    const publicJwk = { kty, crv, x, y };
    const devicePublic = (await importJWK(publicJwk, 'ES256')) as CryptoKey;
    const secrets = [new TextEncoder().encode(JSON.stringify(publicJwk)), new TextEncoder().encode(await exportSPKI(devicePublic))];
    for (const secret of secrets) {
      const { id, body, approvalPayload } = await pendingApproval(wallet, cardNumber);
      const confused = await new CompactSign(new TextEncoder().encode(JSON.stringify(approvalPayload))).setProtectedHeader({ alg: 'HS256', typ: typ.approval }).sign(secret);
      expect(await codeOf(wallet.sendApproval(id, { ...body, approval: confused }))).toBe('approval_invalid');
    }
  });

  it('refuses an approval signed for another currency with approval_mismatch', async () => {
    const created = await paymentRequest(wallet);
    expect(await codeOf(wallet.approve(await wallet.fetchRequest(created.id), demoCard(cardNumber).pin, { cur: 'USD' }))).toBe('approval_mismatch');
    expect(await statusOf(created.id)).toBe('pending');
  });

  it('refuses an approval signed for another real item list (same total) with approval_mismatch', async () => {
    const created = await paymentRequest(wallet);
    const other = [{ description: 'Sencha, 100 g', quantity: 1, unit_price_minor: '2400' }, lines[1]!];
    expect(await codeOf(wallet.approve(await wallet.fetchRequest(created.id), demoCard(cardNumber).pin, { ih: await itemsHash(other) }))).toBe('approval_mismatch');
  });

  it('refuses the approval of request A presented for request B with approval_mismatch, and A can still be approved', async () => {
    const a = await pendingApproval(wallet, cardNumber);
    const b = await paymentRequest(wallet);
    expect(await codeOf(wallet.sendApproval(b.id, a.body))).toBe('approval_mismatch');
    expect(await statusOf(b.id)).toBe('pending');
    // The refusal came before the nonce was spent: A's own terminal is not locked out by the attempt.
    expect((await wallet.sendApproval(a.id, a.body)).status).toBe('approved');
  });

  it('refuses an approval whose signed payload repeats a member ("amt" twice) with approval_invalid', async () => {
    const { id, body, approvalPayload } = await pendingApproval(wallet, cardNumber);
    const device = (await importJWK(wallet.wallet.device_private_jwk as JoseJwk, 'ES256')) as CryptoKey;
    const text = JSON.stringify(approvalPayload).replace(/}$/, ',"amt":"1"}');
    const twice = await new CompactSign(new TextEncoder().encode(text)).setProtectedHeader({ alg: 'ES256', typ: typ.approval }).sign(device);
    expect(await codeOf(wallet.sendApproval(id, { ...body, approval: twice }))).toBe('approval_invalid');
  });
});

describe('the settlement server refuses what a compromised authentication server could forge', () => {
  const card = demoCard('4242424242424242');
  const sakura = () => system.settlements.find((s) => s.issuer.id === 'sakura-bank')!;
  const authorize = (body: unknown) => sendRaw(broker, `${sakura().url}/internal/v1/authorizations`, { text: typeof body === 'string' ? body : JSON.stringify(body) });
  let bank: BankCaller;
  let device: EnrolledDevice;
  let onboarded: { id: string; name: string };

  beforeAll(async () => {
    const leaf = system.pki.leaves['auth-server']!;
    bank = new BankCaller(sakura().url, 'sakura-bank', { caCertPem: system.pki.caCertPem, certPem: leaf.certPem, keyPem: leaf.keyPem });
    device = await bank.enroll(card);
    onboarded = { id: system.merchant.merchantId, name: demoMerchantName };
  });
  afterAll(async () => {
    await bank?.close();
  });

  /** What an honest terminal and broker would send for one payment through the enrolled device, and its parts. */
  async function honest() {
    const body = await bank.authorizeBody(device, card, onboarded);
    const header = { typ: typ.credential, cred: device.credentialId, iss: 'sakura-bank', dkt: device.dkt };
    const credential = { v: 1, holder_name: card.holderName, card_number: card.cardNumber, expiry: card.expiry, device_jwk: device.deviceJwk };
    const payload = decodePart(body.approval, 1) as Record<string, unknown>;
    return { body, header, credential, payload, deviceJwk: device.deviceJwk };
  }

  it('approves the honest request (the control for the forgeries below)', async () => {
    const { body } = await honest();
    const answer = await authorize(body);
    expect(answer.status, answer.text).toBe(200);
  });

  it('refuses an unsigned approval (alg "none") with approval_invalid', async () => {
    const { body, payload } = await honest();
    expectProblem(await authorize({ ...body, approval: `${b64({ alg: 'none', typ: typ.approval })}.${b64(payload)}.` }), 'approval_invalid');
  });

  it('refuses an approval MACed with HS256 using the device public key as the secret with approval_invalid', async () => {
    const { body, payload, deviceJwk } = await honest();
    const confused = await new CompactSign(new TextEncoder().encode(JSON.stringify(payload))).setProtectedHeader({ alg: 'HS256', typ: typ.approval }).sign(new TextEncoder().encode(JSON.stringify(deviceJwk)));
    expectProblem(await authorize({ ...body, approval: confused }), 'approval_invalid');
  });

  it('refuses a credential JWE with alg "dir" where ECDH-ES is expected with credential_invalid', async () => {
    const { body, header, credential } = await honest();
    const forged = await new CompactEncrypt(new TextEncoder().encode(JSON.stringify(credential))).setProtectedHeader({ ...header, alg: 'dir', enc: 'A256GCM', kid: (await bank.keys()).current('enc').kid }).encrypt(new Uint8Array(32));
    expectProblem(await authorize({ ...body, sealed_credential: forged }), 'credential_invalid');
  });

  it('refuses a credential sealed under an unknown kid with credential_invalid', async () => {
    const { body, header, credential } = await honest();
    const { entry } = await generateKeyEntry('enc');
    expectProblem(await authorize({ ...body, sealed_credential: await sealJson(credential, entry, header) }), 'credential_invalid');
  });

  it.each([
    ['encrypted key', 1],
    ['initialisation vector', 2],
    ['authentication tag', 4],
  ] as const)('refuses a sealed credential whose %s was altered with credential_invalid', async (_part, index) => {
    const { body } = await honest();
    expectProblem(await authorize({ ...body, sealed_credential: tamperPart(body.sealed_credential, index) }), 'credential_invalid');
  });

  it('refuses a PIN JWE with alg "dir" with pin_invalid', async () => {
    const { body, payload } = await honest();
    const binding = { rid: body.request.rid, nonce: payload.nonce, dkt: device.dkt };
    const forged = await new CompactEncrypt(new TextEncoder().encode(JSON.stringify({ pin: '0000', ...binding }))).setProtectedHeader({ alg: 'dir', enc: 'A256GCM', typ: typ.pin, ...binding }).encrypt(new Uint8Array(32));
    expectProblem(await authorize({ ...body, pin: forged }), 'pin_invalid');
  });

  it('refuses a credential the broker sealed itself for a device of its own, never enrolled at the bank, with credential_unknown', async () => {
    // In re-seal mode the broker holds the card data and the bank's public key: it can seal a credential, but not register one.
    const own = await bank.device(card);
    expectProblem(await authorize(await bank.authorizeBody(own, card, onboarded)), 'credential_unknown');
  });

  it('refuses an enrollment the broker makes up from card data it saw, without the PIN, with enrollment_refused', async () => {
    const other = demoCard('4000056655665556');
    const own = await bank.device(other);
    expectProblem(await sendRaw(broker, `${sakura().url}/internal/v1/enrollments`, { text: JSON.stringify(await bank.enrollmentBody(own, '0000')) }), 'enrollment_refused');
    expectProblem(await authorize(await bank.authorizeBody(own, other, onboarded)), 'credential_unknown');
  });

  it('refuses a payment to a merchant of the broker’s making with merchant_unknown, and holds nothing', async () => {
    const body = await bank.authorizeBody(device, card, { id: newId('mer'), name: demoMerchantName });
    expectProblem(await authorize(body), 'merchant_unknown');
    const [row] = await sakura().config.db.query<{ n: number }>('select count(*)::int as n from authorizations where request_id = $1', [body.request.rid]);
    expect(row!.n).toBe(0);
  });

  it('refuses an approval shown to the payer under another merchant name than the bank onboarded with approval_mismatch', async () => {
    expectProblem(await authorize(await bank.authorizeBody(device, card, onboarded, { mnm: 'Kessai Tea House Outlet' })), 'approval_mismatch');
  });

  it('refuses line items swapped after the payer signed their hash with approval_mismatch', async () => {
    const { body } = await honest();
    expectProblem(await authorize({ ...body, request: { ...body.request, line_items: [{ description: 'Gift card', quantity: 1, unit_price_minor: '6500' }] } }), 'approval_mismatch');
  });

  it('refuses a request body that names "amt" twice with validation_failed, before anything is held', async () => {
    const { body } = await honest();
    const text = JSON.stringify(body).replace('"amt":"6500"', '"amt":"6500","amt":"650000"');
    expect(text).toContain('"amt":"650000"');
    expectProblem(await authorize(text), 'validation_failed');
    const [row] = await sakura().config.db.query<{ n: number }>('select count(*)::int as n from authorizations where request_id = $1', [body.request.rid]);
    expect(row!.n).toBe(0);
  });
});

// ---- bodies built to confuse a parser ---------------------------------------------------------------

describe('every server refuses JSON that could mean two things or exhaust a parser', () => {
  const nested = (depth: number) => `{"order_id":${'['.repeat(depth)}${']'.repeat(depth)}}`;
  const targets: Record<string, () => { url: string; headers: Record<string, string>; agent: Agent }> = {
    'the authentication server (merchant API)': () => ({ url: `${system.auth.url}/v1/payment-requests`, headers: { authorization: `Bearer ${system.merchant.apiKey}` }, agent: anonymous }),
    'the authentication server (enrollment)': () => ({ url: `${system.auth.url}/v1/enrollments`, headers: {}, agent: anonymous }),
    'a settlement server (/internal, as the broker)': () => ({ url: `${system.settlements[0]!.url}/internal/v1/enrollments`, headers: {}, agent: broker }),
    'the shop': () => ({ url: `${system.shop.url}/api/carts`, headers: {}, agent: anonymous }),
  };

  it.each(Object.keys(targets))('%s answers a body nested past jsonDepthMax, and one nested 30,000 deep, with validation_failed', async (name) => {
    const { url, headers, agent } = targets[name]!();
    expectProblem(await sendRaw(agent, url, { text: nested(limits.jsonDepthMax + 1), headers: { ...headers, 'idempotency-key': randomBytes(12).toString('hex') } }), 'validation_failed');
    const deep = nested(30_000);
    expect(deep.length).toBeLessThan(limits.bodyBytesMax);
    expectProblem(await sendRaw(agent, url, { text: deep, headers: { ...headers, 'idempotency-key': randomBytes(12).toString('hex') } }), 'validation_failed');
  });

  it('answers a payment request with two amount_minor keys with validation_failed and creates nothing', async () => {
    const orderId = `order-dup-${randomBytes(4).toString('hex')}`;
    const honest = JSON.stringify({ order_id: orderId, currency: 'JPY', amount_minor: '5700', line_items: lines });
    for (const text of [honest.replace('"amount_minor":"5700"', '"amount_minor":"5700","amount_minor":"1"'), honest.replace('"amount_minor":"5700"', '"amount_minor":"1","amount\\u005fminor":"5700"')]) {
      const answer = await sendRaw(anonymous, `${system.auth.url}/v1/payment-requests`, { text, headers: { authorization: `Bearer ${system.merchant.apiKey}`, 'idempotency-key': randomBytes(12).toString('hex') } });
      expectProblem(answer, 'validation_failed');
      expect(answer.body.detail).toBe('the body repeats a member name inside one object');
    }
    const [row] = await system.auth.db.query<{ n: number }>('select count(*)::int as n from payment_requests where order_id = $1', [orderId]);
    expect(row!.n).toBe(0);
  });

  it('answers an enrollment with two card_number keys with validation_failed', async () => {
    const card = demoCard('4242424242424242');
    const text = `{"holder_name":"${card.holderName}","card_number":"4000000000000002","expiry":"12/34","device_jwk":{"kty":"EC","crv":"P-256","x":"${'A'.repeat(43)}","y":"${'B'.repeat(43)}"},"card_number":"${card.cardNumber}"}`;
    expectProblem(await sendRaw(anonymous, `${system.auth.url}/v1/enrollments`, { text }), 'validation_failed');
  });

  it('answers a cart item with two quantity keys with validation_failed', async () => {
    const cart = await sendRaw(anonymous, `${system.shop.url}/api/carts`, { text: '{}' });
    expect(cart.status).toBe(201);
    expectProblem(await sendRaw(anonymous, `${system.shop.url}/api/carts/${String(cart.body.id)}/items`, { text: '{"product_id":"sencha-100g","quantity":1,"quantity":10000}' }), 'validation_failed');
  });

  it('still accepts the same member name in different objects (no false refusals)', async () => {
    const text = JSON.stringify({ order_id: `order-${randomBytes(4).toString('hex')}`, currency: 'JPY', amount_minor: '5700', line_items: lines });
    const answer = await sendRaw(anonymous, `${system.auth.url}/v1/payment-requests`, { text, headers: { authorization: `Bearer ${system.merchant.apiKey}`, 'idempotency-key': randomBytes(12).toString('hex') } });
    expect(answer.status, answer.text).toBe(201);
  });
});

// ---- personal data a caller sends where none belongs ------------------------------------------------

describe('personal data sent where none belongs is neither answered back nor logged', () => {
  const card = demoCard('4000056655665556');

  it('does not repeat an unknown key named like a card number in its validation_failed problem', async () => {
    const text = JSON.stringify({ order_id: 'order-1', currency: 'JPY', amount_minor: '2400', line_items: lines.slice(0, 1), [card.cardNumber]: card.holderName });
    const answer = await sendRaw(anonymous, `${system.auth.url}/v1/payment-requests`, { text, headers: { authorization: `Bearer ${system.merchant.apiKey}`, 'idempotency-key': randomBytes(12).toString('hex') } });
    expectProblem(answer, 'validation_failed');
    expect(answer.text).not.toContain(card.holderName);
    expect(answer.body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ message: 'Unrecognized key (not repeated here)' })]));
  });

  it('logs the route, not the URL: a card number and name in a path or query string never reach the auth server’s or shop’s log', async () => {
    const spaced = encodeURIComponent(card.holderName);
    const urls = [
      `${system.auth.url}/v1/payment-requests/${card.cardNumber}?holder=${spaced}`,
      `${system.auth.url}/v1/no-such-route/${card.cardNumber}`,
      `${system.auth.url}/pay/${card.cardNumber}`,
      `${system.shop.url}/api/orders/${card.cardNumber}?card_number=${card.cardNumber}`,
      `${system.shop.url}/api/${spaced}`,
    ];
    for (const url of urls) expect((await sendRaw(anonymous, url, { headers: { authorization: `Bearer ${system.merchant.apiKey}` } })).status).toBeGreaterThanOrEqual(400);
    const logs = (await readFile(system.logFiles.auth, 'utf8')) + (await readFile(system.logFiles.shop, 'utf8'));
    expect(logs).toContain('"route":"/v1/payment-requests/:id"');
    expect(logs).not.toContain(card.cardNumber);
    expect(logs).not.toContain(card.holderName);
    expect(logs).not.toContain(spaced);
  });
});

// ---- webhooks to the shop ---------------------------------------------------------------------------

describe('the shop refuses forged and replayed webhooks', () => {
  let wallet: WalletClient;
  let delivered: { body: string; order: string };
  beforeAll(async () => {
    wallet = await enroll(system, '4000056655665556');
    const order = await checkout(system, [{ index: 0, quantity: 1 }], wallet.wallet.credential_id);
    await wallet.approve(await wallet.fetchRequest(order.payment_request_id), demoCard('4000056655665556').pin);
    const [row] = await system.auth.db.query<{ body: string }>("select body from webhook_outbox where event_type = 'payment_request.approved' and body like $1", [`%${order.payment_request_id}%`]);
    delivered = { body: row!.body, order: order.order_id };
  });
  afterAll(async () => {
    await wallet?.close();
  });

  const webhook = (body: string, signature: string) => sendRaw(anonymous, `${system.shop.url}/webhooks/kessai`, { text: body, headers: { 'kessai-signature': signature } });
  const now = () => Math.floor(Date.now() / 1000);

  it('refuses an "approved" event for an unpaid order signed with another secret with validation_failed, and the order stays unpaid', async () => {
    const order = await checkout(system, [{ index: 1, quantity: 1 }]);
    const event = JSON.parse(delivered.body) as { id: string; data: Record<string, unknown> };
    const forged = JSON.stringify({ ...event, id: newId('evt'), data: { ...event.data, id: order.payment_request_id, order_id: order.order_id } });
    expectProblem(await webhook(forged, await signWebhook(`whsec_${randomBytes(24).toString('base64url')}`, forged, now())), 'validation_failed');
    expect((await orderOf(system, order.order_id)).status).toBe(order.status);
  });

  it('refuses a genuine event re-signed with the real secret but with a body changed after signing, with validation_failed', async () => {
    const signature = await signWebhook(system.merchant.webhookSecret, delivered.body, now());
    expectProblem(await webhook(delivered.body.replace(/"amount_minor":"\d+"/, '"amount_minor":"1"'), signature), 'validation_failed');
  });

  it('refuses a genuine event replayed after webhookToleranceMs with validation_failed, and accepts it inside the window', async () => {
    const stale = now() - limits.webhookToleranceMs / 1000 - 60;
    expectProblem(await webhook(delivered.body, await signWebhook(system.merchant.webhookSecret, delivered.body, stale)), 'validation_failed');
    const future = now() + limits.webhookToleranceMs / 1000 + 60;
    expectProblem(await webhook(delivered.body, await signWebhook(system.merchant.webhookSecret, delivered.body, future)), 'validation_failed');
    // Inside the window the same event is acknowledged and, being already processed, changes nothing.
    const before = await orderOf(system, delivered.order);
    const fresh = await webhook(delivered.body, await signWebhook(system.merchant.webhookSecret, delivered.body, now()));
    expect(fresh.status, fresh.text).toBe(200);
    expect(await orderOf(system, delivered.order)).toEqual(before);
  });
});

// ---- transport --------------------------------------------------------------------------------------

describe('transport: mutual TLS to the issuer and no fallback below TLS 1.2', () => {
  const rid = newId('pr');
  const merchant = newId('mer');
  /** Every /internal route, the reads among them: each needs the broker's client certificate. */
  const internalRoutes: Array<{ method: 'GET' | 'POST'; route: string }> = [
    { method: 'POST', route: '/internal/v1/enrollments' },
    { method: 'POST', route: `/internal/v1/credentials/${newId('cred')}/revoke` },
    { method: 'POST', route: '/internal/v1/authorizations' },
    { method: 'POST', route: `/internal/v1/authorizations/${rid}/capture` },
    { method: 'POST', route: `/internal/v1/authorizations/${rid}/void` },
    { method: 'POST', route: `/internal/v1/authorizations/${rid}/refunds` },
    { method: 'GET', route: `/internal/v1/authorizations/${rid}` },
    { method: 'GET', route: `/internal/v1/merchants/${merchant}/settlement-batches` },
    { method: 'GET', route: '/internal/v1/settlement-batches' },
    { method: 'GET', route: `/internal/v1/merchants/${merchant}/settlement-batches/stb_${rid.slice(3)}/report` },
  ];
  const callInternal = (agent: Agent, { method, route }: (typeof internalRoutes)[number]) =>
    sendRaw(agent, `${system.settlements[0]!.url}${route}`, method === 'POST' ? { text: '{}' } : { method: 'GET' });

  it('refuses a caller without any client certificate on every /internal route with client_certificate_required', async () => {
    const agent = new Agent({ connect: { ca: system.pki.caCertPem } });
    try {
      for (const route of internalRoutes) expectProblem(await callInternal(agent, route), 'client_certificate_required');
    } finally {
      await agent.close();
    }
  });

  async function withClient<T>(certPem: string, keyPem: string, run: (agent: Agent) => Promise<T>): Promise<T> {
    const agent = new Agent({ connect: { ca: system.pki.caCertPem, cert: certPem, key: keyPem } });
    try {
      return await run(agent);
    } finally {
      await agent.close();
    }
  }

  it.each(['shop', 'settlement-server'])('refuses the %s leaf (issued by the Kessai CA, without clientAuth) on /internal routes with client_certificate_required', async (name) => {
    const leaf = system.pki.leaves[name]!;
    await withClient(leaf.certPem, leaf.keyPem, async (agent) => {
      for (const route of internalRoutes) expectProblem(await callInternal(agent, route), 'client_certificate_required');
    });
  });

  it('refuses a client certificate named auth-server but issued by another CA with client_certificate_required', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'kessai-rogue-pki-'));
    try {
      const rogue = await loadOrCreateDevPki(dir, [{ name: 'auth-server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usages: ['server', 'client'] }]);
      const leaf = rogue.leaves['auth-server']!;
      await withClient(leaf.certPem, leaf.keyPem, async (agent) => {
        for (const route of internalRoutes) expectProblem(await callInternal(agent, route), 'client_certificate_required');
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  /** Opens a TLS connection limited to `maxVersion`; resolves with the protocol agreed, or the error code. */
  function handshake(url: string, maxVersion: 'TLSv1.1' | 'TLSv1.2'): Promise<string> {
    const { hostname, port } = new URL(url);
    return new Promise((resolve) => {
      // SECLEVEL=0 lets this client offer TLS 1.1 at all: the refusal must come from the server.
      const socket = connect({ host: hostname, port: Number(port), ca: system.pki.caCertPem, minVersion: 'TLSv1', maxVersion, ciphers: 'DEFAULT@SECLEVEL=0', servername: 'localhost' });
      socket.once('secureConnect', () => {
        resolve(String(socket.getProtocol()));
        socket.destroy();
      });
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code ?? err.message}`));
    });
  }

  it('refuses a client that speaks at most TLS 1.1 on every server, and accepts TLS 1.2', async () => {
    for (const url of [system.auth.url, system.shop.url, ...system.settlements.map((s) => s.url)]) {
      expect(await handshake(url, 'TLSv1.1')).toMatch(/^error /);
      expect(await handshake(url, 'TLSv1.2')).toBe('TLSv1.2');
    }
  });
});

// ---- what the payer is shown -------------------------------------------------------------------------

describe('the wallet shows merchant text without letting it redraw the terminal', () => {
  it('replaces bidi overrides and control characters in the merchant name and item text, keeps look-alike letters as registered, shows the true total, and the bank pays no name it did not onboard', async () => {
    const cardNumber = '4000056655665556';
    const wallet = await enroll(system, cardNumber);
    const storage = await mkdtemp(path.join(tmpdir(), 'kessai-wallet-attack-'));
    const [original] = await system.auth.db.query<{ name: string }>('select name from merchants where id = $1', [system.merchant.merchantId]);
    // "Kessai Tea Ηouse" with a Greek capital eta, then a right-to-left override that would show "1 YPJ" reversed as a total.
    const spoofedName = 'Kessai Tea \u0397ouse \u202e000,001 YPJ';
    try {
      await saveWallet(storage, wallet.wallet, system.pki.caCertPem);
      await system.auth.db.query('update merchants set name = $1 where id = $2', [spoofedName, system.merchant.merchantId]);
      const created = await paymentRequest(wallet, { amount_minor: '1200', line_items: [{ description: 'Sencha\u2067 \u001b[2K\rtotal JPY 1', quantity: 1, unit_price_minor: '1200' }] });
      const run = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const repoRoot = path.resolve(import.meta.dirname, '../..');
        const child = spawn(path.join(repoRoot, 'node_modules/.bin/tsx'), [path.join(repoRoot, 'apps/wallet/src/main.ts'), 'wallet', 'pay', created.id, '--storage', storage, '--yes', '--pin-from-env', 'KESSAI_PIN'], {
          cwd: repoRoot,
          env: { ...process.env, NO_COLOR: '1', KESSAI_PIN: demoCard(cardNumber).pin },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
        child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
        child.once('error', reject);
        child.once('close', (code) => resolve({ code, stdout, stderr }));
      });
      // The payer saw and approved the spoofed name, but the bank pays the merchant only under the name its own operator
      // onboarded (one with no bidi control in it: merchantNameProblem), so the approval is refused.
      expect(run.stderr).toContain('approval_mismatch');
      expect(run.code).not.toBe(0);
      const shown = run.stdout;
      // No control or bidi character reaches the terminal; each is shown as U+FFFD.
      // eslint-disable-next-line no-control-regex -- looking for control characters is the point
      expect(shown).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/);
      expect(shown).toContain(`from Kessai Tea \u0397ouse \ufffd000,001 YPJ (signed by the authentication server)`);
      expect(shown).toContain('1 × Sencha\ufffd \ufffd[2K\ufffdtotal JPY 1');
      expect(shown).toMatch(/^ {2}total\s+JPY 1,200$/m);
      expect(shown).not.toMatch(/^approved:/m);
      expect(await statusOf(created.id)).not.toBe('approved');
    } finally {
      await system.auth.db.query('update merchants set name = $1 where id = $2', [original!.name, system.merchant.merchantId]);
      await wallet.close();
      await rm(storage, { recursive: true, force: true });
    }
  });
});

// ---- the terminal API: a stolen device proof ---------------------------------------------------------

describe('a device proof cannot be moved to another call', () => {
  it('refuses a proof captured for one request id when replayed against another request id with unauthenticated', async () => {
    const wallet = await enroll(system, '4242424242424242');
    try {
      const a = await paymentRequest(wallet);
      const b = await paymentRequest(wallet);
      const key = (await importJWK(wallet.wallet.device_private_jwk as JoseJwk, 'ES256')) as CryptoKey;
      const proof = await signDeviceProof(key, { credentialId: wallet.wallet.credential_id, method: 'GET', path: `/v1/terminal/payment-requests/${a.id}` });
      const answer: Answer = await sendRaw(anonymous, `${system.auth.url}/v1/terminal/payment-requests/${b.id}`, { headers: { authorization: `KessaiDevice ${proof}` } });
      expectProblem(answer, 'unauthenticated');
    } finally {
      await wallet.close();
    }
  });
});
