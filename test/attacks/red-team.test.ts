/**
 * Red-team findings (issue 11, item 10), each closed and tested on a running system.
 * docs/threat-model.md ("Red-team findings") maps each test to its finding.
 */
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { limits } from '@kessai/protocol';
import { createLogger, createServer, defaultServerTimeouts, type ServerTimeouts } from '@kessai/service';
import { startTestSystem, type TestSystem } from '../support/system.ts';

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
    ...system.settlements.map((s) => ({ name: `settlement-${s.issuer.id}`, url: new URL(s.url), post: '/internal/v1/account-checks', clientCertificate: true })),
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
