/**
 * The webhook receiver and steps 408–409 at the shop, against fake peers: signatures are checked
 * over the raw body before anything else; an order is paid only on an authorization the issuer
 * signed for it; capture follows; a retried delivery or a poll changes nothing twice.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { limits, newId, signWebhook, type PaymentRequestView, type WebhookEvent } from '@kessai/protocol';
import { verifyWebhookEvent } from '@kessai/sdk';
import { FakeIssuer, startTestShop, type TestShop } from './fakes.ts';

let shop: TestShop;
beforeAll(async () => {
  shop = await startTestShop();
});
afterAll(async () => {
  await shop?.stop();
});

async function checkout(): Promise<{ orderId: string; requestId: string }> {
  const cart = (await shop.app.inject({ method: 'POST', url: '/api/carts' })).json().id as string;
  await shop.app.inject({ method: 'POST', url: `/api/carts/${cart}/items`, payload: { product_id: 'chawan', quantity: 1 } });
  const body = (await shop.app.inject({ method: 'POST', url: `/api/carts/${cart}/checkout` })).json();
  return { orderId: body.order_id, requestId: body.payment_request_id };
}

/** Increasing across the file, so increasing within each payment request as the protocol requires. */
let sequence = 0;
function event(data: PaymentRequestView, type: WebhookEvent['type'] = 'payment_request.approved'): WebhookEvent {
  return { id: newId('evt'), type, created_at: new Date().toISOString(), livemode: data.livemode, sequence: ++sequence, data };
}

async function deliver(body: string, signature: string) {
  const response = await shop.app.inject({ method: 'POST', url: '/webhooks/kessai', headers: { 'content-type': 'application/json', 'kessai-signature': signature }, payload: body });
  return { status: response.statusCode, body: response.json(), type: String(response.headers['content-type']) };
}

async function deliverSigned(value: WebhookEvent, secret = shop.webhookSecret, nowMs = Date.now()) {
  const body = JSON.stringify(value);
  return deliver(body, await signWebhook(secret, body, Math.floor(nowMs / 1000)));
}

/** Approves the request at the fake authentication server, with an authorization signed by `issuer`. */
async function approve(requestId: string, issuer: FakeIssuer = shop.issuer, amt = '6500', lm: boolean | 'absent' = false): Promise<PaymentRequestView> {
  const view = shop.peers.requests.get(requestId)!;
  const authorization = await issuer.sign({ rid: view.id, mid: view.merchant_id, amt, cur: view.currency, lm: lm === 'absent' ? undefined : lm });
  return shop.peers.settle(requestId, { status: 'approved', authorization });
}

async function orderStatus(orderId: string): Promise<string> {
  const [row] = await shop.db.query<{ status: string }>('select status from orders where id = $1', [orderId]);
  return row!.status;
}

async function eventually(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error('condition not reached');
}

describe('webhook signature', () => {
  it('accepts a correctly signed event (for an order it does not know: acknowledged, ignored)', async () => {
    const { requestId } = await checkout();
    const view = { ...shop.peers.requests.get(requestId)!, id: newId('pr') };
    expect((await deliverSigned(event(view, 'payment_request.cancelled'))).status).toBe(200);
  });

  it('refuses a signature made with another secret', async () => {
    const { requestId } = await checkout();
    const result = await deliverSigned(event(shop.peers.requests.get(requestId)!, 'payment_request.cancelled'), 'whsec_forged_by_someone_else');
    expect(result.status).toBe(400);
    expect(result.type).toContain('application/problem+json');
    expect(result.body.code).toBe('validation_failed');
  });

  it('refuses a stale signature, and one from too far in the future', async () => {
    const { requestId } = await checkout();
    const value = event(shop.peers.requests.get(requestId)!, 'payment_request.cancelled');
    expect((await deliverSigned(value, shop.webhookSecret, Date.now() - limits.webhookToleranceMs - 2_000)).status).toBe(400);
    expect((await deliverSigned(value, shop.webhookSecret, Date.now() + limits.webhookToleranceMs + 2_000)).status).toBe(400);
  });

  it('refuses a body changed after signing, even by one byte of whitespace', async () => {
    const { orderId, requestId } = await checkout();
    const body = JSON.stringify(event(shop.peers.requests.get(requestId)!, 'payment_request.cancelled'));
    const signature = await signWebhook(shop.webhookSecret, body, Math.floor(Date.now() / 1000));
    expect(body).toContain('"status":"pending"');
    expect((await deliver(body.replace('"status":"pending"', '"status": "pending"'), signature)).status).toBe(400);
    expect((await deliver(body.replace('payment_request.cancelled', 'payment_request.declined'), signature)).status).toBe(400);
    expect(await orderStatus(orderId)).toBe('awaiting_payment');
  });

  it('refuses a missing or malformed Kessai-Signature header', async () => {
    const body = JSON.stringify({ hello: 'world' });
    const missing = await shop.app.inject({ method: 'POST', url: '/webhooks/kessai', headers: { 'content-type': 'application/json' }, payload: body });
    expect(missing.statusCode).toBe(400);
    expect((await deliver(body, 't=abc,v1=00')).status).toBe(400);
    expect((await deliver(body, '')).status).toBe(400);
  });

  it('acknowledges a settlement_batch.closed event once and changes no order (it is the back office’s, not the storefront’s)', async () => {
    const { orderId, requestId } = await checkout();
    const view = shop.peers.requests.get(requestId)!;
    const batch = { id: `stb_${'a'.repeat(26)}`, issuer_id: 'sakura-bank', business_day: '2026-01-05', time_zone: 'UTC', merchant_id: view.merchant_id, currency: 'JPY', fee_schedule: { basis_points: 250, fixed_minor: '0' }, captured_minor: '1000', refunded_minor: '0', fees_minor: '25', net_minor: '975', carried_in_minor: '0', payout_minor: '975', carried_out_minor: '0', fee_transfer_id: null, payout_transfer_id: null, line_count: 1, created_at: new Date().toISOString() };
    const closed = { id: newId('evt'), type: 'settlement_batch.closed', created_at: new Date().toISOString(), livemode: false, data: batch };
    const body = JSON.stringify(closed);
    const signature = await signWebhook(shop.webhookSecret, body, Math.floor(Date.now() / 1000));
    expect((await deliver(body, signature)).status).toBe(200);
    expect((await deliver(body, signature)).status).toBe(200);
    const rows = await shop.db.query<{ type: string }>('select type from processed_webhook_events where event_id = $1', [closed.id]);
    expect(rows).toEqual([{ type: 'settlement_batch.closed' }]);
    expect(await orderStatus(orderId)).toBe('awaiting_payment');
    // The SDK reads it as the batch event it is; one whose data is not a batch is no event.
    expect(await verifyWebhookEvent([shop.webhookSecret], signature, body)).toEqual(closed);
    const broken = JSON.stringify({ ...closed, data: view });
    expect((await deliver(broken, await signWebhook(shop.webhookSecret, broken, Math.floor(Date.now() / 1000)))).status).toBe(400);
  });

  it('refuses a signed body that is not a webhook event', async () => {
    const body = '{"id":"evt_1","type":"payment_request.approved"}';
    expect((await deliver(body, await signWebhook(shop.webhookSecret, body, Math.floor(Date.now() / 1000)))).status).toBe(400);
  });

  it('verifyWebhookEvent accepts any of the configured secrets (rotation) and refuses non-JSON', async () => {
    const value = event(shop.peers.requests.values().next().value!);
    const body = JSON.stringify(value);
    const t = Math.floor(Date.now() / 1000);
    expect(await verifyWebhookEvent(['whsec_new', 'whsec_old'], await signWebhook('whsec_old', body, t), body)).toEqual(value);
    expect(await verifyWebhookEvent(['whsec_new'], await signWebhook('whsec_new', 'not json', t), 'not json')).toBeUndefined();
  });
});

describe('fulfilment (steps 408–409)', () => {
  it('pays and then captures an order on an approved event with a valid authorization', async () => {
    const { orderId, requestId } = await checkout();
    const result = await deliverSigned(event(await approve(requestId)));
    expect(result).toMatchObject({ status: 200, body: { received: true } });
    await eventually(async () => (await orderStatus(orderId)) === 'captured');
    const captures = shop.peers.callsTo('POST', `/${requestId}/capture`);
    expect(captures.map((c) => c.idempotencyKey)).toEqual([`${orderId}:capture`]);
    const { body } = { body: (await shop.app.inject({ method: 'GET', url: `/api/orders/${orderId}` })).json() };
    expect(body).toMatchObject({ status: 'captured', captured_minor: '6500', authorization_id: expect.stringMatching(/^auth_/) });
  });

  it('does not fulfil an order on an authorization signed for another amount', async () => {
    const { orderId, requestId } = await checkout();
    const result = await deliverSigned(event(await approve(requestId, shop.issuer, '1')));
    expect(result.status).toBe(200);
    expect(await orderStatus(orderId)).toBe('awaiting_payment');
    expect(shop.peers.callsTo('POST', `/${requestId}/capture`)).toHaveLength(0);
  });

  it("does not fulfil an order on an authorization signed by a key outside the issuer's JWKS", async () => {
    const { orderId, requestId } = await checkout();
    const stranger = await FakeIssuer.create('issuer-a');
    expect((await deliverSigned(event(await approve(requestId, stranger)))).status).toBe(200);
    expect(await orderStatus(orderId)).toBe('awaiting_payment');
  });

  it('refuses an authorization of the other mode (a live card’s at this test shop, or one signed before issuers knew modes): voids its hold, declines the order livemode_mismatch, ships nothing', async () => {
    for (const lm of [true, 'absent'] as const) {
      const { orderId, requestId } = await checkout();
      expect((await deliverSigned(event(await approve(requestId, shop.issuer, '6500', lm)))).status).toBe(200);
      const body = (await shop.app.inject({ method: 'GET', url: `/api/orders/${orderId}` })).json();
      expect(body).toMatchObject({ status: 'declined', decline_code: 'livemode_mismatch', authorization_id: null });
      expect(shop.peers.callsTo('POST', `/${requestId}/void`).map((c) => c.idempotencyKey)).toEqual([`${orderId}:void`]);
      expect(shop.peers.callsTo('POST', `/${requestId}/capture`)).toHaveLength(0);
    }
  });

  it('does not fulfil an approved request that carries no authorization', async () => {
    const { orderId, requestId } = await checkout();
    const view = shop.peers.settle(requestId, { status: 'approved', authorization: null });
    expect((await deliverSigned(event(view))).status).toBe(200);
    expect(await orderStatus(orderId)).toBe('awaiting_payment');
  });

  it('handles a retried delivery of the same event once', async () => {
    const { orderId, requestId } = await checkout();
    const value = event(await approve(requestId));
    await deliverSigned(value);
    await eventually(async () => (await orderStatus(orderId)) === 'captured');
    await deliverSigned(value);
    await deliverSigned(value);
    expect(shop.peers.callsTo('POST', `/${requestId}/capture`)).toHaveLength(1);
  });

  it('polling finds the approval when the webhook never came (same fulfilment path)', async () => {
    const { orderId, requestId } = await checkout();
    await approve(requestId);
    const response = await shop.app.inject({ method: 'GET', url: `/api/orders/${orderId}` });
    expect(response.json()).toMatchObject({ status: 'captured', captured_minor: '6500' });
  });

  it('a declined, cancelled or expired request ends the order without fulfilment', async () => {
    for (const status of ['declined', 'cancelled', 'expired'] as const) {
      const { orderId, requestId } = await checkout();
      const view = shop.peers.settle(requestId, { status, decline_code: status === 'declined' ? 'insufficient_funds' : null });
      await deliverSigned(event(view, `payment_request.${status === 'expired' ? 'cancelled' : status}`));
      const body = (await shop.app.inject({ method: 'GET', url: `/api/orders/${orderId}` })).json();
      expect(body).toMatchObject({ status, decline_code: status === 'declined' ? 'insufficient_funds' : null });
    }
  });

  it('a late event does not move a captured order back', async () => {
    const { orderId, requestId } = await checkout();
    const approved = await approve(requestId);
    await deliverSigned(event(approved));
    await eventually(async () => (await orderStatus(orderId)) === 'captured');
    await deliverSigned(event({ ...approved, status: 'declined' }, 'payment_request.declined'));
    expect(await orderStatus(orderId)).toBe('captured');
  });

  it('leaves a paid order paid when capture fails, and captures it on the next poll', async () => {
    const { orderId, requestId } = await checkout();
    const approved = await approve(requestId);
    shop.peers.failMerchantApi = { status: 503, code: 'internal_error' };
    try {
      await deliverSigned(event(approved));
      await eventually(async () => shop.peers.callsTo('POST', `/${requestId}/capture`).length === 1);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(await orderStatus(orderId)).toBe('paid');
    } finally {
      shop.peers.failMerchantApi = undefined;
    }
    const body = (await shop.app.inject({ method: 'GET', url: `/api/orders/${orderId}` })).json();
    expect(body.status).toBe('captured');
    expect(new Set(shop.peers.callsTo('POST', `/${requestId}/capture`).map((c) => c.idempotencyKey))).toEqual(new Set([`${orderId}:capture`]));
  });

  it('asks for the delivery again (5xx) when the issuer keys are unreachable', async () => {
    const cut = await startTestShop({ issuers: { 'issuer-a': 'https://127.0.0.1:1/jwks.json' } });
    try {
      const cart = (await cut.app.inject({ method: 'POST', url: '/api/carts' })).json().id as string;
      await cut.app.inject({ method: 'POST', url: `/api/carts/${cart}/items`, payload: { product_id: 'tenugui', quantity: 1 } });
      const { order_id: orderId, payment_request_id: requestId } = (await cut.app.inject({ method: 'POST', url: `/api/carts/${cart}/checkout` })).json();
      const view = cut.peers.requests.get(requestId)!;
      const approved = cut.peers.settle(requestId, { status: 'approved', authorization: await cut.issuer.sign({ rid: view.id, mid: view.merchant_id, amt: '990', cur: 'JPY' }) });
      const body = JSON.stringify(event(approved));
      const signature = await signWebhook(cut.webhookSecret, body, Math.floor(Date.now() / 1000));
      const response = await cut.app.inject({ method: 'POST', url: '/webhooks/kessai', headers: { 'content-type': 'application/json', 'kessai-signature': signature }, payload: body });
      expect(response.statusCode).toBe(502);
      expect(response.json().code).toBe('issuer_unavailable');
      const [row] = await cut.db.query<{ status: string }>('select status from orders where id = $1', [orderId]);
      expect(row?.status).toBe('awaiting_payment');
      const [seen] = await cut.db.query<{ n: number }>('select count(*)::int as n from processed_webhook_events');
      expect(seen?.n).toBe(0);
    } finally {
      await cut.stop();
    }
  });
});

describe('fulfilment without automatic capture', () => {
  let manual: TestShop;
  beforeAll(async () => {
    manual = await startTestShop({ autoCapture: false });
  });
  afterAll(async () => {
    await manual?.stop();
  });

  it('marks the order paid and does not capture', async () => {
    const cart = (await manual.app.inject({ method: 'POST', url: '/api/carts' })).json().id as string;
    await manual.app.inject({ method: 'POST', url: `/api/carts/${cart}/items`, payload: { product_id: 'tenugui', quantity: 1 } });
    const { order_id: orderId, payment_request_id: requestId } = (await manual.app.inject({ method: 'POST', url: `/api/carts/${cart}/checkout` })).json();
    const view = manual.peers.requests.get(requestId)!;
    manual.peers.settle(requestId, { status: 'approved', authorization: await manual.issuer.sign({ rid: view.id, mid: view.merchant_id, amt: '990', cur: 'JPY' }) });
    const body = (await manual.app.inject({ method: 'GET', url: `/api/orders/${orderId}` })).json();
    expect(body.status).toBe('paid');
    expect(manual.peers.callsTo('POST', '/capture')).toHaveLength(0);
  });
});

describe('a live shop (sk_live_ key)', () => {
  let live: TestShop;
  beforeAll(async () => {
    live = await startTestShop({ livemode: true, autoCapture: false });
  });
  afterAll(async () => {
    await live?.stop();
  });

  async function liveOrderPaidWith(lm: boolean): Promise<{ orderId: string; requestId: string; body: Record<string, unknown> }> {
    const cart = (await live.app.inject({ method: 'POST', url: '/api/carts' })).json().id as string;
    await live.app.inject({ method: 'POST', url: `/api/carts/${cart}/items`, payload: { product_id: 'tenugui', quantity: 1 } });
    const checkout = (await live.app.inject({ method: 'POST', url: `/api/carts/${cart}/checkout` })).json();
    const { order_id: orderId, payment_request_id: requestId } = checkout as { order_id: string; payment_request_id: string };
    const view = live.peers.requests.get(requestId)!;
    const authorization = await live.issuer.sign({ rid: view.id, mid: view.merchant_id, amt: '990', cur: 'JPY', lm });
    live.peers.settle(requestId, { status: 'approved', authorization });
    return { orderId, requestId, body: (await live.app.inject({ method: 'GET', url: `/api/orders/${orderId}` })).json() };
  }

  it('ships against a live authorization (the control)', async () => {
    expect((await liveOrderPaidWith(true)).body.status).toBe('paid');
  });

  it('refuses a test authorization for a live order (a broker and a payer who called it test, paid with a test card): voided, declined livemode_mismatch', async () => {
    const { orderId, requestId, body } = await liveOrderPaidWith(false);
    expect(body).toMatchObject({ status: 'declined', decline_code: 'livemode_mismatch' });
    expect(live.peers.callsTo('POST', `/${requestId}/void`).map((c) => c.idempotencyKey)).toEqual([`${orderId}:void`]);
  });
});
