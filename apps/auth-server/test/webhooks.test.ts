/**
 * The webhook outbox (step 407 to the shop): signed deliveries of the exact stored bytes, retried
 * with back-off while the receiver fails, given up after webhookAttemptsMax. A real HTTPS receiver
 * and a real database with the authentication server's migrations.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:https';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { limits, newId, verifyWebhook, type PaymentRequestView } from '@kessai/protocol';
import { createLogger, loadOrCreateDevPki, migrate, openDb, type Db } from '@kessai/service';
import { backoffMs, webhookEvent, WebhookDispatcher } from '../src/webhooks.ts';
import { pgliteTemplate } from '../../../test/support/database.ts';

const migrations = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'migrations');
const secret = 'whsec_test_secret';

let db: Db;

/** An event in the outbox, as payment-state.ts queues one. */
async function enqueue(type: 'payment_request.approved' | 'payment_request.declined'): Promise<void> {
  const event = webhookEvent(type, view(), new Date(), 1);
  await db.query('insert into webhook_outbox (id, merchant_id, event_type, body) values ($1, $2, $3, $4)', [event.id, event.data.merchant_id, type, JSON.stringify(event)]);
}
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
  return { id: newId('pr'), merchant_id: 'mer_1', order_id: 'o-1', status: 'approved', currency: 'JPY', amount_minor: '1200', captured_minor: '0', line_items: [{ description: 'Sencha', quantity: 1, unit_price_minor: '1200' }], payment_link: 'https://127.0.0.1/pay/x', created_at: new Date().toISOString(), expires_at: new Date().toISOString(), authorization: null, decline_code: null };
}

describe('webhook delivery', () => {
  it('retries a failing receiver with back-off and delivers the same signed bytes', async () => {
    received.length = 0;
    answers.push(500, 503);
    await enqueue('payment_request.approved');
    let now = Date.now();
    for (let attempt = 0; attempt < 3; attempt++) {
      expect(await dispatcher.deliverDue(new Date(now))).toBe(1);
      // Nothing is due again until its back-off has passed.
      expect(await dispatcher.deliverDue(new Date(now + 1))).toBe(0);
      now += limits.webhookBackoffMsMax + limits.webhookTimeoutMs * 2;
    }
    expect(received).toHaveLength(3);
    expect(new Set(received.map((r) => r.body)).size).toBe(1);
    for (const delivery of received) expect(await verifyWebhook([secret], delivery.signature, delivery.body, Date.now(), limits.webhookToleranceMs * 100)).toBe(true);
    const [row] = await db.query<{ attempts: number; delivered_at: Date | null; last_status: number }>('select attempts, delivered_at, last_status from webhook_outbox');
    expect(row).toMatchObject({ attempts: 3, last_status: 200 });
    expect(row!.delivered_at).toBeInstanceOf(Date);
  });

  it('gives up after webhookAttemptsMax attempts', async () => {
    await db.query('delete from webhook_outbox');
    answers.length = 0;
    for (let i = 0; i < limits.webhookAttemptsMax + 2; i++) answers.push(500);
    await enqueue('payment_request.declined');
    let now = Date.now();
    let deliveries = 0;
    for (let pass = 0; pass < limits.webhookAttemptsMax + 2; pass++) {
      deliveries += await dispatcher.deliverDue(new Date(now));
      now += limits.webhookBackoffMsMax + limits.webhookTimeoutMs * 2;
    }
    expect(deliveries).toBe(limits.webhookAttemptsMax);
    const [row] = await db.query<{ attempts: number; delivered_at: Date | null }>('select attempts, delivered_at from webhook_outbox');
    expect(row).toMatchObject({ attempts: limits.webhookAttemptsMax, delivered_at: null });
    answers.length = 0;
  });

  it('doubles the back-off from webhookBackoffMsFirst up to webhookBackoffMsMax', () => {
    expect(backoffMs(1)).toBe(limits.webhookBackoffMsFirst);
    expect(backoffMs(2)).toBe(limits.webhookBackoffMsFirst * 2);
    expect(backoffMs(30)).toBe(limits.webhookBackoffMsMax);
  });
});
