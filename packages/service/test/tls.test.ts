import { X509Certificate } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { Agent, request as undiciRequest } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { DEV_CA_COMMON_NAME, loadOrCreateDevPki, type DevPki, type LeafSpec } from '../src/tls.ts';

const LOOPBACK = { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'] };
const SPECS: LeafSpec[] = [
  { name: 'settlement-server', ...LOOPBACK, usages: ['server'] },
  { name: 'auth-server', ...LOOPBACK, usages: ['server', 'client'] },
  { name: 'shop', ...LOOPBACK, usages: ['server'] },
];
const onPosix = process.platform !== 'win32';

const tempDirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kessai-pki-'));
  tempDirs.push(dir);
  return path.join(dir, 'tls'); // a folder that does not exist yet, as on first start
}

interface TestServer {
  port: number;
  /** Errors the server saw while handshaking (a refused client shows up here). */
  tlsErrors: NodeJS.ErrnoException[];
  /** How many requests reached the handler (a refused client must never get there). */
  handled: () => number;
  close: () => Promise<void>;
}

const servers: TestServer[] = [];
async function startServer(options: https.ServerOptions): Promise<TestServer> {
  let handled = 0;
  const tlsErrors: NodeJS.ErrnoException[] = [];
  const server = https.createServer(options, (req, res) => {
    handled += 1;
    const socket = req.socket as TLSSocket;
    const peer = socket.getPeerCertificate();
    res.setHeader('content-type', 'application/json');
    res.end(
      JSON.stringify({
        protocol: socket.getProtocol(),
        peer: peer.subject?.CN ?? null,
        authorized: socket.authorized,
        authorizationError: socket.authorizationError ?? null,
      }),
    );
  });
  server.on('tlsClientError', (error) => tlsErrors.push(error as NodeJS.ErrnoException));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const testServer: TestServer = {
    port: (server.address() as AddressInfo).port,
    tlsErrors,
    handled: () => handled,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  servers.push(testServer);
  return testServer;
}

interface Reply {
  status: number;
  protocol: string | null;
  body: { protocol: string; peer: string | null; authorized: boolean; authorizationError: string | null };
}

/** One GET over a fresh connection (no agent, so nothing is reused between assertions). */
function get(options: https.RequestOptions): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request({ path: '/', agent: false, ...options }, (res) => {
      const protocol = (res.socket as TLSSocket).getProtocol();
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, protocol, body: JSON.parse(text) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

let pki: DevPki;
let otherPki: DevPki;
let dir: string;

function leaf(name: string, from: DevPki = pki): { key: string; cert: string } {
  const pair = from.leaves[name];
  if (!pair) throw new Error(`no leaf ${name}`);
  return { key: pair.keyPem, cert: pair.certPem };
}

beforeAll(async () => {
  dir = await tempDir();
  pki = await loadOrCreateDevPki(dir, SPECS);
  otherPki = await loadOrCreateDevPki(await tempDir(), SPECS);
});

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

afterAll(async () => {
  await Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('loadOrCreateDevPki over real HTTPS servers', () => {
  it('a server leaf is trusted by a client that trusts only the CA, over 127.0.0.1 and localhost, with TLS 1.3', async () => {
    const server = await startServer(leaf('settlement-server'));

    const byIp = await get({ host: '127.0.0.1', port: server.port, ca: pki.caCertPem });
    expect(byIp.status).toBe(200);
    expect(byIp.protocol).toBe('TLSv1.3');

    // family 4: the server listens on 127.0.0.1 only, and localhost may resolve to ::1 first.
    const byName = await get({ host: 'localhost', family: 4, port: server.port, ca: pki.caCertPem });
    expect(byName.status).toBe(200);
    expect(byName.protocol).toBe('TLSv1.3');

    // The checks are real: the public trust store does not know the CA, and a name outside the SANs fails.
    await expect(get({ host: '127.0.0.1', port: server.port })).rejects.toMatchObject({
      code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    });
    await expect(
      get({ host: '127.0.0.1', servername: 'example.com', port: server.port, ca: pki.caCertPem, headers: { host: 'example.com' } }),
    ).rejects.toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  });

  it('the CA is named Kessai development CA and the leaves carry the SANs and usages of their spec', () => {
    const ca = new X509Certificate(pki.caCertPem);
    expect(ca.subject).toContain(`CN=${DEV_CA_COMMON_NAME}`);
    expect(ca.ca).toBe(true);

    const auth = new X509Certificate(pki.leaves['auth-server']!.certPem);
    expect(auth.ca).toBe(false);
    expect(auth.checkIssued(ca)).toBe(true);
    expect(auth.verify(ca.publicKey)).toBe(true);
    expect(auth.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    expect(auth.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']); // Node calls the EKU list keyUsage
    expect(new X509Certificate(pki.leaves['shop']!.certPem).keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    const days = (Date.parse(auth.validTo) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(364);
    expect(days).toBeLessThan(366);
    expect(auth.serialNumber).not.toBe(new X509Certificate(pki.leaves['shop']!.certPem).serialNumber);
  });

  describe('mutual TLS (requestCert and rejectUnauthorized on the server)', () => {
    const mtlsServer = () =>
      startServer({ ...leaf('settlement-server'), ca: pki.caCertPem, requestCert: true, rejectUnauthorized: true });

    it('accepts a client presenting the client leaf and sees who it is', async () => {
      const server = await mtlsServer();
      const reply = await get({ host: '127.0.0.1', port: server.port, ca: pki.caCertPem, ...leaf('auth-server') });
      expect(reply.status).toBe(200);
      expect(reply.body).toEqual({ protocol: 'TLSv1.3', peer: 'auth-server', authorized: true, authorizationError: null });
    });

    it('refuses a client without a certificate', async () => {
      const server = await mtlsServer();
      await expect(get({ host: '127.0.0.1', port: server.port, ca: pki.caCertPem })).rejects.toThrow();
      await vi.waitFor(() => expect(server.tlsErrors.map((e) => e.code)).toContain('ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE'));
      expect(server.handled()).toBe(0);
    });

    // With rejectUnauthorized, Node finishes the TLS 1.3 handshake and then destroys the socket without
    // saying why (the client and the tlsClientError both just see ECONNRESET). A second server with
    // rejectUnauthorized:false shows the reason the first one refused.
    const whyRefused = async (client: { key: string; cert: string }): Promise<string | null> => {
      const lenient = await startServer({ ...leaf('settlement-server'), ca: pki.caCertPem, requestCert: true, rejectUnauthorized: false });
      const reply = await get({ host: '127.0.0.1', port: lenient.port, ca: pki.caCertPem, ...client });
      expect(reply.body.authorized).toBe(false);
      return reply.body.authorizationError;
    };

    it('refuses a client whose certificate comes from another CA', async () => {
      const server = await mtlsServer();
      // The client trusts our CA for the server but presents a leaf of another dev PKI.
      const client = leaf('auth-server', otherPki);
      await expect(get({ host: '127.0.0.1', port: server.port, ca: pki.caCertPem, ...client })).rejects.toThrow();
      await vi.waitFor(() => expect(server.tlsErrors.length).toBeGreaterThan(0));
      expect(server.handled()).toBe(0);
      expect(await whyRefused(client)).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    });

    it('refuses a leaf that lacks clientAuth even when it comes from the right CA', async () => {
      const server = await mtlsServer();
      await expect(get({ host: '127.0.0.1', port: server.port, ca: pki.caCertPem, ...leaf('shop') })).rejects.toThrow();
      await vi.waitFor(() => expect(server.tlsErrors.length).toBeGreaterThan(0));
      expect(server.handled()).toBe(0);
      expect(await whyRefused(leaf('shop'))).toBe('INVALID_PURPOSE');
    });

    it('works from an undici Agent with connect { ca, cert, key }, as the servers call each other', async () => {
      const server = await mtlsServer();
      const agent = new Agent({ connect: { ca: pki.caCertPem, ...leaf('auth-server') } });
      try {
        const res = await undiciRequest(`https://127.0.0.1:${server.port}/`, { dispatcher: agent });
        expect(res.statusCode).toBe(200);
        expect(await res.body.json()).toMatchObject({ protocol: 'TLSv1.3', peer: 'auth-server', authorized: true });

        const byName = await undiciRequest(`https://localhost:${server.port}/`, {
          dispatcher: new Agent({ connect: { ca: pki.caCertPem, ...leaf('auth-server'), family: 4 } }),
        });
        expect(byName.statusCode).toBe(200);
        await byName.body.dump();
      } finally {
        await agent.close();
      }

      const withoutCert = new Agent({ connect: { ca: pki.caCertPem } });
      try {
        await expect(undiciRequest(`https://127.0.0.1:${server.port}/`, { dispatcher: withoutCert })).rejects.toThrow();
      } finally {
        await withoutCert.close();
      }
    });
  });

  it('a server with minVersion TLSv1.2 refuses a client forcing maxVersion TLSv1.1', async () => {
    const server = await startServer({ ...leaf('settlement-server'), minVersion: 'TLSv1.2' });
    const error = await get({
      host: '127.0.0.1',
      port: server.port,
      ca: pki.caCertPem,
      minVersion: 'TLSv1',
      maxVersion: 'TLSv1.1',
    }).then(
      () => null,
      (e: NodeJS.ErrnoException) => e,
    );
    expect(error, 'the TLS 1.1 handshake must fail').not.toBeNull();
    // Node's OpenSSL 3 does still send a TLS 1.1 ClientHello, and the server answers protocol_version.
    // If a future OpenSSL refuses to even try, the client fails on its own, which is just as good.
    if (!/no protocols available/i.test(error?.message ?? '')) {
      await vi.waitFor(() => expect(server.tlsErrors.map((e) => e.code)).toContain('ERR_SSL_UNSUPPORTED_PROTOCOL'));
    }
    expect(server.handled()).toBe(0);
  });
});

describe('loadOrCreateDevPki on disk', () => {
  it('a second call reuses the same files and certificates', async () => {
    const again = await loadOrCreateDevPki(dir, SPECS);
    expect(again.issued).toEqual([]);
    expect(again.caCertPem).toBe(pki.caCertPem);
    expect(again.leaves).toEqual(pki.leaves);
    expect(await readFile(path.join(dir, 'auth-server.cert.pem'), 'utf8')).toBe(pki.leaves['auth-server']!.certPem);
    expect(again.caCertPath).toBe(path.join(dir, 'ca.cert.pem'));
  });

  it.skipIf(!onPosix)('key files have mode 0600 and the folder 0700, and a loosened key file is tightened again', async () => {
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    for (const stem of ['ca', 'settlement-server', 'auth-server', 'shop']) {
      expect((await stat(path.join(dir, `${stem}.key.pem`))).mode & 0o777, stem).toBe(0o600);
      expect((await stat(path.join(dir, `${stem}.cert.pem`))).mode & 0o777, stem).toBe(0o644);
    }
    await chmod(path.join(dir, 'shop.key.pem'), 0o644);
    await loadOrCreateDevPki(dir, SPECS);
    expect((await stat(path.join(dir, 'shop.key.pem'))).mode & 0o777).toBe(0o600);
  });

  it('private keys are PKCS#8 PEM', () => {
    for (const pair of Object.values(pki.leaves)) expect(pair.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
  });

  it('a leaf whose SANs differ from the spec is re-issued, the others and the CA are kept', async () => {
    const d = await tempDir();
    const first = await loadOrCreateDevPki(d, SPECS);
    const changed = SPECS.map((s) => (s.name === 'shop' ? { ...s, dnsNames: ['localhost', 'shop.localhost'] } : s));
    const second = await loadOrCreateDevPki(d, changed);
    expect(second.issued).toEqual(['shop']);
    expect(second.caCertPem).toBe(first.caCertPem);
    expect(second.leaves['auth-server']).toEqual(first.leaves['auth-server']);
    expect(new X509Certificate(second.leaves['shop']!.certPem).subjectAltName).toContain('DNS:shop.localhost');

    // Order, case and spelling of the same names do not count as a difference.
    const respelled = changed.map((s) => ({ ...s, dnsNames: [...s.dnsNames].reverse().map((n) => n.toUpperCase()), ipAddresses: ['0:0::1', '127.0.0.1'] }));
    expect((await loadOrCreateDevPki(d, respelled)).issued).toEqual([]);
  });

  it('leaves expiring within 30 days are re-issued, the CA is kept', async () => {
    const d = await tempDir();
    const first = await loadOrCreateDevPki(d, SPECS);
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 340 * 86_400_000);
      const later = await loadOrCreateDevPki(d, SPECS);
      expect(later.issued).toEqual(['settlement-server', 'auth-server', 'shop']);
      expect(later.caCertPem).toBe(first.caCertPem);
    } finally {
      vi.useRealTimers();
    }
  });

  it('a missing CA key makes a new CA and re-issues every leaf under it', async () => {
    const d = await tempDir();
    const first = await loadOrCreateDevPki(d, SPECS);
    await rm(path.join(d, 'ca.key.pem'));
    const second = await loadOrCreateDevPki(d, SPECS);
    expect(second.issued).toEqual(['ca', 'settlement-server', 'auth-server', 'shop']);
    expect(second.caCertPem).not.toBe(first.caCertPem);
    const ca = new X509Certificate(second.caCertPem);
    expect(new X509Certificate(second.leaves['shop']!.certPem).verify(ca.publicKey)).toBe(true);
  });

  it('concurrent calls for the same folder in one process end up with one CA and one set of leaves', async () => {
    const d = await tempDir();
    const results = await Promise.all([1, 2, 3].map(() => loadOrCreateDevPki(d, SPECS)));
    expect(results.map((r) => r.issued.length)).toEqual([4, 0, 0]);
    expect(new Set(results.map((r) => r.caCertPem)).size).toBe(1);
    expect(results[1]!.leaves).toEqual(results[0]!.leaves);
    expect(await readFile(path.join(d, 'ca.cert.pem'), 'utf8')).toBe(results[0]!.caCertPem);
  });

  it('refuses specs it cannot honour', async () => {
    const d = await tempDir();
    await expect(loadOrCreateDevPki(d, [{ name: 'ca', ...LOOPBACK, usages: ['server'] }])).rejects.toThrow(/invalid leaf name/);
    await expect(loadOrCreateDevPki(d, [{ name: '../x', ...LOOPBACK, usages: ['server'] }])).rejects.toThrow(/invalid leaf name/);
    await expect(loadOrCreateDevPki(d, [SPECS[0]!, SPECS[0]!])).rejects.toThrow(/given twice/);
    await expect(loadOrCreateDevPki(d, [{ name: 'x', dnsNames: [], ipAddresses: ['1.2.3'], usages: ['server'] }])).rejects.toThrow(/invalid IP/);
  });
});
