/**
 * Declines and refusals of the payment flow, each its own test with its code: what the issuer
 * declines (inside a signed decision) and what the authentication server or the issuer refuses
 * (a problem+json error). Real servers, real HTTPS, real cryptography.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { limits, sha256Base64url, type CreatePaymentRequest } from '@kessai/protocol';
import { MerchantClient, type WalletClient } from '@kessai/sdk';
import { panLookup } from '@kessai/settlement-server';
import { callJson, demoCard, enroll, startTestSystem, waitFor, type TestSystem } from './support/system.ts';
import { codeOf } from './support/errors.ts';

let system: TestSystem;
let merchant: MerchantClient;
beforeAll(async () => {
  system = await startTestSystem();
  merchant = new MerchantClient({ maxNetworkRetries: 0, baseUrl: system.auth.url, apiKey: system.merchant.apiKey, caCertPem: system.pki.caCertPem });
});
afterAll(async () => {
  await merchant?.close();
  await system?.stop();
});

const lines: CreatePaymentRequest['line_items'] = [
  { description: 'Sencha, 100 g', quantity: 2, unit_price_minor: '1200' },
  { description: 'Chasen', quantity: 1, unit_price_minor: '3300' },
];

function paymentRequest(wallet?: WalletClient, overrides: Partial<CreatePaymentRequest> = {}) {
  const body: CreatePaymentRequest = { order_id: `order-${randomBytes(4).toString('hex')}`, currency: 'JPY', amount_minor: '5700', line_items: lines, ...(wallet ? { wallet_handle: wallet.wallet.credential_id } : {}), ...overrides };
  return merchant.createPaymentRequest(body, randomBytes(12).toString('hex'));
}


async function settlementOf(cardNumber: string) {
  return system.settlements.find((s) => s.issuer.id === demoCard(cardNumber).issuer.id)!;
}

/** Replaces the protected header of a compact JWE with `header`, keeping every other part. */
function withHeader(jwe: string, header: Record<string, unknown>): string {
  const parts = jwe.split('.');
  parts[0] = Buffer.from(JSON.stringify(header)).toString('base64url');
  return parts.join('.');
}

function decodeHeader(jwe: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwe.split('.')[0]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

function flipLastChar(segment: string): string {
  const last = segment.at(-1) === 'A' ? 'B' : 'A';
  return segment.slice(0, -1) + last;
}

describe('declines by the issuer (signed decisions)', () => {
  it('answers a wrong PIN with the tries left and keeps the request payable: the right PIN then pays it', async () => {
    const wallet = await enroll(system, '4000056655665556');
    const created = await paymentRequest(wallet);
    const first = await wallet.approve(await wallet.fetchRequest(created.id), '0001');
    expect(first).toEqual({ id: created.id, status: 'pending', decline_code: 'pin_incorrect', authorization: null, pin_tries_left: limits.pinAttemptsMax - 1 });
    // The merchant sees the request still pending, with the last attempt's code; nothing is held.
    expect(await merchant.getPaymentRequest(created.id)).toMatchObject({ status: 'pending', decline_code: 'pin_incorrect', authorization: null });
    const second = await wallet.approve(await wallet.fetchRequest(created.id), '0002');
    expect(second).toMatchObject({ status: 'pending', decline_code: 'pin_incorrect', pin_tries_left: limits.pinAttemptsMax - 2 });
    const paid = await wallet.approve(await wallet.fetchRequest(created.id), demoCard('4000056655665556').pin);
    expect(paid).toMatchObject({ status: 'approved', decline_code: null });
    expect(paid.pin_tries_left).toBeUndefined();
    const view = await merchant.getPaymentRequest(created.id);
    expect(view).toMatchObject({ status: 'approved', decline_code: null });
    expect(view.authorization).toMatch(/^ey/);
    // The right PIN reset the count: the next wrong one has every try again.
    const next = await paymentRequest(wallet);
    expect(await wallet.approve(await wallet.fetchRequest(next.id), '0003')).toMatchObject({ status: 'pending', pin_tries_left: limits.pinAttemptsMax - 1 });
    expect(await wallet.approve(await wallet.fetchRequest(next.id), demoCard('4000056655665556').pin)).toMatchObject({ status: 'approved' });
  });

  it('locks the card after pinAttemptsMax wrong PINs, and then declines even the right PIN with pin_locked', async () => {
    const cardNumber = '4000056655665556';
    const wallet = await enroll(system, cardNumber);
    const settlement = await settlementOf(cardNumber);
    await settlement.config.db.query("update cards set pin_failures = 0, status = 'active' where pan_lookup = $1", [panLookup(settlement.config.cardKeys, cardNumber)]);
    // All on one request: each wrong PIN with tries left leaves it payable; the one that locks the card ends it.
    const tried = await paymentRequest(wallet);
    const outcomes = [];
    for (let attempt = 0; attempt < limits.pinAttemptsMax; attempt++) {
      const { status, decline_code, pin_tries_left } = await wallet.approve(await wallet.fetchRequest(tried.id), '0001');
      outcomes.push({ status, decline_code, pin_tries_left });
    }
    expect(outcomes).toEqual([
      { status: 'pending', decline_code: 'pin_incorrect', pin_tries_left: 2 },
      { status: 'pending', decline_code: 'pin_incorrect', pin_tries_left: 1 },
      { status: 'declined', decline_code: 'pin_locked', pin_tries_left: undefined },
    ]);
    expect(await merchant.getPaymentRequest(tried.id)).toMatchObject({ status: 'declined', decline_code: 'pin_locked' });
    const created = await paymentRequest(wallet);
    const outcome = await wallet.approve(await wallet.fetchRequest(created.id), demoCard(cardNumber).pin);
    expect(outcome).toMatchObject({ status: 'declined', decline_code: 'pin_locked' });
  });

  it('declines an amount above the available balance with insufficient_funds', async () => {
    const wallet = await enroll(system, '4000000000009995');
    const created = await paymentRequest(wallet);
    const outcome = await wallet.approve(await wallet.fetchRequest(created.id), demoCard('4000000000009995').pin);
    expect(outcome).toMatchObject({ status: 'declined', decline_code: 'insufficient_funds' });
  });

  it('refuses to enroll a blocked card with enrollment_refused, in both modes (the same answer as any other refusal: test/enrollment.test.ts)', async () => {
    expect(await codeOf(enroll(system, '4000000000000002'))).toBe('enrollment_refused');
    expect(await codeOf(enroll(system, '5105105105105100'))).toBe('enrollment_refused');
  });

  it('declines a card blocked after enrollment with card_blocked', async () => {
    const cardNumber = '5555555555554444';
    const wallet = await enroll(system, cardNumber);
    const settlement = await settlementOf(cardNumber);
    await settlement.config.db.query("update cards set status = 'blocked' where pan_lookup = $1", [panLookup(settlement.config.cardKeys, cardNumber)]);
    try {
      const created = await paymentRequest(wallet);
      const outcome = await wallet.approve(await wallet.fetchRequest(created.id), demoCard(cardNumber).pin);
      expect(outcome).toMatchObject({ status: 'declined', decline_code: 'card_blocked' });
    } finally {
      await settlement.config.db.query("update cards set status = 'active' where pan_lookup = $1", [panLookup(settlement.config.cardKeys, cardNumber)]);
    }
  });
});

describe('refusals of the approval', () => {
  let wallet: WalletClient;
  const pin = demoCard('4242424242424242').pin;
  beforeAll(async () => {
    wallet = await enroll(system, '4242424242424242');
  });

  it('refuses an approval signed for another amount with approval_mismatch', async () => {
    const created = await paymentRequest(wallet);
    expect(await codeOf(wallet.approve(await wallet.fetchRequest(created.id), pin, { amt: '1' }))).toBe('approval_mismatch');
    expect((await merchant.getPaymentRequest(created.id)).status).toBe('pending');
  });

  it('refuses an approval signed for another merchant with approval_mismatch', async () => {
    const created = await paymentRequest(wallet);
    expect(await codeOf(wallet.approve(await wallet.fetchRequest(created.id), pin, { mid: 'mer_00000000000000000000000000' }))).toBe('approval_mismatch');
  });

  it('refuses an approval signed for other items with approval_mismatch', async () => {
    const created = await paymentRequest(wallet);
    expect(await codeOf(wallet.approve(await wallet.fetchRequest(created.id), pin, { ih: 'A'.repeat(43) }))).toBe('approval_mismatch');
  });

  it('refuses a replayed approval with approval_replayed', async () => {
    const created = await paymentRequest(wallet);
    const request = await wallet.fetchRequest(created.id);
    const body = await wallet.approvalBody(request, pin);
    // The first attempt reaches the issuer with a PIN bound to another request and is refused; the request stays pending.
    const other = await wallet.approvalBody(await wallet.fetchRequest((await paymentRequest(wallet)).id), pin);
    expect(await codeOf(wallet.sendApproval(created.id, { ...body, pin: other.pin }))).toBe('pin_invalid');
    expect(await codeOf(wallet.sendApproval(created.id, body))).toBe('approval_replayed');
  });

  it('refuses an approval for a request that is already finished with payment_request_not_pending', async () => {
    const created = await paymentRequest(wallet);
    const request = await wallet.fetchRequest(created.id);
    expect((await wallet.approve(request, pin)).status).toBe('approved');
    expect(await codeOf(wallet.approve(request, pin))).toBe('payment_request_not_pending');
  });

  it('refuses an approval for an expired request with payment_request_expired', async () => {
    const created = await paymentRequest(wallet);
    const request = await wallet.fetchRequest(created.id);
    await system.auth.db.query("update payment_requests set expires_at = now() - interval '1 second' where id = $1", [created.id]);
    expect(await codeOf(wallet.approve(request, pin))).toBe('payment_request_expired');
    // Shown expired at once; the worker's expiry pass (the one writer) turns it expired and queues its event in the same statement, once.
    expect((await merchant.getPaymentRequest(created.id)).status).toBe('expired');
    await waitFor('the expiry pass', async () => ((await system.auth.db.query<{ status: string }>('select status from payment_requests where id = $1', [created.id]))[0]?.status === 'expired' ? true : undefined));
    const events = await system.auth.db.query<{ body: string }>("select body from webhook_outbox where event_type = 'payment_request.expired' and body like $1", [`%${created.id}%`]);
    expect(events.map((e) => JSON.parse(e.body) as { data: { id: string; status: string } })).toEqual([expect.objectContaining({ data: expect.objectContaining({ id: created.id, status: 'expired' }) })]);
  });

  it('a payment link read after expiry shows it expired, and writes nothing (reads never write): the expiry pass tells the merchant once', async () => {
    const created = await paymentRequest(wallet);
    await system.auth.db.query("update payment_requests set expires_at = now() - interval '1 second' where id = $1", [created.id]);
    const link = await callJson(system, 'GET', created.payment_link);
    expect(link.status).toBe(200);
    expect(link.body.status).toBe('expired');
    expect((await merchant.getPaymentRequest(created.id)).status).toBe('expired');
    await waitFor('the expiry pass', async () => {
      const events = await system.auth.db.query("select id from webhook_outbox where event_type = 'payment_request.expired' and body like $1", [`%${created.id}%`]);
      return events.length > 0 ? events : undefined;
    });
    const events = await system.auth.db.query("select id from webhook_outbox where event_type = 'payment_request.expired' and body like $1", [`%${created.id}%`]);
    expect(events).toHaveLength(1);
  });

  it('refuses a sealed credential whose protected header was altered with credential_invalid, in both modes', async () => {
    for (const cardNumber of ['4242424242424242', '5555555555554444']) {
      const payer = await enroll(system, cardNumber);
      const created = await paymentRequest(payer);
      const body = await payer.approvalBody(await payer.fetchRequest(created.id), demoCard(cardNumber).pin);
      const tampered = withHeader(body.sealed_credential, { ...decodeHeader(body.sealed_credential), note: 'x' });
      expect(await codeOf(payer.sendApproval(created.id, { ...body, sealed_credential: tampered }))).toBe('credential_invalid');
      expect((await merchant.getPaymentRequest(created.id)).status).toBe('pending');
    }
  });

  it('refuses a sealed credential whose ciphertext was altered with credential_invalid, in both modes', async () => {
    for (const cardNumber of ['4242424242424242', '5555555555554444']) {
      const payer = await enroll(system, cardNumber);
      const created = await paymentRequest(payer);
      const body = await payer.approvalBody(await payer.fetchRequest(created.id), demoCard(cardNumber).pin);
      const parts = body.sealed_credential.split('.');
      parts[3] = flipLastChar(parts[3]!.slice(0, 8)) + parts[3]!.slice(8);
      expect(await codeOf(payer.sendApproval(created.id, { ...body, sealed_credential: parts.join('.') }))).toBe('credential_invalid');
    }
  });

  it('refuses a credential presented with another device key with credential_device_mismatch', async () => {
    // The thief enrolls another card: HANAKO's is locked by the tests above, and a locked card enrolls no device.
    const thief = await enroll(system, '5200828282828210');
    const created = await paymentRequest(thief);
    const body = await thief.approvalBody(await thief.fetchRequest(created.id), pin);
    expect(await codeOf(thief.sendApproval(created.id, { ...body, sealed_credential: wallet.wallet.sealed_credential }))).toBe('credential_device_mismatch');
  });

  it('refuses a payment request addressed to another wallet with payment_request_not_found', async () => {
    const other = await enroll(system, '5200828282828210');
    const created = await paymentRequest(other);
    expect(await codeOf(wallet.fetchRequest(created.id))).toBe('payment_request_not_found');
  });
});

describe('the merchant API', () => {
  it('does not let a merchant read another merchant’s request: payment_request_not_found', async () => {
    const apiKey = `sk_test_${randomBytes(24).toString('base64url')}`;
    await system.auth.db.query("insert into merchants (id, name, api_key_hash, webhook_secret) values ('mer_0000000000000000000000other', 'Other Shop', $1, 'whsec_other')", [await sha256Base64url(apiKey)]);
    const intruder = new MerchantClient({ maxNetworkRetries: 0, baseUrl: system.auth.url, apiKey, caCertPem: system.pki.caCertPem });
    try {
      const created = await paymentRequest();
      expect(await codeOf(intruder.getPaymentRequest(created.id))).toBe('payment_request_not_found');
    } finally {
      await intruder.close();
    }
  });

  it('refuses line items that do not add up to the amount with amount_mismatch', async () => {
    expect(await codeOf(paymentRequest(undefined, { amount_minor: '5701' }))).toBe('amount_mismatch');
  });
});
