/**
 * The operations surface of every server of a running system (docs/operations.md): /livez and
 * /readyz with each server's checks, outside rate limits; Request-Id on every answer, in problem
 * bodies, in the SDK's errors and in the log lines; one payment's W3C trace id in the logs of the
 * broker's wallet-facing request, the bank's authorization and the shop's webhook; and /metrics
 * after a payment, readable with the operator token only, with bounded labels.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { KessaiError } from '@kessai/protocol';
import { HttpClient } from '@kessai/sdk';
import { byAddress, createLogger, createRateLimiters, createServer, rateLimitHook } from '@kessai/service';
import { personalDataNeedles } from './support/retention.ts';
import { checkout, waitForOrder } from './support/shop.ts';
import { demoCard, enroll, startTestSystem, waitFor, type TestSystem } from './support/system.ts';

const backend = process.env.KESSAI_TEST_PG_URL ? 'PostgreSQL' : 'PGlite';
const card = demoCard('4242424242424242');

let system: TestSystem;
let agent: Agent;

beforeAll(async () => {
  system = await startTestSystem();
  agent = new Agent({ connect: { ca: system.pki.caCertPem } });
}, 180_000);
afterAll(async () => {
  await agent?.close();
  await system?.stop();
});

async function get(url: string, headers: Record<string, string> = {}) {
  const response = await request(url, { dispatcher: agent, headers });
  const text = await response.body.text();
  return { status: response.statusCode, headers: response.headers, text, json: () => JSON.parse(text) as Record<string, unknown> };
}

const servers = () => [
  { role: 'auth-server', url: system.auth.url, checks: ['database', 'directory', 'issuers', 'keys', 'migrations'] },
  { role: 'shop', url: system.shop.url, checks: ['database', 'migrations'] },
  ...system.settlements.map((s) => ({ role: `settlement-${s.issuer.id}`, url: s.url, checks: ['database', 'keys', 'migrations'] })),
  { role: 'wallet', url: system.wallet.url, checks: [] as string[] },
];

async function logOf(role: string): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(path.join(system.dataDir, 'logs', `${role}.log`), 'utf8');
  return text
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe(`health: /livez and /readyz on every server (${backend})`, () => {
  it('answers live and ready, naming each server’s checks', async () => {
    for (const server of servers()) {
      const live = await get(`${server.url}/livez`);
      expect(live.status, server.role).toBe(200);
      expect(live.json()).toEqual({ status: 'live' });
      const ready = await get(`${server.url}/readyz`);
      expect(ready.status, `${server.role}: ${ready.text}`).toBe(200);
      expect(ready.json()).toEqual({ status: 'ready', checks: Object.fromEntries(server.checks.map((name) => [name, 'ok'])) });
    }
  });

  it('answers 503 not_ready naming the failing check, and logs the change once', async () => {
    const app = system.shop.app;
    app.operations.readinessChecks.push({ name: 'test_dependency', check: () => Promise.reject(new Error('down for the test')) });
    try {
      const ready = await get(`${system.shop.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(ready.json()).toEqual({ status: 'not_ready', checks: { database: 'ok', migrations: 'ok', test_dependency: 'failed' } });
      expect(ready.text).not.toContain('down for the test');
      expect((await get(`${system.shop.url}/readyz`)).status).toBe(503);
      const changes = (await logOf('shop')).filter((line) => line.msg === 'readiness check changed');
      expect(changes).toEqual([expect.objectContaining({ level: 40, check: 'test_dependency', outcome: 'failed', before: null })]);
      expect(JSON.stringify(changes)).not.toContain('down for the test');
    } finally {
      app.operations.readinessChecks.pop();
    }
    expect((await get(`${system.shop.url}/readyz`)).status).toBe(200);
  });

  it('is not ready while the database holds a migration this release does not have (a newer release migrated it), and ready again after', async () => {
    const db = system.shop.db;
    await db.query("insert into schema_migrations (version, name, sha256) values (9999, 'from_a_newer_release', 'x')");
    try {
      const ready = await get(`${system.shop.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(ready.json()).toEqual({ status: 'not_ready', checks: { database: 'ok', migrations: 'failed' } });
    } finally {
      await db.query('delete from schema_migrations where version = 9999');
    }
    expect((await get(`${system.shop.url}/readyz`)).status).toBe(200);
  });

  it('keeps answering health checks once the address rate limit is spent, with no credential', async () => {
    const app = createServer({ logger: createLogger({ name: 'health-rate-limit' }) });
    app.addHook('onRequest', rateLimitHook(createRateLimiters({ limits: { address: { perMinute: 1, burst: 1 } } }), byAddress));
    app.get('/thing', async () => ({ ok: true }));
    try {
      expect((await app.inject({ url: '/thing' })).statusCode).toBe(200);
      expect((await app.inject({ url: '/thing' })).statusCode).toBe(429);
      for (let i = 0; i < 5; i++) {
        expect((await app.inject({ url: '/livez' })).statusCode).toBe(200);
        expect((await app.inject({ url: '/readyz' })).statusCode).toBe(200);
        expect((await app.inject({ url: '/metrics' })).statusCode).toBe(200); // no operator token on this server: open
      }
    } finally {
      await app.close();
    }
  });

  it('never logs a health check at info', async () => {
    const settlement = system.settlements[0]!;
    for (let i = 0; i < 3; i++) expect((await get(`${settlement.url}/livez`)).status).toBe(200);
    const lines = await logOf(`settlement-${settlement.issuer.id}`);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.filter((line) => JSON.stringify(line).includes('/livez') || JSON.stringify(line).includes('/readyz'))).toEqual([]);
  });
});

describe(`Request-Id (${backend})`, () => {
  it('echoes a safe Request-Id and binds it to the request’s log lines', async () => {
    const answer = await get(`${system.auth.url}/.well-known/jwks.json`, { 'request-id': 'lb-7f3a.2_X' });
    expect(answer.status).toBe(200);
    expect(answer.headers['request-id']).toBe('lb-7f3a.2_X');
    const lines = (await logOf('auth-server')).filter((line) => line.request_id === 'lb-7f3a.2_X');
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines[0]).toMatchObject({ trace_id: expect.stringMatching(/^[0-9a-f]{32}$/), span_id: expect.stringMatching(/^[0-9a-f]{16}$/) });
  });

  it('replaces one that is too long or has other characters with its own req_…', async () => {
    for (const unsafe of ['x'.repeat(65), 'a b', 'id"}', 'card=4242424242424242;']) {
      const answer = await get(`${system.auth.url}/.well-known/jwks.json`, { 'request-id': unsafe });
      expect(answer.headers['request-id']).toMatch(/^req_[0-9a-hjkmnp-tv-z]{26}$/);
    }
    const generated = await get(`${system.shop.url}/api/products`);
    expect(generated.headers['request-id']).toMatch(/^req_[0-9a-hjkmnp-tv-z]{26}$/);
  });

  it('puts it in every problem body — a 404, a bad URL, a refused credential, a malformed request head — and in the SDK’s KessaiError', async () => {
    const notFound = await get(`${system.auth.url}/no/such/route`, { 'request-id': 'probe-404' });
    expect(notFound.status).toBe(404);
    expect(notFound.headers['request-id']).toBe('probe-404');
    expect(notFound.json()).toMatchObject({ code: 'not_found', request_id: 'probe-404' });

    const badUrl = await get(`${system.auth.url}/v1/payment-requests/%E0%A4%A`);
    expect(badUrl.status).toBe(400);
    expect(badUrl.json().request_id).toBe(badUrl.headers['request-id']);

    const unauthenticated = await get(`${system.auth.url}/v1/payment-requests/pr_00000000000000000000000000`, { authorization: 'Bearer nope' });
    expect(unauthenticated.status).toBe(401);
    expect(unauthenticated.json().request_id).toBe(unauthenticated.headers['request-id']);

    // A request head the HTTP parser refuses never reaches Fastify: its answer still carries one.
    const { hostname, port } = new URL(system.auth.url);
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect({ host: hostname, port: Number(port), ca: system.pki.caCertPem, servername: 'localhost' }, () => socket.write('NOT HTTP AT ALL\r\n\r\n'));
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString('utf8'))).on('close', () => resolve(text)).on('error', reject);
    });
    const id = /\r\nRequest-Id: (req_[0-9a-z]{26})\r\n/.exec(raw)?.[1];
    expect(id).toBeDefined();
    expect(raw).toContain(`"request_id":"${id}"`);

    const client = new HttpClient({ caCertPem: system.pki.caCertPem });
    try {
      const refused = await client.call('GET', `${system.auth.url}/v1/payment-requests/pr_00000000000000000000000000`, { schema: (await import('zod')).z.unknown(), unavailable: 'issuer_unavailable', headers: { authorization: 'Bearer nope', 'request-id': 'sdk-probe-1' } }).catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(KessaiError);
      expect(refused).toMatchObject({ code: 'unauthenticated', requestId: 'sdk-probe-1' });
    } finally {
      await client.close();
    }
  });

  it('answers one on the terminal event stream’s route (refused here without a device proof)', async () => {
    const answer = await request(`${system.auth.url}/v1/terminal/events`, { dispatcher: agent, headers: { 'request-id': 'stream-probe' } });
    await answer.body.text();
    expect(answer.headers['request-id']).toBe('stream-probe');
  });
});

describe(`W3C trace context (${backend})`, () => {
  it('continues a valid inbound traceparent with a span of its own, and starts a new trace for an invalid one', async () => {
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    await get(`${system.auth.url}/no/such/route`, { traceparent: `00-${traceId}-b7ad6b7169203331-01`, 'request-id': 'trace-valid' });
    for (const [n, invalid] of [`01-${traceId}-b7ad6b7169203331-01`, `00-${traceId.toUpperCase()}-b7ad6b7169203331-01`, `00-${'0'.repeat(32)}-b7ad6b7169203331-01`, `00-${traceId}-0000000000000000-01`, `00-${traceId}-b7ad6b7169203331-01-extra`, 'garbage'].entries()) {
      await get(`${system.auth.url}/no/such/route`, { traceparent: invalid, 'request-id': `trace-invalid-${n}` });
    }
    const lines = await logOf('auth-server');
    const valid = lines.find((line) => line.request_id === 'trace-valid')!;
    expect(valid.trace_id).toBe(traceId);
    expect(valid.span_id).not.toBe('b7ad6b7169203331');
    for (let n = 0; n < 6; n++) {
      const line = lines.find((l) => l.request_id === `trace-invalid-${n}`)!;
      expect(line.trace_id).toMatch(/^[0-9a-f]{32}$/);
      expect(line.trace_id).not.toBe(traceId);
    }
  });

  it('carries one payment’s trace id from the wallet’s approval at the broker to the bank’s authorization and the shop’s webhook', async () => {
    const wallet = await enroll(system, card.cardNumber);
    try {
      const order = await checkout(system, [{ index: 0, quantity: 1 }]);
      const outcome = await wallet.approve(await wallet.fetchRequest(order.payment_request_id), card.pin);
      expect(outcome.status).toBe('approved');
      await waitForOrder(system, order.order_id, 'captured');
    } catch (err) {
      await wallet.close();
      throw err;
    }
    await wallet.close();
    const broker = await logOf('auth-server');
    const approval = broker.find((line) => (line.request as { route?: string; ids?: string[] } | undefined)?.route === '/v1/terminal/payment-requests/:id/approve');
    expect(approval).toBeDefined();
    const traceId = approval!.trace_id as string;
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    const bank = await logOf(`settlement-${card.issuer.id}`);
    expect(bank.some((line) => line.trace_id === traceId && (line.request as { route?: string } | undefined)?.route === '/internal/v1/authorizations')).toBe(true);
    await waitFor('the webhook delivery line', async () => ((await logOf('auth-server')).some((line) => line.msg === 'webhook delivered' && line.trace_id === traceId) ? true : undefined));
    const shop = await logOf('shop');
    expect(shop.some((line) => line.trace_id === traceId && (line.request as { route?: string } | undefined)?.route === '/webhooks/kessai')).toBe(true);
  }, 60_000);
});

describe(`metrics (${backend})`, () => {
  it('answers only the server’s operator token', async () => {
    for (const url of [system.auth.url, system.shop.url, system.settlements[0]!.url]) {
      const anonymous = await get(`${url}/metrics`);
      expect(anonymous.status).toBe(401);
      expect(anonymous.json()).toMatchObject({ code: 'unauthenticated' });
    }
  });

  it('reports request durations by route pattern, the database pool, and the broker’s and the bank’s own metrics after a payment', async () => {
    const broker = await get(`${system.auth.url}/metrics`, system.operatorHeaders(system.auth.url));
    expect(broker.status).toBe(200);
    expect(broker.headers['content-type']).toContain('text/plain');
    expect(broker.text).toMatch(/^process_cpu_user_seconds_total \d/m);
    expect(broker.text).toMatch(/^http_request_duration_seconds_count\{method="POST",route="\/v1\/terminal\/payment-requests\/:id\/approve",status_code="200"\} [1-9]/m);
    expect(broker.text).toMatch(/^http_request_duration_seconds_count\{method="GET",route="\(no route\)",status_code="404"\} [1-9]/m);
    expect(broker.text).toMatch(/^kessai_payment_requests\{state="captured"\} [1-9]/m);
    expect(broker.text).toMatch(/^kessai_webhook_deliveries_total\{outcome="delivered"\} [1-9]/m);
    expect(broker.text).toMatch(/^kessai_webhook_oldest_pending_age_seconds \d/m);
    expect(broker.text).toMatch(/^db_pool_connections\{state="in_use"\} \d/m);
    expect(broker.text).toMatch(/^db_pool_connections\{state="waiting"\} \d/m);
    // Statements sent so far (db.ts statementCount): what the benchmark divides by payments.
    expect(broker.text).toMatch(/^db_statements_total [1-9]/m);

    const settlement = system.settlements.find((s) => s.issuer.id === card.issuer.id)!;
    const bank = await get(`${settlement.url}/metrics`, system.operatorHeaders(settlement.url));
    expect(bank.status).toBe(200);
    expect(bank.text).toMatch(/^kessai_bank_authorizations_total\{decision="approved",code="none"\} [1-9]/m);
    expect(bank.text).toMatch(/^kessai_ledger_batch_jobs_count [1-9]/m);
    expect(bank.text).toMatch(/^kessai_ledger_batch_duration_seconds_count [1-9]/m);
    expect(bank.text).toMatch(/^db_statements_total [1-9]/m);

    // No id, raw URL or personal data in any label: only route patterns.
    for (const text of [broker.text, bank.text]) {
      expect(text).not.toMatch(/(pr|cred|auth|mer|ord|cart|evt|req)_[0-9a-hjkmnp-tv-z]{26}/);
      expect(text).not.toContain('/no/such/route');
      for (const { pattern } of personalDataNeedles()) expect(text).not.toMatch(pattern);
    }
  });
});

// Last: it closes the broker of this file's system.
describe(`draining (${backend})`, () => {
  it('ends a terminal’s open event stream when the broker closes, so the terminal reconnects to another instance', async () => {
    const wallet = await enroll(system, card.cardNumber);
    const controller = new AbortController();
    try {
      const listening = (async () => {
        for await (const request of wallet.listen(controller.signal)) void request;
        return 'ended';
      })();
      await waitFor('the event stream to open', async () => (system.auth.context.hub.size > 0 ? true : undefined));
      system.auth.app.operations.startDraining();
      expect((await get(`${system.auth.url}/readyz`)).status).toBe(503);
      const closing = system.auth.app.close();
      expect(await Promise.race([listening, new Promise((resolve) => setTimeout(() => resolve('still open'), 5_000))])).toBe('ended');
      await closing;
      expect(system.auth.context.hub.size).toBe(0);
    } finally {
      controller.abort();
      await wallet.close();
    }
  }, 30_000);
});
