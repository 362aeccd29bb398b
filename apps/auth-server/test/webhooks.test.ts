/**
 * The webhook outbox (step 407 to the shop): signed deliveries of the exact stored bytes, retried
 * on the schedule of webhookRetryDelaysMs while the receiver fails, dead after webhookAttemptsMax,
 * each event with the next sequence of its payment request. A real HTTPS receiver and a real
 * database with the authentication server's migrations.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:https';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { limits, newId, verifyWebhook, type PaymentRequestView } from '@kessai/protocol';
import { createLogger, loadOrCreateDevPki, migrate, openDb, type Db } from '@kessai/service';
import type { PaymentRequestRow } from '../src/payment-requests.ts';
import { transition } from '../src/payment-state.ts';
import { retryDelayMs, WebhookDispatcher } from '../src/webhooks.ts';
import { pgliteTemplate } from '../../../test/support/database.ts';

const migrations = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'migrations');
const secret = 'whsec_test_secret';

let db: Db;
let dir: string;
let receiver: Server;
let dispatcher: WebhookDispatcher;
/** What the receiver answers next, and what it got. */
const answers: number[] = [];
const received: Array<{ signature: string; body: string }> = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'kessai-webhooks-'));
  const pki = await loadOrCreateDevPki(path.join(dir, 'pki'), [{ name: 'shop', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usages: ['server'] }]);
  receiver = createServer({ key: pki.leaves.shop!.keyPem, cert: pki.leaves.shop!.certPem }, (request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    request.on('end', () => {
      received.push({ signature: String(request.headers['kessai-signature']), body });
      response.statusCode = answers.shift() ?? 200;
      response.end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const port = (receiver.address() as { port: number }).port;
  db = await openDb({ pgliteTemplate: await pgliteTemplate() });
  await migrate(db, migrations);
  await db.query("insert into merchants (id, name, api_key_hash, webhook_url, webhook_secret) values ('mer_1', 'Shop', 'h', $1, $2)", [`https://127.0.0.1:${port}/webhooks/kessai`, secret]);
  dispatcher = new WebhookDispatcher(db, createLogger({ name: 'test' }), pki.caCertPem);
});
afterAll(async () => {
  await dispatcher?.close();
  await db?.close();
  receiver?.close();
  await rm(dir, { recursive: true, force: true });
});

function view(): PaymentRequestView {
  return { id: newId('pr'), merchant_id: 'mer_1', order_id: 'o-1', status: 'approved', currency: 'JPY', amount_minor: '1200', captured_minor: '0', line_items: [{ description: 'Sencha', quantity: 1, unit_price_minor: '1200' }], payment_link: 'https://127.0.0.1/pay/x', created_at: new Date().toISOString(), expires_at: new Date().toISOString(), authorization: null, decline_code: null, livemode: false };
}

/** A payment request awaiting the issuer's answer, and the answer's event queued as the state machine queues it (payment-state.ts). */
async function answered(event: 'issuer_approved' | 'issuer_declined'): Promise<void> {
  const value = view();
  const [row] = await db.query<PaymentRequestRow>("insert into payment_requests (id, merchant_id, order_id, currency, amount_minor, line_items, status, expires_at) values ($1, 'mer_1', $2, 'JPY', 1200, $3, 'authorizing', now()) returning *", [value.id, value.order_id, JSON.stringify(value.line_items)]);
  expect(await transition(db, row!, event, {}, { publicBaseUrl: 'https://127.0.0.1', now: new Date() })).toBeDefined();
}

describe('webhook delivery', () => {
  it('retries a failing receiver on the schedule and delivers the same signed bytes', async () => {
    received.length = 0;
    answers.push(500, 503);
    await answered('issuer_approved');
    let now = Date.now();
    for (let attempt = 0; attempt < 3; attempt++) {
      expect(await dispatcher.deliverDue(new Date(now))).toBe(1);
      // Nothing is due again until its retry delay has passed.
      expect(await dispatcher.deliverDue(new Date(now + 1))).toBe(0);
      if (attempt < 2) expect(await dispatcher.deliverDue(new Date(now + retryDelayMs(attempt + 1)! - 1))).toBe(0);
      now += retryDelayMs(attempt + 1)!;
    }
    expect(received).toHaveLength(3);
    expect(new Set(received.map((r) => r.body)).size).toBe(1);
    for (const delivery of received) expect(await verifyWebhook([secret], delivery.signature, delivery.body, Date.now(), limits.webhookToleranceMs * 100)).toBe(true);
    const [row] = await db.query<{ attempts: number; delivered_at: Date | null; last_status: number }>('select attempts, delivered_at, last_status from webhook_outbox');
    expect(row).toMatchObject({ attempts: 3, last_status: 200 });
    expect(row!.delivered_at).toBeInstanceOf(Date);
  });

  it('marks the event dead after webhookAttemptsMax attempts, about four days after the first', async () => {
    await db.query('delete from webhook_outbox');
    answers.length = 0;
    for (let i = 0; i < limits.webhookAttemptsMax + 2; i++) answers.push(500);
    await answered('issuer_declined');
    let now = Date.now();
    let deliveries = 0;
    for (let pass = 0; pass < limits.webhookAttemptsMax + 2; pass++) {
      deliveries += await dispatcher.deliverDue(new Date(now));
      now += retryDelayMs(pass + 1) ?? limits.webhookLeaseMs;
    }
    expect(deliveries).toBe(limits.webhookAttemptsMax);
    const [row] = await db.query<{ attempts: number; delivered_at: Date | null; status: string }>('select attempts, delivered_at, status from webhook_outbox');
    expect(row).toMatchObject({ attempts: limits.webhookAttemptsMax, delivered_at: null, status: 'dead' });
    answers.length = 0;
  });

  it('retries for at least three days, never sooner than 30 s, with webhookAttemptsMax attempts in all', () => {
    const totalMs = limits.webhookRetryDelaysMs.reduce((sum, delay) => sum + delay, 0);
    expect(totalMs).toBeGreaterThanOrEqual(3 * 24 * 60 * 60 * 1000);
    expect(retryDelayMs(1)).toBe(30_000);
    expect(retryDelayMs(limits.webhookAttemptsMax)).toBeUndefined();
    expect(limits.webhookLeaseMs).toBeGreaterThan(limits.webhookTimeoutMs);
  });
});
