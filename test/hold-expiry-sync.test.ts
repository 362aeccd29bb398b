/**
 * Step 409, the broker and the shop learn that a hold expired: a settlement server whose holds
 * time out after 2 s releases a hold the shop never managed to capture (the authentication server
 * refuses the shop's captures while the test says so); the authentication server's worker asks
 * the issuer (`GET /internal/v1/authorizations/{rid}`, mutual TLS), turns the payment request
 * `expired` and sends a signed `payment_request.expired` event; the shop's order turns `expired`;
 * a capture after that answers `authorization_not_capturable`. An issuer that does not answer the
 * question is asked again later (holdSyncRetryMs).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { limits, settlementAuthorizationStatus } from '@kessai/protocol';
import type { MerchantClient, WalletClient } from '@kessai/sdk';
import { demoCard, waitFor, type TestSystem } from './support/system.ts';
import { codeOf } from './support/errors.ts';
import { cardAccount, idempotencyKey, startWithPayer } from './support/payer.ts';
import { checkout, orderOf, waitForOrder } from './support/shop.ts';

let system: TestSystem;
let merchant: MerchantClient;
let wallet: WalletClient;
let issuerAgent: Agent;
const cardNumber = '4000056655665556';
/** Payment requests whose captures the authentication server answers 503 (as if the issuer were down). */
const capturesRefused = new Set<string>();
/** Payment requests the issuer does not answer questions about (503, as if it were down). */
const statusUnanswered = new Set<string>();

let stop = async () => {};
beforeAll(async () => {
  ({ system, merchant, wallet, stop } = await startWithPayer(cardNumber, {
    holdTimeoutSeconds: 2,
    expiryIntervalMs: 200,
    beforeListen: (role, app) => {
      if (role === 'settlement-sakura-bank') {
        app.addHook('onRequest', async (req, reply) => {
          const match = /^\/internal\/v1\/authorizations\/([^/]+)$/.exec(req.url);
          if (req.method !== 'GET' || !match || !statusUnanswered.has(match[1]!)) return;
          await reply.code(503).type('application/problem+json').send({ type: 'urn:kessai:error:ledger_busy', title: 'Busy', status: 503, code: 'ledger_busy' });
        });
      }
      if (role !== 'auth-server') return;
      app.addHook('onRequest', async (req, reply) => {
        const match = /^\/v1\/payment-requests\/([^/]+)\/capture$/.exec(req.url);
        if (req.method !== 'POST' || !match || !capturesRefused.has(match[1]!)) return;
        await reply.code(503).type('application/problem+json').send({ type: 'urn:kessai:error:issuer_unavailable', title: 'The issuer is unavailable', status: 503, code: 'issuer_unavailable' });
      });
    },
  }));
  const client = system.pki.leaves['auth-server']!;
  issuerAgent = new Agent({ connect: { ca: system.pki.caCertPem, cert: client.certPem, key: client.keyPem } });
});
afterAll(async () => {
  await issuerAgent?.close();
  await stop();
});

const sakura = () => system.settlements.find((s) => s.issuer.id === 'sakura-bank')!;

/** The issuer's answer to the authentication server's question about payment request `rid`. */
async function issuerStatus(rid: string) {
  const response = await request(`${sakura().url}/internal/v1/authorizations/${rid}`, { dispatcher: issuerAgent });
  const body = (await response.body.json()) as Record<string, unknown>;
  return { status: response.statusCode, body };
}

describe('the broker learns that a hold expired', () => {
  it('turns an approved, never captured request expired, tells the shop with a signed event, and the order turns expired', async () => {
    const before = await cardAccount(system, cardNumber);
    const order = await checkout(system, [{ index: 5, quantity: 1 }], wallet.wallet.credential_id);
    capturesRefused.add(order.payment_request_id);
    const outcome = await wallet.approve(await wallet.fetchRequest(order.payment_request_id), demoCard(cardNumber).pin);
    expect(outcome.status).toBe('approved');

    // The issuer holds the money and says when the hold is due; the shop's capture did not get through.
    const held = await issuerStatus(order.payment_request_id);
    expect(held.status).toBe(200);
    const parsed = settlementAuthorizationStatus.parse(held.body);
    expect(parsed).toMatchObject({ status: 'held', amount_minor: '990', captured_minor: '0', refunded_minor: '0' });
    expect(Date.parse(parsed.hold_expires_at!)).toBeGreaterThan(Date.now() - 2_000);
    // Read from the shop's table, not through its order page: that page's refresh waits for the shop's
    // capture, retried against the refusal for longer than the 2 s hold, while the approved event
    // (delivered as soon as it is committed) has made the order paid already.
    const paid = await waitFor('the order to be paid', async () => {
      const [row] = await system.shop.db.query<{ paid_at: Date | null; captured_minor: bigint }>('select paid_at, captured_minor from orders where id = $1', [order.order_id]);
      return row?.paid_at ? row : undefined;
    });
    expect(paid.captured_minor).toBe(0n);

    // The hold expires at the issuer; the broker's worker learns it and the shop is told.
    const expired = await waitForOrder(system, order.order_id, 'expired');
    expect(expired.authorization_id).not.toBeNull();
    expect((await merchant.getPaymentRequest(order.payment_request_id)).status).toBe('expired');
    const [event] = await system.auth.db.query<{ body: string; delivered_at: Date | null }>("select body, delivered_at from webhook_outbox where event_type = 'payment_request.expired' and body like $1", [`%${order.payment_request_id}%`]);
    expect(JSON.parse(event!.body)).toMatchObject({ type: 'payment_request.expired', data: { id: order.payment_request_id, status: 'expired', captured_minor: '0' } });
    await waitFor('the expired event to be delivered', async () => {
      const [row] = await system.auth.db.query<{ delivered_at: Date | null; last_status: number | null }>("select delivered_at, last_status from webhook_outbox where event_type = 'payment_request.expired' and body like $1", [`%${order.payment_request_id}%`]);
      return row?.delivered_at ? row : undefined;
    });
    const [processed] = await system.shop.db.query<{ type: string }>("select type from processed_webhook_events where event_id = $1", [JSON.parse(event!.body).id]);
    expect(processed?.type).toBe('payment_request.expired');

    expect(settlementAuthorizationStatus.parse((await issuerStatus(order.payment_request_id)).body)).toMatchObject({ status: 'expired', hold_expires_at: null });
    // A due hold counts as expired at once; the issuer's expiry pass releases the money at its next run.
    const after = await waitFor('the expiry pass to release the hold', async () => {
      const account = await cardAccount(system, cardNumber);
      return account.debitsPending === before.debitsPending ? account : undefined;
    }, 5_000);
    expect(after.debitsPosted).toBe(before.debitsPosted);

    // A capture now is refused by the broker itself, and the order stays expired.
    capturesRefused.delete(order.payment_request_id);
    expect(await codeOf(merchant.capture(order.payment_request_id, {}, idempotencyKey()))).toBe('authorization_not_capturable');
    expect((await orderOf(system, order.order_id)).status).toBe('expired');
  });

  it('asks again later when the issuer does not answer, and then turns the request expired', async () => {
    const created = await merchant.createPaymentRequest({ order_id: `o-${idempotencyKey()}`, currency: 'JPY', amount_minor: '700', line_items: [{ description: 'Tenugui', quantity: 1, unit_price_minor: '700' }] }, idempotencyKey());
    statusUnanswered.add(created.id);
    expect((await wallet.approve(await wallet.fetchRequest(created.id), demoCard(cardNumber).pin)).status).toBe('approved');
    // The hold expires at the issuer, but the broker cannot learn it: it keeps the request approved and plans another question.
    await waitFor('the issuer to release the hold', async () => {
      const [row] = await sakura().config.db.query<{ status: string }>("select status from authorizations where request_id = $1 and status = 'expired'", [created.id]);
      return row;
    }, 10_000);
    const planned = await waitFor('the broker to plan another question', async () => {
      const [row] = await system.auth.db.query<{ status: string; hold_check_at: Date | null }>('select status, hold_check_at from payment_requests where id = $1', [created.id]);
      return row?.hold_check_at && row.hold_check_at.getTime() > Date.now() + limits.holdSyncRetryMs / 2 ? row : undefined;
    });
    expect(planned.status).toBe('approved');
    statusUnanswered.delete(created.id);
    await waitFor('the request to turn expired', async () => ((await merchant.getPaymentRequest(created.id)).status === 'expired' ? true : undefined), limits.holdSyncRetryMs + 10_000);
  });

  it('asks the issuer about a request only over mutual TLS, and the issuer answers authorization_not_found for a request it never authorized', async () => {
    const unknown = await issuerStatus('pr_00000000000000000000000000');
    expect([unknown.status, unknown.body.code]).toEqual([404, 'authorization_not_found']);
    const anonymous = new Agent({ connect: { ca: system.pki.caCertPem } });
    try {
      const response = await request(`${sakura().url}/internal/v1/authorizations/pr_00000000000000000000000000`, { dispatcher: anonymous });
      expect([response.statusCode, ((await response.body.json()) as { code: string }).code]).toEqual([401, 'client_certificate_required']);
    } finally {
      await anonymous.close();
    }
  });
});
