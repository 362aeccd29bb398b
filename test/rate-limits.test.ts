/**
 * Rate limits: the limiter itself (GCRA with a clock the test moves, bounded memory), then each
 * kind of bucket on a running system — per source address on every server, per merchant API key,
 * per credential, enrollment and revocation per address — each answering `rate_limited` (429)
 * with Retry-After, leaving other keys alone, and recovering once time passes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request as httpsRequest } from 'node:https';
import { newId } from '@kessai/protocol';
import { RateLimiter, createRateLimiters } from '@kessai/service';
import { BankCaller } from './support/bank.ts';
import { demoCard, startTestSystem, type TestSystem } from './support/system.ts';

describe('RateLimiter', () => {
  it('allows the burst at once, then one request per interval, and says how long to wait', () => {
    let now = 1_000_000;
    const limiter = new RateLimiter({ perMinute: 6, burst: 3 }, { now: () => now });
    expect([1, 2, 3].map(() => limiter.take('a').allowed)).toEqual([true, true, true]);
    expect(limiter.take('a')).toEqual({ allowed: false, retryAfterSeconds: 10 });
    now += 4_000;
    expect(limiter.take('a')).toEqual({ allowed: false, retryAfterSeconds: 6 });
    now += 6_000;
    expect(limiter.take('a').allowed).toBe(true);
    expect(limiter.take('a').allowed).toBe(false);
    // A refused request spends nothing: waiting the advertised time is enough.
    now += 10_000;
    expect(limiter.take('a').allowed).toBe(true);
  });

  it('keeps each key in its own bucket', () => {
    const limiter = new RateLimiter({ perMinute: 1, burst: 1 }, { now: () => 0 });
    expect(limiter.take('a').allowed).toBe(true);
    expect(limiter.take('a').allowed).toBe(false);
    expect(limiter.take('b').allowed).toBe(true);
  });

  it('tracks at most keysMax keys, forgetting refilled buckets first', () => {
    let now = 0;
    const limiter = new RateLimiter({ perMinute: 60, burst: 2 }, { now: () => now, keysMax: 100 });
    for (let i = 0; i < 1_000; i += 1) limiter.take(`key-${i}`);
    expect(limiter.size).toBe(100);
    // The newest keys are still limited; the oldest were forgotten.
    limiter.take('key-999');
    expect(limiter.take('key-999').allowed).toBe(false);
    now += 60_000;
    for (let i = 0; i < 50; i += 1) limiter.take(`later-${i}`);
    expect(limiter.size).toBeLessThanOrEqual(100);
  });

  it('refuses a rate or burst that cannot work', () => {
    expect(() => new RateLimiter({ perMinute: 0, burst: 1 })).toThrow(TypeError);
    expect(() => new RateLimiter({ perMinute: 1, burst: 0 })).toThrow(TypeError);
    expect(() => new RateLimiter({ perMinute: 1, burst: 1 }, { keysMax: 0 })).toThrow(TypeError);
  });

  it('builds one limiter per named limit from limits.ts, with overrides', () => {
    const limiters = createRateLimiters({ limits: { enrollment: { perMinute: 1, burst: 1 } }, now: () => 0 });
    expect(Object.keys(limiters).sort()).toEqual(['address', 'credential', 'enrollment', 'enrollmentPerCard', 'internalCard', 'internalCredential', 'merchant', 'recovery']);
    expect(limiters.enrollment.take('x').allowed).toBe(true);
    expect(limiters.enrollment.take('x').allowed).toBe(false);
  });
});

let system: TestSystem;
let now = Date.now();
const burst = { address: 40, merchant: 5, credential: 5, enrollment: 2, recovery: 2, internalCredential: 3, internalCard: 5 };

beforeAll(async () => {
  system = await startTestSystem({
    rateLimits: {
      limits: Object.fromEntries(Object.entries(burst).map(([name, b]) => [name, { perMinute: 60, burst: b }])),
      now: () => now,
    },
  });
});
afterAll(() => system?.stop());

/** Every bucket full again: an hour later on the servers' clock. */
const refill = () => (now += 60 * 60 * 1000);

/** One HTTPS call from a chosen loopback source address (127.0.0.1 or another 127.x address). */
async function call(from: string, method: 'GET' | 'POST', url: string, options: { body?: unknown; headers?: Record<string, string>; asBroker?: boolean } = {}) {
  const broker = options.asBroker ? system.pki.leaves['auth-server'] : undefined;
  const body = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise<{ status: number; retryAfter: string | undefined; contentType: string; body: { code?: string } | undefined }>((resolve, reject) => {
    const outgoing = httpsRequest(url, { method, ca: system.pki.caCertPem, localAddress: from, agent: false, ...(broker ? { cert: broker.certPem, key: broker.keyPem } : {}), headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...options.headers } }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const retryAfter = response.headers['retry-after'];
        resolve({ status: response.statusCode ?? 0, retryAfter, contentType: String(response.headers['content-type'] ?? ''), body: text ? (JSON.parse(text) as { code?: string }) : undefined });
      });
    });
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

/** Calls `times` times and returns the statuses. */
async function statuses(times: number, send: () => Promise<{ status: number }>): Promise<number[]> {
  const seen: number[] = [];
  for (let i = 0; i < times; i += 1) seen.push((await send()).status);
  return seen;
}

function expectRateLimited(answer: Awaited<ReturnType<typeof call>>) {
  expect(answer.status).toBe(429);
  expect(answer.body?.code).toBe('rate_limited');
  expect(answer.contentType).toContain('application/problem+json');
  expect(Number(answer.retryAfter)).toBeGreaterThanOrEqual(1);
}

describe('rate limits on a running system', () => {
  it('limits every server per source address, leaves other addresses alone, and recovers', async () => {
    const servers = [system.auth.url, system.shop.url, ...system.settlements.map((s) => s.url)];
    for (const base of servers) {
      refill();
      const url = `${base}/.well-known/jwks.json`;
      const path = base === system.shop.url ? `${base}/api/products` : url;
      expect(await statuses(burst.address, () => call('127.0.0.1', 'GET', path))).toEqual(Array(burst.address).fill(200));
      expectRateLimited(await call('127.0.0.1', 'GET', path));
      expect((await call('127.0.0.2', 'GET', path)).status).toBe(200);
      // The broker's mutual-TLS calls to an issuer spend its own payers' buckets, not the issuer's address bucket.
      if (system.settlements.some((s) => s.url === base)) expect((await call('127.0.0.1', 'GET', path, { asBroker: true })).status).toBe(200);
      now += 1_000;
      expect((await call('127.0.0.1', 'GET', path)).status).toBe(200);
    }
  });

  it('limits enrollment per source address before reading the body', async () => {
    refill();
    const enrollments = `${system.auth.url}/v1/enrollments`;
    expect(await statuses(burst.enrollment, () => call('127.0.0.1', 'POST', enrollments, { body: {} }))).toEqual([400, 400]);
    expectRateLimited(await call('127.0.0.1', 'POST', enrollments, { body: {} }));
    expect((await call('127.0.0.3', 'POST', enrollments, { body: {} })).status).toBe(400);
    // Other routes of the same address still have budget.
    expect((await call('127.0.0.1', 'GET', `${system.auth.url}/.well-known/jwks.json`)).status).toBe(200);
    now += 1_000;
    expect((await call('127.0.0.1', 'POST', enrollments, { body: {} })).status).toBe(400);
  });

  it('limits credential revocation per source address', async () => {
    refill();
    const revoke = `${system.auth.url}/v1/credentials/${newId('cred')}/revoke`;
    const first = await statuses(burst.recovery, () => call('127.0.0.1', 'POST', revoke, { body: {} }));
    expect(first.every((status) => status !== 429)).toBe(true);
    expectRateLimited(await call('127.0.0.1', 'POST', revoke, { body: {} }));
    expect((await call('127.0.0.4', 'POST', revoke, { body: {} })).status).not.toBe(429);
    now += 1_000;
    expect((await call('127.0.0.1', 'POST', revoke, { body: {} })).status).not.toBe(429);
  });

  it('limits the merchant API per API key, whatever the address', async () => {
    refill();
    const url = `${system.auth.url}/v1/payment-requests/${newId('pr')}`;
    const merchant = { authorization: `Bearer ${system.merchant.apiKey}` };
    expect(await statuses(burst.merchant, () => call('127.0.0.1', 'GET', url, { headers: merchant }))).toEqual(Array(burst.merchant).fill(404));
    expectRateLimited(await call('127.0.0.1', 'GET', url, { headers: merchant }));
    expectRateLimited(await call('127.0.0.5', 'GET', url, { headers: merchant }));
    // Another key (here one the server does not know) has its own bucket.
    expect((await call('127.0.0.1', 'GET', url, { headers: { authorization: 'Bearer sk_test_not_a_real_key_at_all' } })).status).toBe(401);
    now += 1_000;
    expect((await call('127.0.0.1', 'GET', url, { headers: merchant })).status).toBe(404);
  });

  it('limits the terminal API per credential (device), whatever the address', async () => {
    refill();
    const url = `${system.auth.url}/v1/terminal/payment-requests/${newId('pr')}`;
    const proofFor = (credentialId: string) => {
      const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
      return { authorization: `KessaiDevice ${part({ alg: 'ES256', typ: 'kessai-device+jwt' })}.${part({ sub: credentialId, iat: Math.floor(Date.now() / 1000) })}.${'A'.repeat(86)}` };
    };
    const device = proofFor(newId('cred'));
    expect(await statuses(burst.credential, () => call('127.0.0.1', 'GET', url, { headers: device }))).toEqual(Array(burst.credential).fill(401));
    expectRateLimited(await call('127.0.0.1', 'GET', url, { headers: device }));
    expectRateLimited(await call('127.0.0.6', 'GET', url, { headers: device }));
    expect((await call('127.0.0.1', 'GET', url, { headers: proofFor(newId('cred')) })).status).toBe(401);
    now += 1_000;
    expect((await call('127.0.0.1', 'GET', url, { headers: device })).status).toBe(401);
  });

  it('limits the issuer’s /internal authorizations per credential and per card, whoever calls (the broker’s certificate included)', async () => {
    refill();
    const sakura = system.settlements.find((s) => s.issuer.id === 'sakura-bank')!;
    const leaf = system.pki.leaves['auth-server']!;
    const bank = new BankCaller(sakura.url, 'sakura-bank', { caCertPem: system.pki.caCertPem, certPem: leaf.certPem, keyPem: leaf.keyPem });
    const card = demoCard('4000056655665556');
    const merchant = { id: system.merchant.merchantId, name: 'Kessai Tea House' };
    try {
      const first = await bank.enroll(card);
      const second = await bank.enroll(card);
      const pay = async (device: typeof first) => bank.call('POST', '/internal/v1/authorizations', await bank.authorizeBody(device, card, merchant, { approvedAmount: '100' }));
      const byFirst = [];
      for (let i = 0; i <= burst.internalCredential; i++) byFirst.push(await pay(first));
      expect(byFirst.map((a) => a.status)).toEqual([...Array(burst.internalCredential).fill(200), 429]);
      expect(byFirst.at(-1)!.body.code).toBe('rate_limited');
      // Another device of the same card has its own credential budget, but the card's budget is shared.
      const bySecond = [];
      for (let i = burst.internalCredential; i <= burst.internalCard; i++) bySecond.push(await pay(second));
      expect(bySecond.map((a) => a.status)).toEqual([...Array(burst.internalCard - burst.internalCredential).fill(200), 429]);
      expect(bySecond.at(-1)!.body.code).toBe('rate_limited');
    } finally {
      await bank.close();
    }
  });
});
