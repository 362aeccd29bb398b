/**
 * Red-team findings (issue 11, item 10), each closed and tested on a running system.
 * docs/threat-model.md ("Red-team findings") maps each test to its finding.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect as tcpConnect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request, type Dispatcher } from 'undici';
import { limits } from '@kessai/protocol';
import { MerchantClient, WalletClient } from '@kessai/sdk';
import { buildAuthServer } from '@kessai/auth-server';
import { buildSettlementServer } from '@kessai/settlement-server';
import { defineShopConfig, type ShopConfig } from '@kessai/shop';
import { purgeIdempotencyKeys } from '../../apps/auth-server/src/idempotency.ts';
import { createLogger, createServer, defaultServerTimeouts, registerWebPages, type ServerTimeouts } from '@kessai/service';
import { codeOf } from '../support/errors.ts';
import { approvedRequest, cardAccount, idempotencyKey } from '../support/payer.ts';
import { demoCard, enroll, startTestSystem, waitFor, type TestSystem } from '../support/system.ts';

/** What the server sent on a raw connection, and how long after `since` it closed it. */
interface Closed {
  text: string;
  afterMs: number;
}

function closing(socket: Socket, since: () => number): Promise<Closed> {
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (text += chunk));
  socket.on('error', () => undefined);
  return new Promise((resolve) => socket.on('close', () => resolve({ text, afterMs: Date.now() - since() })));
}

/** A sakura-bank card for enrollments that must reach the issuer. */
const sakuraCardForEnrollment = '4000056655665556';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('connection timeouts (finding 1)', () => {
  // Short enough to watch each act within a second or two; their order is the production one.
  const timeouts: ServerTimeouts = { tlsHandshakeMs: 800, connectionIdleMs: 2_500, requestMs: 1_000, requestCheckMs: 100, keepAliveMs: 600 };
  let system: TestSystem;
  beforeAll(async () => {
    system = await startTestSystem({ serverTimeouts: timeouts });
  });
  afterAll(() => system?.stop());

  /** Every server of the system, with a POST route that reads a JSON body (the settlement server's wants the broker's certificate). */
  const servers = () => [
    { name: 'auth-server', url: new URL(system.auth.url), post: '/v1/enrollments', clientCertificate: false },
    { name: 'shop', url: new URL(system.shop.url), post: '/api/carts', clientCertificate: false },
    ...system.settlements.map((s) => ({ name: `settlement-${s.issuer.id}`, url: new URL(s.url), post: '/internal/v1/enrollments', clientCertificate: true })),
  ];

  function tls(url: URL, clientCertificate = false) {
    const leaf = system.pki.leaves['auth-server']!;
    return tlsConnect({ host: url.hostname, port: Number(url.port), ca: system.pki.caCertPem, ...(clientCertificate ? { cert: leaf.certPem, key: leaf.keyPem } : {}) });
  }

  it('uses the timeouts of limits.ts on a server built without overrides', async () => {
    const app = createServer({ logger: createLogger({ name: 'red-team', stdout: false }), tls: { keyPem: system.pki.leaves.shop!.keyPem, certPem: system.pki.leaves.shop!.certPem, caCertPem: system.pki.caCertPem } });
    try {
      const server = app.server as unknown as { timeout: number; requestTimeout: number; headersTimeout: number; keepAliveTimeout: number; connectionsCheckingInterval: number; _handshakeTimeout?: number };
      expect(defaultServerTimeouts).toEqual({ tlsHandshakeMs: limits.tlsHandshakeMsMax, connectionIdleMs: limits.connectionIdleMsMax, requestMs: limits.requestTimeoutMs, requestCheckMs: limits.requestTimeoutCheckMs, keepAliveMs: limits.keepAliveTimeoutMs });
      expect({ idle: server.timeout, request: server.requestTimeout, headers: server.headersTimeout, keepAlive: server.keepAliveTimeout, check: server.connectionsCheckingInterval }).toEqual({
        idle: limits.connectionIdleMsMax,
        request: limits.requestTimeoutMs,
        headers: limits.requestTimeoutMs,
        keepAlive: limits.keepAliveTimeoutMs,
        check: limits.requestTimeoutCheckMs,
      });
      // A quiet event stream (heartbeat) and a request waiting on an issuer must outlive the idle timeout.
      expect(limits.connectionIdleMsMax).toBeGreaterThan(Math.max(limits.sseHeartbeatMs, limits.upstreamTimeoutMs));
      expect(limits.keepAliveTimeoutMs).toBeLessThan(limits.connectionIdleMsMax);
      expect(limits.requestTimeoutCheckMs).toBeLessThan(limits.requestTimeoutMs);
    } finally {
      await app.close();
    }
  });

  it('closes a TCP connection that never starts the TLS handshake, on every server', async () => {
    const closed = await Promise.all(
      servers().map(async ({ url }) => {
        const opened = Date.now();
        const socket = tcpConnect({ host: url.hostname, port: Number(url.port) });
        return closing(socket, () => opened);
      }),
    );
    for (const { afterMs } of closed) expect(afterMs).toBeLessThan(timeouts.tlsHandshakeMs + 1_000);
    for (const { afterMs } of closed) expect(afterMs).toBeGreaterThanOrEqual(timeouts.tlsHandshakeMs - 100);
  });

  it('closes a TLS connection that sends nothing, on every server, answering request_timeout at most', async () => {
    const closed = await Promise.all(
      servers().map(async ({ url }) => {
        const socket = tls(url);
        let connected = 0;
        socket.once('secureConnect', () => (connected = Date.now()));
        return closing(socket, () => connected);
      }),
    );
    for (const { text, afterMs } of closed) {
      expect(afterMs).toBeLessThan(timeouts.connectionIdleMs + 1_000);
      if (text !== '') expect(text).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n[^]*"code":"request_timeout"/);
    }
  });

  it('answers request_timeout (408) and closes the connection when a request head or body trickles in slower than the request timeout, on every server', async () => {
    const trickle = async (socket: Socket, head: string, drip: string) => {
      socket.write(head);
      // One byte every 150 ms: the connection is never idle, so only the request timeout can end it.
      while (!socket.destroyed) {
        await sleep(150);
        if (!socket.destroyed) socket.write(drip);
      }
    };
    const attempts = servers().flatMap(({ url, post, clientCertificate }) => [
      { url, clientCertificate, head: `GET /.well-known/jwks.json HTTP/1.1\r\nHost: ${url.host}\r\n`, drip: 'X' },
      { url, clientCertificate, head: `POST ${post} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n`, drip: ' ' },
    ]);
    const closed = await Promise.all(
      attempts.map(async ({ url, clientCertificate, head, drip }) => {
        const socket = tls(url, clientCertificate);
        await new Promise((resolve) => socket.once('secureConnect', resolve));
        const started = Date.now();
        const done = closing(socket, () => started);
        void trickle(socket, head, drip);
        return done;
      }),
    );
    for (const { text, afterMs } of closed) {
      expect(text).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
      expect(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4))).toMatchObject({ status: 408, code: 'request_timeout' });
      expect(text).toContain(`\r\nStrict-Transport-Security: max-age=${limits.hstsMaxAgeSeconds}\r\n`);
      expect(afterMs).toBeGreaterThanOrEqual(timeouts.requestMs - 50);
      expect(afterMs).toBeLessThan(timeouts.requestMs + 1_500);
    }
  });

  it('closes a kept-alive connection that asks nothing more after keepAliveTimeout, well before the idle timeout, on every server', async () => {
    const closed = await Promise.all(
      servers().map(async ({ url }) => {
        const socket = tls(url);
        await new Promise((resolve) => socket.once('secureConnect', resolve));
        let answered = 0;
        const done = closing(socket, () => answered);
        socket.on('data', () => (answered ||= Date.now()));
        socket.write(`GET /.well-known/jwks.json HTTP/1.1\r\nHost: ${url.host}\r\nConnection: keep-alive\r\n\r\n`);
        return done;
      }),
    );
    for (const { text, afterMs } of closed) {
      expect(text).toMatch(/^HTTP\/1\.1 \d{3} /);
      expect(text).toMatch(/\r\nconnection: keep-alive\r\n/i);
      expect(afterMs).toBeGreaterThanOrEqual(timeouts.keepAliveMs - 100);
      expect(afterMs).toBeLessThan(timeouts.connectionIdleMs - 500);
    }
  });
});

describe('findings 2–5, on one system with the production timeouts', () => {
  let system: TestSystem;
  /** Trusts the development CA, presents no client certificate. */
  let anonymous: Agent;
  let merchant: MerchantClient;
  /** While set, every settlement server answers refunds 503 before doing anything (an issuer down). */
  let issuersRefuseRefunds = false;
  /** While set, every settlement server's metadata names this jwks_uri (an issuer, or someone on its path, pointing brokers at plain HTTP). */
  let issuersAnnounceJwksUri: string | undefined;
  beforeAll(async () => {
    system = await startTestSystem({
      beforeListen: (role, app) => {
        if (!role.startsWith('settlement-')) return;
        app.addHook('onRequest', async (request, reply) => {
          if (issuersRefuseRefunds && request.url.endsWith('/refunds')) return reply.code(503).send({ unavailable: true });
          return undefined;
        });
        app.addHook('onSend', async (request, _reply, payload) => {
          if (issuersAnnounceJwksUri === undefined || request.url !== '/.well-known/kessai-issuer' || typeof payload !== 'string') return payload;
          return payload.replace(/"jwks_uri":"[^"]*"/, `"jwks_uri":${JSON.stringify(issuersAnnounceJwksUri)}`);
        });
      },
    });
    anonymous = new Agent({ connect: { ca: system.pki.caCertPem } });
    merchant = new MerchantClient({ maxNetworkRetries: 0, baseUrl: system.auth.url, apiKey: system.merchant.apiKey, caCertPem: system.pki.caCertPem });
  });
  afterAll(async () => {
    await merchant?.close();
    await anonymous?.close();
    await system?.stop();
  });

  describe('revocation with the recovery code, locked per credential and source address (finding 2)', () => {
    /** One agent per source address: the server's request.ip is the socket's, and 127.0.0.0/8 is all loopback on Linux. */
    const agents = new Map<string, Agent>();
    afterAll(async () => {
      for (const agent of agents.values()) await agent.close();
    });
    async function revokeFrom(address: string, credentialId: string, code: string) {
      let agent = agents.get(address);
      if (!agent) agents.set(address, (agent = new Agent({ localAddress: address, connect: { ca: system.pki.caCertPem } })));
      const response = await request(`${system.auth.url}/v1/credentials/${credentialId}/revoke`, { dispatcher: agent, method: 'POST', body: JSON.stringify({ recovery_code: code }), headers: { 'content-type': 'application/json' } });
      const body = (await response.body.json()) as { code?: string; detail?: string; status?: string; revoked_by?: string };
      return { http: response.statusCode, ...body };
    }
    async function enrolled(cardNumber = '4242424242424242') {
      const card = demoCard(cardNumber);
      const { wallet, recoveryCode } = await WalletClient.enrollment({ authBaseUrl: system.auth.url, caCertPem: system.pki.caCertPem, directoryKey: system.directoryKey.publicJwk, holderName: card.holderName, cardNumber: card.cardNumber, expiry: card.expiry, pin: card.pin });
      return { credentialId: wallet.credential_id, code: recoveryCode.expose() };
    }

    it(`a stranger's recoveryAttemptsMax (${limits.recoveryAttemptsMax}) wrong codes lock only the stranger's address, and the payer still revokes from another address with the right code`, async () => {
      const { credentialId, code } = await enrolled();
      for (let i = 0; i < limits.recoveryAttemptsMax; i++) expect(await revokeFrom('127.0.0.2', credentialId, 'AAAA-BBBB-CCCC-DDDD-EEEE')).toMatchObject({ http: 403, code: 'recovery_code_invalid' });
      // Locked from that address, even for the right code.
      expect(await revokeFrom('127.0.0.2', credentialId, code)).toMatchObject({ http: 429, code: 'recovery_locked', detail: 'too many wrong recovery codes for this credential from this address' });
      const [lock] = await system.auth.db.query<{ source: string; locked_until: Date | string }>('select source, locked_until from credential_recovery_failures where credential_id = $1', [credentialId]);
      expect(lock!.source).toBe('127.0.0.2');
      expect(new Date(lock!.locked_until).getTime()).toBeGreaterThan(Date.now() + limits.recoveryLockoutMs - 60_000);
      // The payer, from their own address, is not locked out.
      expect(await revokeFrom('127.0.0.3', credentialId, code)).toMatchObject({ http: 200, status: 'revoked', revoked_by: 'payer' });
    });

    it(`wrong codes from many addresses lock the credential for every address at recoveryAttemptsPerCredentialMax (${limits.recoveryAttemptsPerCredentialMax}), the payer's right code included`, async () => {
      const { credentialId, code } = await enrolled();
      // Codes of the wrong shape are counted like well-formed wrong ones, without an argon2 verification each.
      // One short of the ceiling, recoveryAttemptsMax per address at most: no address is locked yet.
      let sent = 0;
      for (let a = 1; sent < limits.recoveryAttemptsPerCredentialMax - 1; a++) {
        for (let i = 0; i < limits.recoveryAttemptsMax && sent < limits.recoveryAttemptsPerCredentialMax - 1; i++, sent++) {
          expect((await revokeFrom(`127.0.1.${a}`, credentialId, 'not the code')).code).toBe('recovery_code_invalid');
        }
      }
      // The last one, from an address that never failed: still checked, and it reaches the ceiling.
      expect((await revokeFrom('127.0.2.1', credentialId, 'not the code either')).code).toBe('recovery_code_invalid');
      expect(await revokeFrom('127.0.3.1', credentialId, code)).toMatchObject({ http: 429, code: 'recovery_locked', detail: 'too many wrong recovery codes for this credential' });
      const [row] = await system.auth.db.query<{ locked_until: Date | string }>('select locked_until from credential_recovery where credential_id = $1', [credentialId]);
      expect(new Date(row!.locked_until).getTime()).toBeGreaterThan(Date.now() + limits.recoveryLockoutMs - 60_000);
    });
  });

  describe('refund Idempotency-Key reuse (finding 3)', () => {
    const sakuraCard = '4242424242424242';
    const fujiCard = '5555555555554444';
    const wallets = new Map<string, WalletClient>();
    afterAll(async () => {
      for (const wallet of wallets.values()) await wallet.close();
    });
    /** A payment request of `amount` yen paid with `cardNumber` and captured in full. */
    async function captured(cardNumber: string, amount: bigint): Promise<string> {
      let wallet = wallets.get(cardNumber);
      if (!wallet) wallets.set(cardNumber, (wallet = await enroll(system, cardNumber)));
      const id = await approvedRequest(merchant, wallet, cardNumber, amount);
      await merchant.capture(id, {}, idempotencyKey());
      return id;
    }
    /** What the payers' accounts got back and what the authentication server says was refunded. */
    async function refundedSoFar(ids: string[]) {
      const rows = await system.auth.db.query<{ id: string; refunded_minor: string | bigint }>('select id, refunded_minor from payment_requests where id = any($1)', [ids]);
      return {
        sakura: (await cardAccount(system, sakuraCard)).creditsPosted,
        fuji: (await cardAccount(system, fujiCard)).creditsPosted,
        requests: Object.fromEntries(rows.map((row) => [row.id, BigInt(row.refunded_minor)])),
      };
    }
    /** The worker's purge, once the key (and its refund) are older than idempotencyKeyTtlMs. */
    async function purge(key: string) {
      const old = new Date(Date.now() - limits.idempotencyKeyTtlMs - 60_000);
      await system.auth.db.query('update idempotency_keys set created_at = $2 where key = $1', [key, old]);
      await system.auth.db.query('update refunds set created_at = $2 where idempotency_key = $1', [key, old]);
      await purgeIdempotencyKeys(system.auth.db, new Date());
      expect(await system.auth.db.query('select 1 from idempotency_keys where key = $1', [key])).toEqual([]);
    }

    it('refuses a refund Idempotency-Key reused on another payment request with idempotency_key_reused while the key is kept', async () => {
      const [first, second] = [await captured(sakuraCard, 1000n), await captured(sakuraCard, 1000n)];
      const key = idempotencyKey();
      await merchant.refund(first, 300n, key);
      const before = await refundedSoFar([first, second]);
      expect(await codeOf(merchant.refund(second, 300n, key))).toBe('idempotency_key_reused');
      expect(await refundedSoFar([first, second])).toEqual(before);
    });

    for (const other of [{ issuer: 'the same issuer', card: sakuraCard }, { issuer: 'another issuer', card: fujiCard }]) {
      it(`refuses a refund Idempotency-Key reused, after it was purged, on another payment request at ${other.issuer} with idempotency_key_reused, and refunds nothing`, async () => {
        const [first, second] = [await captured(sakuraCard, 1000n), await captured(other.card, 1000n)];
        const key = idempotencyKey();
        await merchant.refund(first, 300n, key);
        await purge(key);
        const before = await refundedSoFar([first, second]);
        expect(await codeOf(merchant.refund(second, 300n, key))).toBe('idempotency_key_reused');
        expect(await refundedSoFar([first, second])).toEqual(before);
      });
    }

    it('refuses a refund Idempotency-Key reused after it was purged on the same payment request, same amount, with idempotency_key_reused: no second refund and no replay', async () => {
      const id = await captured(sakuraCard, 1000n);
      const key = idempotencyKey();
      await merchant.refund(id, 200n, key);
      await purge(key);
      const before = await refundedSoFar([id]);
      expect(await codeOf(merchant.refund(id, 200n, key))).toBe('idempotency_key_reused');
      expect(await codeOf(merchant.refund(id, 250n, key))).toBe('idempotency_key_reused');
      expect(await refundedSoFar([id])).toEqual(before);
    });

    it('refuses the key of a refund the issuer never answered on another payment request, and the same refund retried with it still completes once', async () => {
      const [first, second] = [await captured(sakuraCard, 1000n), await captured(fujiCard, 1000n)];
      const key = idempotencyKey();
      issuersRefuseRefunds = true;
      try {
        expect(await codeOf(merchant.refund(first, 400n, key))).toBe('issuer_unavailable');
      } finally {
        issuersRefuseRefunds = false;
      }
      const before = await refundedSoFar([first, second]);
      expect(await codeOf(merchant.refund(second, 400n, key))).toBe('idempotency_key_reused');
      expect(await codeOf(merchant.refund(first, 500n, key))).toBe('idempotency_key_reused');
      expect(await refundedSoFar([first, second])).toEqual(before);
      // The saved intent, retried as it was asked, is carried out once.
      const refund = await merchant.refund(first, 400n, key);
      expect(refund).toMatchObject({ payment_request_id: first, amount_minor: '400', refunded_minor: '400' });
      expect(await merchant.refund(first, 400n, key)).toEqual(refund);
      expect(await refundedSoFar([first, second])).toEqual({ ...before, sakura: before.sakura + 400n, requests: { ...before.requests, [first]: 400n } });
    });

    it('answers the retry of a full refund whose stored answer was lost in a crash with that refund, not refund_exceeds_captured, and refunds once', async () => {
      const id = await captured(sakuraCard, 800n);
      const key = idempotencyKey();
      const refund = await merchant.refund(id, 800n, key);
      // The process died after the refund was recorded, before its answer was stored under the key.
      await system.auth.db.query("update idempotency_keys set state = 'in_progress', response_status = null, response_body = null, locked_until = $2 where key = $1", [key, new Date(Date.now() - 1_000)]);
      const before = await refundedSoFar([id]);
      expect(await merchant.refund(id, 800n, key)).toEqual(refund);
      expect(await refundedSoFar([id])).toEqual(before);
    });
  });

  describe('Strict-Transport-Security on every HTTPS answer (finding 4)', () => {
    const hsts = `max-age=${limits.hstsMaxAgeSeconds}`;
    const servers = () => [
      { name: 'auth-server', url: system.auth.url, page: '/console/' },
      { name: 'wallet', url: system.wallet.url, page: '/wallet/' },
      { name: 'shop', url: system.shop.url, page: '/store/' },
      ...system.settlements.map((s) => ({ name: `settlement-${s.issuer.id}`, url: s.url, page: '/console/' })),
    ];

    it('is a year, as limits.hstsMaxAgeSeconds says', () => {
      expect(hsts).toBe('max-age=31536000');
    });

    it('comes with successes, redirects, pages, not_found, method_not_allowed, bad URLs, bad JSON and missing client certificates, on every server', async () => {
      const answers: Array<{ server: string; what: string; status: number; hsts: unknown }> = [];
      for (const { name, url, page } of servers()) {
        const ask = async (what: string, path: string, options: { method?: Dispatcher.HttpMethod; body?: string } = {}) => {
          const response = await request(`${url}${path}`, { dispatcher: anonymous, method: options.method ?? 'GET', ...(options.body === undefined ? {} : { body: options.body, headers: { 'content-type': 'application/json' } }) });
          await response.body.dump();
          answers.push({ server: name, what, status: response.statusCode, hsts: response.headers['strict-transport-security'] });
        };
        await ask('success', '/.well-known/jwks.json');
        await ask('redirect', '/');
        await ask('page', page);
        await ask('not_found', '/no-such-path');
        await ask('method_not_allowed', '/.well-known/jwks.json', { method: 'DELETE' });
        await ask('bad URL', '/%zz');
        await ask('bad JSON', '/v1/payment-requests', { method: 'POST', body: '{"a":' });
      }
      // The settlement server's internal routes without the broker's certificate.
      for (const settlement of system.settlements) {
        const response = await request(`${settlement.url}/internal/v1/enrollments`, { dispatcher: anonymous, method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
        await response.body.dump();
        answers.push({ server: `settlement-${settlement.issuer.id}`, what: 'no client certificate', status: response.statusCode, hsts: response.headers['strict-transport-security'] });
      }
      const statuses = new Set(answers.map((a) => a.status));
      for (const status of [200, 302, 400, 401, 404, 405]) expect(statuses).toContain(status);
      expect(answers.filter((a) => a.hsts !== hsts)).toEqual([]);
    });

    it('comes with the answer Node writes itself to a request head past its size limit, on every server', async () => {
      for (const { url } of servers()) {
        const target = new URL(url);
        const socket = tlsConnect({ host: target.hostname, port: Number(target.port), ca: system.pki.caCertPem });
        await new Promise((resolve) => socket.once('secureConnect', resolve));
        const done = closing(socket, Date.now);
        socket.write(`GET / HTTP/1.1\r\nHost: ${target.host}\r\nX-Padding: ${'a'.repeat(20_000)}\r\n\r\n`);
        const { text } = await done;
        expect(text).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
        expect(text).toContain(`\r\nStrict-Transport-Security: ${hsts}\r\n`);
      }
    });

    it('comes with the event stream, which writes its own head', async () => {
      const wallet = await enroll(system, '4242424242424242');
      const responses: Array<{ url: string; response: ServerResponse }> = [];
      const watch = (incoming: IncomingMessage, response: ServerResponse) => responses.push({ url: incoming.url ?? '', response });
      system.auth.app.server.on('request', watch);
      const abort = new AbortController();
      const stream = wallet.listen(abort.signal);
      const next = stream.next().catch(() => undefined);
      try {
        const opened = await waitFor('the event stream to answer', async () => responses.find((r) => r.url === '/v1/terminal/events' && r.response.headersSent));
        expect(opened.response.statusCode).toBe(200);
        expect(opened.response.getHeader('content-type')).toBe('text/event-stream');
        expect(opened.response.getHeader('strict-transport-security')).toBe(hsts);
      } finally {
        abort.abort();
        await next;
        system.auth.app.server.off('request', watch);
        await wallet.close();
      }
    });

    it('comes with a built page served by registerWebPages', async () => {
      const dir = await mkdtemp(path.join(tmpdir(), 'kessai-pages-'));
      await mkdir(path.join(dir, 'demo'));
      await writeFile(path.join(dir, 'demo', 'index.html'), '<!doctype html><title>demo</title>');
      const leaf = system.pki.leaves.shop!;
      const app = createServer({ logger: createLogger({ name: 'red-team-pages', stdout: false }), tls: { keyPem: leaf.keyPem, certPem: leaf.certPem, caCertPem: system.pki.caCertPem } });
      registerWebPages(app, 'red-team', { dir });
      try {
        await app.listen({ port: 0, host: '127.0.0.1' });
        const { port } = app.server.address() as AddressInfo;
        const response = await request(`https://127.0.0.1:${port}/demo/`, { dispatcher: anonymous });
        expect(await response.body.text()).toContain('<title>demo</title>');
        expect(response.statusCode).toBe(200);
        expect(response.headers['strict-transport-security']).toBe(hsts);
      } finally {
        await app.close();
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
  describe('https: for every key, metadata and webhook URL (finding 5)', () => {
    it('refuses to build an authentication server with an http: merchant webhookUrl, issuer baseUrl or publicBaseUrl, with a TypeError naming the field', async () => {
      const config = system.auth.context.config;
      const merchantSeed = { id: system.merchant.merchantId, name: 'Kessai Tea House', apiKey: system.merchant.apiKey, webhookSecret: system.merchant.webhookSecret };
      const [issuer] = config.issuers;
      await expect(buildAuthServer({ ...config, merchants: [{ ...merchantSeed, webhookUrl: 'http://127.0.0.1:8446/webhooks/kessai' }] })).rejects.toThrow(new TypeError(`AuthConfig.merchants[${merchantSeed.id}].webhookUrl must be an https: URL`));
      await expect(buildAuthServer({ ...config, issuers: [{ ...issuer!, baseUrl: issuer!.baseUrl.replace('https:', 'http:') }] })).rejects.toThrow(new TypeError(`AuthConfig.issuers[${issuer!.id}].baseUrl must be an https: URL`));
      await expect(buildAuthServer({ ...config, publicBaseUrl: 'http://127.0.0.1:8443' })).rejects.toThrow(new TypeError('AuthConfig.publicBaseUrl must be an https: URL'));
    });

    it("refuses to build a settlement server whose publicBaseUrl (its metadata's jwks_uri) is http:, and a shop with an http: issuer JWKS URL, publicBaseUrl or authBaseUrl", async () => {
      const settlement = system.settlements[0]!;
      await expect(buildSettlementServer({ ...settlement.config, publicBaseUrl: settlement.url.replace('https:', 'http:') })).rejects.toThrow(new TypeError('SettlementConfig.publicBaseUrl must be an https: URL'));
      const shop: ShopConfig = {
        logger: createLogger({ name: 'red-team-shop', stdout: false }),
        db: system.shop.db,
        merchantApiKey: system.merchant.apiKey,
        authBaseUrl: system.auth.url,
        caCertPem: system.pki.caCertPem,
        webhookSecrets: [system.merchant.webhookSecret],
        issuers: { 'sakura-bank': `${settlement.url}/.well-known/jwks.json` },
        publicBaseUrl: system.shop.url,
      };
      expect(defineShopConfig(shop).issuers).toEqual(shop.issuers);
      expect(() => defineShopConfig({ ...shop, issuers: { 'sakura-bank': `${settlement.url.replace('https:', 'http:')}/.well-known/jwks.json` } })).toThrow(new TypeError('ShopConfig.issuers[sakura-bank] must be an https: URL'));
      expect(() => defineShopConfig({ ...shop, publicBaseUrl: system.shop.url.replace('https:', 'http:') })).toThrow(new TypeError('ShopConfig.publicBaseUrl must be an https: URL'));
      expect(() => defineShopConfig({ ...shop, authBaseUrl: system.auth.url.replace('https:', 'http:') })).toThrow(new TypeError('ShopConfig.authBaseUrl must be an https: URL'));
      expect(() => defineShopConfig({ ...shop, authBaseUrl: 'not a url' })).toThrow(new TypeError('ShopConfig.authBaseUrl is not a URL'));
    });

    it('refuses issuer metadata naming an http: jwks_uri with issuer_unavailable and never fetches it: enrollment at that issuer is refused', async () => {
      // A plain-HTTP server that would serve the issuer's real keys: it must never be asked.
      const settlement = system.settlements.find((s) => s.issuer.id === 'sakura-bank')!;
      const realKeys = JSON.stringify(settlement.config.keys.jwks());
      let asked = 0;
      const plain = createHttpServer((_request, response) => {
        asked += 1;
        response.writeHead(200, { 'content-type': 'application/json' }).end(realKeys);
      });
      await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
      const issuers = system.auth.context.issuers;
      issuersAnnounceJwksUri = `http://127.0.0.1:${(plain.address() as AddressInfo).port}/.well-known/jwks.json`;
      issuers.forget('sakura-bank');
      try {
        expect(await codeOf(issuers.byId('sakura-bank'))).toBe('issuer_unavailable');
        const card = demoCard(sakuraCardForEnrollment);
        expect(await codeOf(WalletClient.enrollment({ authBaseUrl: system.auth.url, caCertPem: system.pki.caCertPem, directoryKey: system.directoryKey.publicJwk, holderName: card.holderName, cardNumber: card.cardNumber, expiry: card.expiry, pin: card.pin }))).toBe('issuer_unavailable');
        expect(asked).toBe(0);
      } finally {
        issuersAnnounceJwksUri = undefined;
        issuers.forget('sakura-bank');
        await new Promise((resolve) => plain.close(resolve));
      }
      // With https: again, the same issuer is reached.
      expect((await issuers.byId('sakura-bank')).metadata.jwks_uri).toBe(`${settlement.url}/.well-known/jwks.json`);
    });

    it('refuses, in the wallet, an http: jwks_uri of the authentication server (the key of the request views) with issuer_unavailable, and never fetches it (the PIN’s key comes from the signed directory only)', async () => {
      let asked = 0;
      const plain = createHttpServer((_request, response) => {
        asked += 1;
        response.writeHead(404).end();
      });
      await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
      const httpUri = `http://127.0.0.1:${(plain.address() as AddressInfo).port}/.well-known/jwks.json`;
      const wallet = await enroll(system, sakuraCardForEnrollment);
      const created = await merchant.createPaymentRequest({ order_id: `o-${idempotencyKey()}`, currency: 'JPY', amount_minor: '500', line_items: [{ description: 'Sencha', quantity: 1, unit_price_minor: '500' }] }, idempotencyKey());
      const requestKeyOverHttp = new WalletClient({ ...wallet.wallet, auth_jwks_uri: httpUri }, { caCertPem: system.pki.caCertPem });
      try {
        expect(await codeOf(requestKeyOverHttp.fetchRequest(created.id))).toBe('issuer_unavailable');
        expect(asked).toBe(0);
        // The same wallet with its https: URLs pays.
        expect((await wallet.approve(await wallet.fetchRequest(created.id), demoCard(sakuraCardForEnrollment).pin)).status).toBe('approved');
      } finally {
        await Promise.all([requestKeyOverHttp.close(), wallet.close()]);
        await new Promise((resolve) => plain.close(resolve));
      }
    });
  });
});

