/**
 * Webhook delivery reaches merchants the way browsers do: it trusts Node's root certificates plus
 * the configured CA (undici's `ca` alone would replace the roots, and a merchant with a publicly
 * issued certificate would never get an event), while a certificate of a CA trusted by neither is
 * still refused. Each delivery continues the trace of the request that queued its event.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:https';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { rootCertificates } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { newId } from '@kessai/protocol';
import { traceStorage } from '@kessai/sdk';
import { createLogger, loadOrCreateDevPki, migrate, openDb, type Db, type DevPki } from '@kessai/service';
import type { PaymentRequestRow } from '../src/payment-requests.ts';
import { transition } from '../src/payment-state.ts';
import { WebhookDispatcher } from '../src/webhooks.ts';
import { pgliteTemplate } from '../../../test/support/database.ts';

const migrations = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'migrations');

let db: Db;
let dir: string;
/** Three CAs: the deployment's development CA, a merchant's CA configured as extra, and one nobody configured. */
let devPki: DevPki;
let merchantPki: DevPki;
let strangerPki: DevPki;
const receivers: Server[] = [];
const received: Array<{ url: string; traceparent: string | undefined }> = [];

async function receiver(pki: DevPki, name: string): Promise<string> {
  const leaf = pki.leaves[name]!;
  const server = createServer({ key: leaf.keyPem, cert: leaf.certPem }, (request, response) => {
    received.push({ url: name, traceparent: request.headers.traceparent as string | undefined });
    request.resume().on('end', () => response.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receivers.push(server);
  return `https://127.0.0.1:${(server.address() as { port: number }).port}/webhooks/kessai`;
}

const leafSpec = (name: string) => [{ name, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usages: ['server' as const] }];

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'kessai-webhook-trust-'));
  devPki = await loadOrCreateDevPki(path.join(dir, 'dev'), leafSpec('shop'));
  merchantPki = await loadOrCreateDevPki(path.join(dir, 'merchant-ca'), leafSpec('merchant'));
  strangerPki = await loadOrCreateDevPki(path.join(dir, 'stranger-ca'), leafSpec('stranger'));
  db = await openDb({ pgliteTemplate: await pgliteTemplate() });
  await migrate(db, migrations);
  await db.query("insert into merchants (id, name, api_key_hash, webhook_url, webhook_secret) values ('mer_public', 'Public', 'h1', $1, 's1'), ('mer_stranger', 'Stranger', 'h2', $2, 's2')", [
    await receiver(merchantPki, 'merchant'),
    await receiver(strangerPki, 'stranger'),
  ]);
});
afterAll(async () => {
  await db?.close();
  for (const server of receivers) server.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** An approved payment of `merchantId`, its event queued by the state machine inside a request's trace (or none). */
async function approvedEvent(merchantId: string, traceId?: string): Promise<void> {
  const id = newId('pr');
  const [row] = await db.query<PaymentRequestRow>("insert into payment_requests (id, merchant_id, order_id, currency, amount_minor, line_items, status, expires_at) values ($1, $2, $3, 'JPY', 1200, $4, 'authorizing', now()) returning *", [
    id,
    merchantId,
    `o-${id}`,
    JSON.stringify([{ description: 'Sencha', quantity: 1, unit_price_minor: '1200' }]),
  ]);
  const queue = () => transition(db, row!, 'issuer_approved', {}, { publicBaseUrl: 'https://127.0.0.1', now: new Date() });
  expect(await (traceId ? traceStorage.run({ traceId, spanId: '00f067aa0ba902b7', flags: '01' }, queue) : queue())).toBeDefined();
}

describe('webhook delivery trusts the public roots plus the configured CA', () => {
  it('lists every Node root certificate and the configured CA among the CAs a delivery trusts', () => {
    const cas = WebhookDispatcher.trustedCas(merchantPki.caCertPem);
    expect(rootCertificates.length).toBeGreaterThan(100);
    for (const root of rootCertificates) expect(cas).toContain(root);
    expect(cas).toContain(merchantPki.caCertPem);
  });

  it('reaches a merchant whose certificate comes from a CA other than the development CA, configured as extra, and refuses one from a CA nobody configured', async () => {
    // The extra CA bundle holds the development CA and the merchant's CA, as KESSAI_TLS_CA_FILE would.
    const dispatcher = new WebhookDispatcher(db, createLogger({ name: 'webhook-trust' }), `${devPki.caCertPem}\n${merchantPki.caCertPem}`);
    try {
      received.length = 0;
      const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
      await approvedEvent('mer_public', traceId);
      await approvedEvent('mer_stranger');
      expect(await dispatcher.deliverDue(new Date())).toBe(2);
      const rows = await db.query<{ merchant_id: string; status: string; last_status: number }>('select merchant_id, status, last_status from webhook_outbox order by merchant_id');
      expect(rows).toEqual([
        { merchant_id: 'mer_public', status: 'delivered', last_status: 200 },
        // The TLS handshake failed (status 0): a certificate no trusted CA signed is still refused.
        { merchant_id: 'mer_stranger', status: 'pending', last_status: 0 },
      ]);
      // The delivery continued the trace of the request that queued the event, with a span of its own.
      expect(received.filter((r) => r.url === 'merchant').map((r) => r.traceparent)).toEqual([expect.stringMatching(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`))]);
      expect(received.find((r) => r.url === 'merchant')!.traceparent).not.toContain('00f067aa0ba902b7');
    } finally {
      await dispatcher.close();
    }
  });
});
