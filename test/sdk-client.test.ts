/**
 * The merchant SDK against a scripted HTTPS server (issue 14, item 2): an SDK built today accepts an
 * answer with fields it does not know and a webhook event of a type it does not know (the
 * compatibility rule of docs/protocol.md); it retries 503 / 409-in-progress with the same
 * generated Idempotency-Key; it throws errors carrying code, status, errors[], retryAfter and the
 * request id; an unreachable authentication server is broker_unavailable.
 */
import { createServer, type Server } from 'node:https';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KessaiError, signStandardWebhook, signWebhook } from '@kessai/protocol';
import { loadOrCreateDevPki } from '@kessai/service';
import { isSettlementBatchEvent, knownWebhookEventTypes, MerchantClient, verifyWebhookEvent } from '@kessai/sdk';
import { readFileSync } from 'node:fs';

const vector = JSON.parse(readFileSync(new URL('../docs/protocol/vectors/webhook-signature.json', import.meta.url), 'utf8')) as { body: string };
const view = (JSON.parse(vector.body) as { data: Record<string, unknown> }).data;
const id = view.id as string;

interface Seen { method: string; url: string; idempotencyKey: string | undefined }
let server: Server;
let baseUrl: string;
let caCertPem: string;
let script: Array<{ status: number; body: unknown; headers?: Record<string, string> }> = [];
const seen: Seen[] = [];

beforeAll(async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'kessai-sdk-'));
  const pki = await loadOrCreateDevPki(path.join(dir, 'pki'), [{ name: 'fake-auth', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usages: ['server'] }]);
  caCertPem = pki.caCertPem;
  server = createServer({ key: pki.leaves['fake-auth']!.keyPem, cert: pki.leaves['fake-auth']!.certPem }, (req, res) => {
    req.resume();
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, idempotencyKey: req.headers['idempotency-key'] as string | undefined });
      const next = script.shift() ?? { status: 500, body: {} };
      res.writeHead(next.status, { 'content-type': 'application/json', 'request-id': `req_${seen.length}`, ...next.headers });
      res.end(JSON.stringify(next.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

function client(maxNetworkRetries?: number) {
  return new MerchantClient({ baseUrl, apiKey: 'sk_test_x', caCertPem, ...(maxNetworkRetries === undefined ? {} : { maxNetworkRetries }) });
}
const problem = (code: string, status: number, extra: object = {}) => ({ type: `urn:kessai:error:${code}`, title: code, status, code, ...extra });

describe('tolerant answers and events', () => {
  it('accepts an answer with fields it does not know, at the top and inside', async () => {
    seen.length = 0;
    const grown = { ...view, a_field_added_later: { nested: true }, line_items: (view.line_items as object[]).map((item) => ({ ...item, tax_code: 'x' })) };
    script = [{ status: 200, body: grown }];
    const answer = await client().getPaymentRequest(id);
    expect(answer.id).toBe(id);
    expect(answer.amount_minor).toBe('5700');
  });

  it('accepts a webhook event of a type it does not know, with new fields, under either signature', async () => {
    const secret = 'whsec_i5iOUMqFvXPIMlNBnBYultoK1OBY1JDh';
    const body = JSON.stringify({ ...(JSON.parse(vector.body) as object), type: 'payout.paid', livemode: false });
    const t = Math.floor(Date.now() / 1000);
    const kessai = await verifyWebhookEvent([secret], await signWebhook(secret, body, t), body);
    expect(kessai?.type).toBe('payout.paid');
    const headers = { 'webhook-id': 'evt_w0ewd4783w1bzwjcgm1fd7m2qm', 'webhook-timestamp': String(t), 'webhook-signature': await signStandardWebhook([secret], 'evt_w0ewd4783w1bzwjcgm1fd7m2qm', body, t) };
    expect((await verifyWebhookEvent([secret], headers, body))?.type).toBe('payout.paid');
    expect(await verifyWebhookEvent([secret], { ...headers, 'webhook-id': 'evt_other' }, body)).toBeUndefined();
    // A payment request's data under a type this SDK does not know is still a payment request's event.
    expect(kessai && isSettlementBatchEvent(kessai)).toBe(false);
  });

  it('knows settlement_batch.closed and tells it apart from a payment request’s event', async () => {
    expect(knownWebhookEventTypes).toContain('settlement_batch.closed');
    const secret = 'whsec_i5iOUMqFvXPIMlNBnBYultoK1OBY1JDh';
    const approved = await verifyWebhookEvent([secret], await signWebhook(secret, vector.body, Math.floor(Date.now() / 1000)), vector.body);
    expect(approved && isSettlementBatchEvent(approved)).toBe(false);
  });
});

describe('list pagination', () => {
  it('walks every page with for await, each after the last id of the previous, and fetches one page with .page()', async () => {
    seen.length = 0;
    const item = (n: number) => ({ ...view, id: `pr_${String(n).padStart(26, '0')}`, added_later: n });
    script = [
      { status: 200, body: { items: [item(5), item(4)], limit: 2, has_more: true } },
      { status: 200, body: { items: [item(3), item(2)], limit: 2, has_more: true } },
      { status: 200, body: { items: [item(1)], limit: 2, has_more: false } },
    ];
    const ids: string[] = [];
    for await (const request of client().listPaymentRequests({ limit: 2 })) ids.push(request.id);
    expect(ids).toEqual([5, 4, 3, 2, 1].map((n) => item(n).id));
    expect(seen.map((s) => s.url)).toEqual([
      '/v1/payment-requests?limit=2',
      `/v1/payment-requests?limit=2&starting_after=${item(4).id}`,
      `/v1/payment-requests?limit=2&starting_after=${item(2).id}`,
    ]);
    seen.length = 0;
    script = [{ status: 200, body: { items: [], limit: 10, has_more: false } }];
    expect(await client().listRefunds({ limit: 10, paymentRequestId: id }).page()).toEqual({ items: [], limit: 10, has_more: false });
    expect(seen.map((s) => s.url)).toEqual([`/v1/refunds?limit=10&payment_request_id=${id}`]);
  });
});

describe('retries and errors', () => {
  it('retries 503 and 409 in progress with the same generated Idempotency-Key, honouring Retry-After', async () => {
    seen.length = 0;
    script = [
      { status: 503, body: problem('overloaded', 503), headers: { 'retry-after': '0' } },
      { status: 409, body: problem('idempotency_request_in_progress', 409), headers: { 'retry-after': '0' } },
      { status: 200, body: view },
    ];
    const answer = await client().capture(id, {});
    expect(answer.id).toBe(id);
    expect(seen.map((s) => s.method)).toEqual(['POST', 'POST', 'POST']);
    const keys = new Set(seen.map((s) => s.idempotencyKey));
    expect(keys.size).toBe(1);
    expect([...keys][0]).toMatch(/^sdk-[0-9a-f-]{36}$/);
  });

  it('throws the answer as a typed error with code, status, errors[], retryAfter and the request id; no retry of a 400', async () => {
    seen.length = 0;
    script = [{ status: 400, body: problem('validation_failed', 400, { errors: [{ path: '/amount_minor', message: 'bad' }] }) }];
    const err = await client().capture(id, {}, 'my-key').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KessaiError);
    expect(err).toMatchObject({ code: 'validation_failed', status: 400, requestId: 'req_1', errors: [{ path: '/amount_minor', message: 'bad' }] });
    expect(seen).toHaveLength(1);
    seen.length = 0;
    script = [{ status: 429, body: problem('rate_limited', 429), headers: { 'retry-after': '7' } }];
    expect(await client(0).getPaymentRequest(id).catch((e: unknown) => e)).toMatchObject({ code: 'rate_limited', status: 429, retryAfterSeconds: 7 });
    expect(seen).toHaveLength(1);
  });

  it('an answer missing a required field, or with one of the wrong type, fails at once, naming the field and the request id', async () => {
    seen.length = 0;
    const { amount_minor: _dropped, ...missing } = view;
    script = [{ status: 200, body: missing }];
    const err = await client().capture(id, {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KessaiError);
    expect(err).toMatchObject({ code: 'broker_unavailable', requestId: 'req_1', errors: [{ path: '/amount_minor' }] });
    expect((err as Error).message).toContain('/amount_minor');
    // The server answered: a retry would get the same body (and a POST's replay the same answer), so none is made.
    expect(seen).toHaveLength(1);
    seen.length = 0;
    script = [{ status: 200, body: { ...view, amount_minor: 5700 } }];
    const wrongType = await client().getPaymentRequest(id).catch((e: unknown) => e);
    expect(wrongType).toMatchObject({ code: 'broker_unavailable', errors: [{ path: '/amount_minor' }] });
    expect(seen).toHaveLength(1);
  });

  it('an error code this SDK does not know keeps its status and code in the message; a 4xx one is not retried', async () => {
    seen.length = 0;
    script = [{ status: 422, body: problem('dispute_open', 422) }];
    const err = await client().capture(id, {}).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'broker_unavailable', requestId: 'req_1' });
    expect((err as Error).message).toMatch(/answered 422 dispute_open/);
    expect(seen).toHaveLength(1);
    seen.length = 0;
    script = [{ status: 500, body: problem('internal_error', 500) }, { status: 200, body: view }];
    expect((await client().getPaymentRequest(id)).id).toBe(id); // a 500 is retried, as stripe-node does
    expect(seen).toHaveLength(2);
  });

  it('reports an unreachable authentication server as broker_unavailable, after its retries', async () => {
    const unreachable = new MerchantClient({ baseUrl: 'https://127.0.0.1:9', apiKey: 'sk_test_x', caCertPem, maxNetworkRetries: 1 });
    const err = await unreachable.getPaymentRequest(id).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'broker_unavailable', status: 502 });
  });
});
