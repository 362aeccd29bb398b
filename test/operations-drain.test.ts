/**
 * Draining a server that runs as its own OS process (apps/settlement-server/src/main.ts, through
 * packages/service/src/process-main.ts): on SIGTERM /readyz turns 503 at once while the server
 * keeps serving for the readiness delay, then it stops accepting connections, lets a request that
 * was in flight finish, and exits 0 — or exits 1 when the drain timeout passes first.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { newId } from '@kessai/protocol';
import { loadOrCreateDevPki } from '@kessai/service';
import { scratchPostgres } from './support/database.ts';
import { settlementEnv, startInstance, stopInstance, type Instance } from './support/processes.ts';

const backend = process.env.KESSAI_TEST_PG_URL ? 'PostgreSQL' : 'PGlite';

/** One request on its own connection (no keep-alive), so each probe sees whether the listener still accepts. */
async function probe(url: string, caCertPem: string): Promise<{ status: number; body: unknown; headers: Record<string, unknown> } | 'refused'> {
  const agent = new Agent({ connect: { ca: caCertPem }, pipelining: 0 });
  try {
    const response = await request(url, { dispatcher: agent, headers: { connection: 'close' } });
    return { status: response.statusCode, body: await response.body.json(), headers: response.headers };
  } catch (err) {
    const code = (err as { code?: string; cause?: { code?: string } }).cause?.code ?? (err as { code?: string }).code;
    if (code === 'ECONNREFUSED') return 'refused';
    throw err;
  } finally {
    await agent.close();
  }
}

/** A POST whose head and first half of the body are sent now; `finish()` sends the rest and resolves to the raw answer. */
async function startPartialPost(url: string, caCertPem: string, pathname: string, token: string, body: string): Promise<{ finish(): Promise<string>; socket: TLSSocket }> {
  const { hostname, port } = new URL(url);
  const socket = connect({ host: hostname, port: Number(port), ca: caCertPem, servername: 'localhost' });
  await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  const half = Math.floor(body.length / 2);
  socket.write(`POST ${pathname} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, half)}`);
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  const ended = new Promise<string>((resolve) => socket.once('close', () => resolve(Buffer.concat(chunks).toString('utf8'))));
  return {
    socket,
    finish: () => {
      socket.write(body.slice(half));
      return ended;
    },
  };
}

describe(`a server drains on SIGTERM (${backend})`, () => {
  let dataDir: string;
  let caCertPem: string;
  let env: Record<string, string>;
  const operatorToken = `op_${randomBytes(32).toString('base64url')}`;
  const drops: Array<() => Promise<void>> = [];
  let instance: Instance | undefined;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'kessai-drain-'));
    const pki = await loadOrCreateDevPki(path.join(dataDir, 'pki'), [
      { name: 'auth-server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usages: ['server', 'client'] },
      { name: 'settlement-server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usages: ['server'] },
    ]);
    caCertPem = pki.caCertPem;
    const scratch = await scratchPostgres('kessai_drain');
    if (scratch) drops.push(scratch.drop);
    env = await settlementEnv({ issuerId: 'sakura-bank', dataDir, port: 0, operatorToken, logName: 'bank', ...(scratch ? { databaseUrl: scratch.url } : {}) });
  }, 120_000);

  afterAll(async () => {
    await stopInstance(instance);
    for (const drop of drops) await drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('answers /livez and /readyz (database and keys checked) while it runs', async () => {
    instance = await startInstance('settlement', env);
    const live = await probe(`${instance.url}/livez`, caCertPem);
    expect(live).toMatchObject({ status: 200, body: { status: 'live' } });
    const ready = await probe(`${instance.url}/readyz`, caCertPem);
    expect(ready).toMatchObject({ status: 200, body: { status: 'ready', checks: { database: 'ok', keys: 'ok' } } });
    await stopInstance(instance);
  }, 120_000);

  it('turns /readyz 503 at once, serves through the readiness delay, closes the listener, finishes an in-flight request and exits 0', async () => {
    const readinessDelayMs = 1_500;
    instance = await startInstance('settlement', { ...env, KESSAI_DRAIN_READINESS_DELAY_MS: String(readinessDelayMs), KESSAI_DRAIN_TIMEOUT_MS: '15000' });
    const url = instance.url;
    const merchantId = newId('mer');
    const inFlight = await startPartialPost(url, caCertPem, '/admin/v1/merchants', operatorToken, JSON.stringify({ merchant_id: merchantId, name: 'Kessai Tea House' }));
    const exited = new Promise<number | null>((resolve) => instance!.child.once('exit', (code) => resolve(code)));

    const signalledAt = Date.now();
    instance.child.kill('SIGTERM');
    let draining: Awaited<ReturnType<typeof probe>> = 'refused';
    for (let i = 0; i < 50; i++) {
      draining = await probe(`${url}/readyz`, caCertPem);
      if (draining !== 'refused' && draining.status === 503) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(draining).toMatchObject({ status: 503, body: { status: 'draining' }, headers: { connection: 'close' } });
    expect(Date.now() - signalledAt).toBeLessThan(readinessDelayMs);
    // Still serving other routes while the load balancer notices.
    expect(await probe(`${url}/livez`, caCertPem)).toMatchObject({ status: 200 });

    let refusedAt: number | undefined;
    while (refusedAt === undefined && Date.now() - signalledAt < 10_000) {
      if ((await probe(`${url}/livez`, caCertPem)) === 'refused') refusedAt = Date.now();
      else await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(refusedAt).toBeDefined();
    expect(refusedAt! - signalledAt).toBeGreaterThanOrEqual(readinessDelayMs);
    expect(instance.child.exitCode).toBeNull(); // waiting for the request in flight

    const answer = await inFlight.finish();
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(answer.toLowerCase()).toContain('connection: close');
    expect(answer).toContain(merchantId);
    expect(await exited).toBe(0);
    const log = await readFile(path.join(dataDir, 'logs', 'bank.log'), 'utf8');
    expect(log).toContain('drained: exiting 0');
  }, 120_000);

  it('exits 1 with a log line when a request outlives the drain timeout', async () => {
    instance = await startInstance('settlement', { ...env, KESSAI_DRAIN_READINESS_DELAY_MS: '100', KESSAI_DRAIN_TIMEOUT_MS: '1500' });
    const stuck = await startPartialPost(instance.url, caCertPem, '/admin/v1/merchants', operatorToken, JSON.stringify({ merchant_id: newId('mer'), name: 'Kessai Tea House' }));
    const exited = new Promise<number | null>((resolve) => instance!.child.once('exit', (code) => resolve(code)));
    const signalledAt = Date.now();
    instance.child.kill('SIGTERM');
    expect(await exited).toBe(1);
    expect(Date.now() - signalledAt).toBeGreaterThanOrEqual(1_400);
    stuck.socket.destroy();
    const logs = await readdir(path.join(dataDir, 'logs'));
    const text = (await Promise.all(logs.map((file) => readFile(path.join(dataDir, 'logs', file), 'utf8')))).join('\n');
    expect(text).toContain('drain timeout exceeded');
  }, 120_000);

  it('refuses a malformed drain setting at start, naming the variable (exit 2)', async () => {
    await expect(startInstance('settlement', { ...env, KESSAI_DRAIN_TIMEOUT_MS: 'soon' })).rejects.toThrow(/exited with 2[\s\S]*KESSAI_DRAIN_TIMEOUT_MS/);
  }, 60_000);
});
