/**
 * Webhooks that arrive (issue 12, item 6), through a whole system: a receiver that was down for
 * minutes still gets its events on the retry schedule (webhookRetryDelaysMs, driven with an
 * advanced clock); an event whose every attempt failed is dead and comes back when the operator
 * (API or `kessai webhooks resend`) or the merchant resends it; a receiver slower than
 * webhookTimeoutMs never gets the same event twice at once; the shop drops a stale event by its
 * sequence and its reconciler converges an order whose events were lost; an Idempotency-Key held
 * by a dead process is free again when its lease ends, and the 409 before that says when.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { Agent, request } from 'undici';
import { KessaiError, limits, type ErrorCode } from '@kessai/protocol';
import type { WalletClient } from '@kessai/sdk';
import { idempotencyKeyOf, idempotent, idempotentAt, requestHash } from '../apps/auth-server/src/idempotency.ts';
import { registerWebhooksCommands } from '../apps/cli/src/webhooks-commands.ts';
import { runKessai } from './support/cli.ts';
import { checkout } from './support/shop.ts';
import { callJson, demoCard, enroll, startTestSystem, waitFor, type TestSystem } from './support/system.ts';

const cardNumber = '4242424242424242';
let system: TestSystem;
let wallet: WalletClient;

/** The shop's webhook receiver as the tests make it: down (503) for some event types, or slow. */
const receiver = {
  downFor: new Set<string>(),
  slowFor: new Set<string>(),
  slowMs: limits.webhookTimeoutMs + 2_000,
  /** Deliveries by event id, and the most that were ever in progress at once per event. */
  deliveries: new Map<string, number>(),
  inProgress: new Map<string, number>(),
  maxInProgress: new Map<string, number>(),
};
const everyType = ['payment_request.approved', 'payment_request.captured', 'payment_request.declined', 'payment_request.cancelled', 'payment_request.voided', 'payment_request.expired', 'payment_request.refunded'];

beforeAll(async () => {
  system = await startTestSystem({
    beforeListen: (role, app) => {
      if (role !== 'shop') return;
      app.addHook('preHandler', async (req, reply) => {
        if (req.url !== '/webhooks/kessai' || typeof req.body !== 'string') return;
        const event = JSON.parse(req.body) as { id: string; type: string };
        receiver.deliveries.set(event.id, (receiver.deliveries.get(event.id) ?? 0) + 1);
        if (receiver.downFor.has(event.type)) return reply.code(503).send();
        // In progress while the receiver works on it (the slow receiver: longer than webhookTimeoutMs).
        const now = (receiver.inProgress.get(event.id) ?? 0) + 1;
        receiver.inProgress.set(event.id, now);
        receiver.maxInProgress.set(event.id, Math.max(now, receiver.maxInProgress.get(event.id) ?? 0));
        if (receiver.slowFor.has(event.type)) await new Promise((resolve) => setTimeout(resolve, receiver.slowMs));
        receiver.inProgress.set(event.id, receiver.inProgress.get(event.id)! - 1);
      });
    },
  });
  wallet = await enroll(system, cardNumber);
});
afterAll(async () => {
  await wallet?.close();
  await system?.stop();
});

/** A purchase at the shop, approved by the wallet; the shop is never asked about the order over its API (that would poll). */
async function purchase() {
  const order = await checkout(system, [{ index: 0, quantity: 1 }]);
  const outcome = await wallet.approve(await wallet.fetchRequest(order.payment_request_id), demoCard(cardNumber).pin);
  expect(outcome.status).toBe('approved');
  return order;
}

interface OutboxRow {
  id: string;
  status: string;
  attempts: number;
  last_status: number | null;
  next_attempt_at: Date;
  delivered_at: Date | null;
  body: string;
}
async function outboxRow(paymentRequestId: string, type: string): Promise<OutboxRow | undefined> {
  const [row] = await system.auth.db.query<OutboxRow>('select id, status, attempts, last_status, next_attempt_at, delivered_at, body from webhook_outbox where payment_request_id = $1 and event_type = $2', [paymentRequestId, type]);
  return row && { ...row, attempts: Number(row.attempts), last_status: row.last_status === null ? null : Number(row.last_status) };
}
/** Waits until the event has had `attempts` attempts and its outcome is recorded (the lease is gone). */
function afterAttempt(paymentRequestId: string, type: string, attempts: number) {
  return waitFor(`${type} attempt ${attempts}`, async () => {
    // One read: the lease and the recorded outcome must come from the same moment (two reads could
    // see the attempt still leased, with no status yet, and then the lease already gone).
    const [row] = await system.auth.db.query<OutboxRow & { leased_until: Date | null }>(
      'select id, status, attempts, last_status, next_attempt_at, delivered_at, body, leased_until from webhook_outbox where payment_request_id = $1 and event_type = $2',
      [paymentRequestId, type],
    );
    if (!row || Number(row.attempts) < attempts || row.leased_until !== null) return undefined;
    const { leased_until: _lease, ...outcome } = row;
    return { ...outcome, attempts: Number(row.attempts), last_status: row.last_status === null ? null : Number(row.last_status) };
  });
}
function deliveredEvent(paymentRequestId: string, type: string) {
  return waitFor(`${type} to be delivered`, async () => ((await outboxRow(paymentRequestId, type))?.status === 'delivered' ? outboxRow(paymentRequestId, type) : undefined));
}
async function shopOrder(orderId: string) {
  const [row] = await system.shop.db.query<{ status: string; last_event_sequence: string | number }>('select status, last_event_sequence from orders where id = $1', [orderId]);
  return { status: row!.status, last_event_sequence: Number(row!.last_event_sequence) };
}
function shopOrderIs(orderId: string, status: string) {
  return waitFor(`order ${orderId} to be ${status}`, async () => ((await shopOrder(orderId)).status === status ? shopOrder(orderId) : undefined));
}
const at = (msFromNow: number) => new Date(Date.now() + msFromNow);
const operator = () => system.operatorHeaders(system.auth.url);
const merchantHeaders = (key?: string) => ({ authorization: `Bearer ${system.merchant.apiKey}`, ...(key ? { 'idempotency-key': key } : {}) });

/** Every event of the purchase dead: the receiver is down while the clock runs through the whole schedule. */
async function deadEvent(paymentRequestId: string): Promise<OutboxRow> {
  await afterAttempt(paymentRequestId, 'payment_request.approved', 1);
  let offsetMs = 0;
  for (let attempt = 1; attempt < limits.webhookAttemptsMax; attempt++) {
    offsetMs += limits.webhookRetryDelaysMs[attempt - 1]!;
    await system.auth.deliverWebhooks(at(offsetMs));
  }
  const row = await outboxRow(paymentRequestId, 'payment_request.approved');
  expect(row).toMatchObject({ status: 'dead', attempts: limits.webhookAttemptsMax, last_status: 503, delivered_at: null });
  return row!;
}

describe('webhook delivery on the retry schedule', () => {
  it('delivers an event to a receiver that was down for two minutes (the old 8 attempts in 64 s would have lost it)', async () => {
    receiver.downFor = new Set(everyType);
    const order = await purchase();
    // Attempt 1 (the worker, at once) and attempt 2 (30 s later) meet the receiver down.
    expect(await afterAttempt(order.payment_request_id, 'payment_request.approved', 1)).toMatchObject({ status: 'pending', last_status: 503 });
    await system.auth.deliverWebhooks(at(limits.webhookRetryDelaysMs[0]!));
    expect(await outboxRow(order.payment_request_id, 'payment_request.approved')).toMatchObject({ status: 'pending', attempts: 2, last_status: 503 });
    // Nothing is sent again before the next delay has passed.
    expect(await system.auth.deliverWebhooks(at(limits.webhookRetryDelaysMs[0]! + limits.webhookRetryDelaysMs[1]! - 5_000))).toBe(0);
    // Two and a half minutes after the first attempt the receiver is back: attempt 3 arrives.
    receiver.downFor.clear();
    await system.auth.deliverWebhooks(at(limits.webhookRetryDelaysMs[0]! + limits.webhookRetryDelaysMs[1]! + 1_000));
    expect(await outboxRow(order.payment_request_id, 'payment_request.approved')).toMatchObject({ status: 'delivered', attempts: 3, last_status: 200 });
    await shopOrderIs(order.order_id, 'captured');
    await deliveredEvent(order.payment_request_id, 'payment_request.captured');
    expect(await shopOrder(order.order_id)).toEqual({ status: 'captured', last_event_sequence: 2 });
  });
});

describe('dead letters and resend', () => {
  const dead: Array<{ order: { order_id: string; payment_request_id: string }; event: OutboxRow }> = [];

  beforeAll(async () => {
    receiver.downFor = new Set(everyType);
    const orders = [await purchase(), await purchase(), await purchase()];
    for (const order of orders) await afterAttempt(order.payment_request_id, 'payment_request.approved', 1);
    let offsetMs = 0;
    for (let attempt = 1; attempt < limits.webhookAttemptsMax; attempt++) {
      offsetMs += limits.webhookRetryDelaysMs[attempt - 1]!;
      await system.auth.deliverWebhooks(at(offsetMs));
    }
    for (const order of orders) dead.push({ order, event: (await outboxRow(order.payment_request_id, 'payment_request.approved'))! });
    receiver.downFor.clear();
  });

  it('marks an event dead after its last attempt, about four days after the first, and logs it at warn without personal data', async () => {
    for (const { event } of dead) expect(event).toMatchObject({ status: 'dead', attempts: limits.webhookAttemptsMax, last_status: 503, delivered_at: null });
    // Dead stays dead: no later pass sends it again.
    expect(await system.auth.deliverWebhooks(at(30 * 24 * 60 * 60 * 1000))).toBe(0);
    const log = await waitFor('the dead-letter log line', async () => {
      const text = await readFile(system.logFiles.auth, 'utf8');
      return text.includes(dead[0]!.event.id) && text.includes('webhook event dead') ? text : undefined;
    });
    const line = log.split('\n').find((l) => l.includes('webhook event dead') && l.includes(dead[0]!.event.id))!;
    expect(JSON.parse(line)).toMatchObject({ level: 40, event: dead[0]!.event.id, type: 'payment_request.approved', attempts: limits.webhookAttemptsMax });
    const card = demoCard(cardNumber);
    for (const secret of [card.cardNumber, card.holderName, card.expiry]) expect(line).not.toContain(secret);
    // The audit log holds it too, as a domain event of the system.
    const audited = await waitFor('the audit row', async () => {
      const [row] = await system.auth.db.query<{ actor: string; outcome: string }>("select actor, outcome from audit_log where action = 'webhook_event.dead' and resource like $1", [`${dead[0]!.event.id}%`]);
      return row;
    });
    expect(audited).toEqual({ actor: 'system', outcome: `dead after ${limits.webhookAttemptsMax} attempts` });
  });

  it('lists the dead events to the operator (API and kessai webhooks list --state dead) and to the merchant (?status=dead)', async () => {
    const listed = await callJson(system, 'GET', `${system.auth.url}/admin/v1/webhook-deliveries?state=dead`, undefined, operator());
    expect(listed.status).toBe(200);
    const ids = listed.body.items.map((item: { id: string }) => item.id);
    for (const { event } of dead) expect(ids).toContain(event.id);
    expect(listed.body.items.every((item: { state: string }) => item.state === 'dead')).toBe(true);
    const printed = await runKessai((program) => registerWebhooksCommands(program, system.dataDir), ['webhooks', 'list', '--state', 'dead', '--url', system.auth.url]);
    for (const { event } of dead) expect(printed).toContain(event.id);
    const mine = await callJson(system, 'GET', `${system.auth.url}/v1/webhook-events?status=dead`, undefined, merchantHeaders());
    expect(mine.status).toBe(200);
    expect(mine.body.items.map((item: { id: string }) => item.id)).toEqual(expect.arrayContaining(dead.map((d) => d.event.id)));
  });

  it('delivers a dead event again, same id and body, when the operator resends it through the admin API', async () => {
    const { order, event } = dead[0]!;
    const resent = await callJson(system, 'POST', `${system.auth.url}/admin/v1/webhook-deliveries/${event.id}/resend`, undefined, operator());
    expect(resent.status).toBe(200);
    expect(resent.body).toMatchObject({ id: event.id, state: 'pending', attempts: 0, resent_at: expect.any(String) });
    const delivered = await deliveredEvent(order.payment_request_id, 'payment_request.approved');
    expect(delivered).toMatchObject({ id: event.id, body: event.body, attempts: 1, last_status: 200 });
    await shopOrderIs(order.order_id, 'captured');
  });

  it('delivers a dead event again when the operator runs kessai webhooks resend', async () => {
    const { order, event } = dead[1]!;
    const printed = await runKessai((program) => registerWebhooksCommands(program, system.dataDir), ['webhooks', 'resend', event.id, '--url', system.auth.url]);
    expect(printed).toContain(`resent: ${event.id}`);
    await shopOrderIs(order.order_id, 'captured');
    expect(await outboxRow(order.payment_request_id, 'payment_request.approved')).toMatchObject({ id: event.id, status: 'delivered', body: event.body });
  });

  it('delivers a dead event again when the merchant resends it with its API key', async () => {
    const { order, event } = dead[2]!;
    const resent = await callJson(system, 'POST', `${system.auth.url}/v1/webhook-events/${event.id}/resend`, {}, merchantHeaders(`resend-${event.id}`));
    expect(resent.status).toBe(200);
    expect(resent.body).toMatchObject({ id: event.id, state: 'pending' });
    await shopOrderIs(order.order_id, 'captured');
    expect(await outboxRow(order.payment_request_id, 'payment_request.approved')).toMatchObject({ id: event.id, status: 'delivered', body: event.body });
    const audited = await waitFor('the audit row', async () => (await system.auth.db.query<{ actor: string }>("select actor from audit_log where action = 'webhook_event.resent' and resource like $1", [`${event.id}%`]))[0]);
    expect(audited).toEqual({ actor: `merchant:${system.merchant.merchantId}` });
  });

  it('answers a resend of an event that does not exist, or is another merchant’s, with webhook_event_not_found', async () => {
    const unknown = 'evt_0000000000000000000000000a';
    const byOperator = await callJson(system, 'POST', `${system.auth.url}/admin/v1/webhook-deliveries/${unknown}/resend`, undefined, operator());
    expect([byOperator.status, byOperator.body.code]).toEqual([404, 'webhook_event_not_found']);
    const byMerchant = await callJson(system, 'POST', `${system.auth.url}/v1/webhook-events/${unknown}/resend`, {}, merchantHeaders('resend-unknown'));
    expect([byMerchant.status, byMerchant.body.code]).toEqual([404, 'webhook_event_not_found']);
    await expect(runKessai((program) => registerWebhooksCommands(program, system.dataDir), ['webhooks', 'resend', unknown, '--url', system.auth.url])).rejects.toMatchObject({ code: 'kessai.webhook_event_not_found' });
  });
});

describe('a slow receiver', () => {
  it('gets an event slower than webhookTimeoutMs once at a time, never twice at once, and the shop ends captured', { timeout: 60_000 }, async () => {
    receiver.slowFor = new Set(['payment_request.approved']);
    const order = await purchase();
    // The first attempt times out at webhookTimeoutMs while the shop is still working on it; the lease holds the event meanwhile.
    const first = await afterAttempt(order.payment_request_id, 'payment_request.approved', 1);
    expect(first).toMatchObject({ status: 'pending', attempts: 1, last_status: 0 });
    await new Promise((resolve) => setTimeout(resolve, receiver.slowMs - limits.webhookTimeoutMs + 500));
    expect(receiver.deliveries.get(first.id)).toBe(1);
    receiver.slowFor.clear();
    // The shop did apply it (late): the order is captured, and the next attempt, on the schedule, is a harmless duplicate.
    await shopOrderIs(order.order_id, 'captured');
    await system.auth.deliverWebhooks(at(limits.webhookRetryDelaysMs[0]! + 1_000));
    expect(await outboxRow(order.payment_request_id, 'payment_request.approved')).toMatchObject({ status: 'delivered', attempts: 2 });
    expect(receiver.deliveries.get(first.id)).toBe(2);
    expect(receiver.maxInProgress.get(first.id)).toBe(1);
    await deliveredEvent(order.payment_request_id, 'payment_request.captured');
    expect(await shopOrder(order.order_id)).toEqual({ status: 'captured', last_event_sequence: 2 });
  });
});

describe('the shop and late events', () => {
  it('drops a stale approved delivered after captured: the order stays captured', async () => {
    receiver.downFor = new Set(['payment_request.approved']);
    const order = await purchase();
    const approved = await afterAttempt(order.payment_request_id, 'payment_request.approved', 1);
    expect(approved.last_status).toBe(503);
    // The shop learns the payment from its reconciler, captures, and then gets `captured` (sequence 2).
    await system.shop.reconcile(at(limits.shopReconcileAfterMs + 1_000));
    const captured = await deliveredEvent(order.payment_request_id, 'payment_request.captured');
    expect(JSON.parse(captured.body)).toMatchObject({ type: 'payment_request.captured', sequence: 2 });
    expect(await shopOrder(order.order_id)).toEqual({ status: 'captured', last_event_sequence: 2 });
    // Now the stale `approved` (sequence 1) arrives: acknowledged, recorded as stale, not applied.
    receiver.downFor.clear();
    await system.auth.deliverWebhooks(at(limits.webhookRetryDelaysMs[0]! + 1_000));
    const late = await outboxRow(order.payment_request_id, 'payment_request.approved');
    expect(late).toMatchObject({ status: 'delivered', last_status: 200 });
    expect(JSON.parse(late!.body)).toMatchObject({ sequence: 1 });
    const [processed] = await system.shop.db.query<{ stale: boolean }>('select stale from processed_webhook_events where event_id = $1', [late!.id]);
    expect(processed).toEqual({ stale: true });
    expect(await shopOrder(order.order_id)).toEqual({ status: 'captured', last_event_sequence: 2 });
  });

  it('converges an order whose events were lost: the reconciler asks the broker once it has waited shopReconcileAfterMs', async () => {
    receiver.downFor = new Set(everyType);
    const order = await purchase();
    await deadEvent(order.payment_request_id);
    receiver.downFor.clear();
    expect((await shopOrder(order.order_id)).status).toBe('awaiting_payment');
    // Not yet: the order has not waited long enough (a webhook may still come).
    await system.shop.reconcile(at(limits.shopReconcileAfterMs - 60_000));
    expect((await shopOrder(order.order_id)).status).toBe('awaiting_payment');
    const passed = await system.shop.reconcile(at(limits.shopReconcileAfterMs + 1_000));
    expect(passed).toBeGreaterThanOrEqual(1);
    expect((await shopOrder(order.order_id)).status).toBe('captured');
  });
});

describe('Idempotency-Key leases', () => {
  const body = { order_id: 'lease-order', currency: 'JPY', amount_minor: '1200', line_items: [{ description: 'Sencha, 100 g', quantity: 1, unit_price_minor: '1200' }] };
  const agent = () => new Agent({ connect: { ca: system.pki.caCertPem } });

  async function create(key: string) {
    const dispatcher = agent();
    try {
      const response = await request(`${system.auth.url}/v1/payment-requests`, { method: 'POST', dispatcher, headers: { 'content-type': 'application/json', ...merchantHeaders(key) }, body: JSON.stringify(body) });
      return { status: response.statusCode, retryAfter: response.headers['retry-after'], body: (await response.body.json()) as { code?: ErrorCode; id?: string } };
    } finally {
      await dispatcher.close();
    }
  }

  it('answers a retry while the lease of a running request lasts with idempotency_request_in_progress and Retry-After; after a dead process’s lease ends the retry runs', async () => {
    const key = `lease-${Date.now()}`;
    const hash = await requestHash('POST', '/v1/payment-requests', body);
    // A process took the key and died: its lease still has 20 s to run.
    await system.auth.db.query("insert into idempotency_keys (merchant_id, key, request_hash, state, locked_until) values ($1, $2, $3, 'in_progress', $4)", [system.merchant.merchantId, key, hash, at(20_000)]);
    const busy = await create(key);
    expect([busy.status, busy.body.code]).toEqual([409, 'idempotency_request_in_progress']);
    expect(Number(busy.retryAfter)).toBeGreaterThanOrEqual(19);
    expect(Number(busy.retryAfter)).toBeLessThanOrEqual(20);
    // Its lease has ended (nobody renewed it): the retry runs the request, and the next retry gets the stored answer.
    await system.auth.db.query('update idempotency_keys set locked_until = $3 where merchant_id = $1 and key = $2', [system.merchant.merchantId, key, at(-1_000)]);
    const ran = await create(key);
    expect(ran.status).toBe(201);
    expect(await create(key)).toMatchObject({ status: 201, body: { id: ran.body.id } });
  });

  it('holds the key under a lease of idempotencyLeaseMs while the request runs, with Retry-After of at least 1 s', async () => {
    const key = idempotencyKeyOf({ 'idempotency-key': `lease-live-${Date.now()}` });
    let finish!: () => void;
    const running = idempotent(system.auth.db, system.merchant.merchantId, key, 'hash', () => new Promise((resolve) => (finish = () => resolve({ status: 200, body: { ok: true } }))));
    await waitFor('the claim', async () => ((await system.auth.db.query('select 1 from idempotency_keys where key = $1', [key])).length === 1 ? true : undefined));
    const busy = await idempotent(system.auth.db, system.merchant.merchantId, key, 'hash', async () => ({ status: 200, body: {} })).catch((err: unknown) => err);
    expect(busy).toBeInstanceOf(KessaiError);
    expect((busy as KessaiError).code).toBe('idempotency_request_in_progress');
    expect((busy as KessaiError).retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect((busy as KessaiError).retryAfterSeconds).toBeLessThanOrEqual(limits.idempotencyLeaseMs / 1000);
    // Just before the lease ends the answer still says 1 s, never 0.
    const [claim] = await system.auth.db.query<{ locked_until: Date }>('select locked_until from idempotency_keys where key = $1', [key]);
    const lockedUntilMs = new Date(claim!.locked_until).getTime();
    const late = await idempotentAt(system.auth.db, { merchantId: system.merchant.merchantId, key, hash: 'hash', clock: () => lockedUntilMs - 100 }, async () => ({ status: 200, body: {} })).catch((err: unknown) => err);
    expect((late as KessaiError).retryAfterSeconds).toBe(1);
    finish();
    expect(await running).toEqual({ status: 200, body: { ok: true } });
  });
});
