/**
 * The system for the end-to-end benchmark with each server role in its own OS process, so CPU
 * seconds and memory can be read per role: one settlement server (`kessai serve settlement`,
 * the first demo issuer) and one authentication server (`kessai serve auth`, with
 * Server-Timing on and rate limits raised). The load generator (terminals and the merchant)
 * is this process; it also receives the merchant's webhooks (step 407's notification).
 * CPU and RSS are read from /proc/<pid>/stat and /proc/<pid>/status (Linux).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpsServer, get as httpsGet, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { newId, type JWK } from '@kessai/protocol';
import { freePort, loadOrCreateDevPki, loadTestLoadShedding, loadTestRateLimits } from '@kessai/service';
import { publishDirectoryFile } from '@kessai/cli/directory';
import { demoIssuers } from '@kessai/cli/demo-data';
import { issuerDatabaseEnv } from '@kessai/settlement-server';
import { scratchDatabase, type Scratch } from './pg.ts';
import { authEnv, settlementEnv } from '../test/support/processes.ts';

const root = path.resolve(import.meta.dirname, '..');
const clockTicks = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

export interface RoleProcess {
  role: string;
  pid: number;
  url: string;
  child: ChildProcess;
  /** The role's operator token: the benchmark reads its /metrics (statements sent) with it. */
  operatorToken: string;
  stop(): Promise<void>;
}

/** User + system CPU seconds a process has used so far. */
export function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / clockTicks; // utime, stime (fields 14, 15)
}

/**
 * Statements the role's process has sent to its database so far: `db_statements_total` of its
 * /metrics (the counter in packages/service/src/db.ts, on PGlite and PostgreSQL alike).
 */
export async function statementsOf(role: RoleProcess, caCertPem: string): Promise<number> {
  const text = await new Promise<string>((resolve, reject) => {
    const request = httpsGet(`${role.url}/metrics`, { ca: caCertPem, headers: { authorization: `Bearer ${role.operatorToken}` } }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${role.role} /metrics: ${res.statusCode}`))));
    });
    request.on('error', reject);
  });
  const line = /^db_statements_total (\d+)/m.exec(text);
  if (!line) throw new Error(`${role.role} /metrics has no db_statements_total`);
  return Number(line[1]);
}

/** Resident set size in bytes. */
export function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}


/** The auth server's and the issuer's databases from AUTH_DATABASE_URL and <ISSUER>_DATABASE_URL: both or neither. */
function configuredDatabases(issuerId: string): { auth: string; settlement: string } | undefined {
  const auth = process.env.AUTH_DATABASE_URL;
  const settlement = process.env[issuerDatabaseEnv(issuerId)];
  if (!auth && !settlement) return undefined;
  if (!auth || !settlement) throw new Error(`set both AUTH_DATABASE_URL and ${issuerDatabaseEnv(issuerId)}, or neither (PGlite)`);
  return { auth, settlement };
}

async function spawnRole(role: string, serveRole: 'auth' | 'settlement', env: Record<string, string>, profileDir?: string): Promise<RoleProcess> {
  // One folder per role: the module loader's thread writes a profile of its own beside the main thread's.
  const profile = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${path.join(profileDir, role)}`] : [];
  const child = spawn(process.execPath, [...profile, '--import', 'tsx', path.join(root, 'apps', 'cli', 'src', 'main.ts'), 'serve', serveRole], { cwd: root, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  child.stderr!.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.startsWith('{"listening"')) resolve((JSON.parse(line) as { listening: string }).listening);
      else output.push(line);
    });
    child.once('exit', (code) => reject(new Error(`${role} exited with ${code}: ${output.join('\n').slice(-2_000)}`)));
  });
  return {
    role,
    pid: child.pid!,
    url,
    child,
    operatorToken: readFileSync(env.KESSAI_OPERATOR_TOKEN_FILE!, 'utf8').trim(),
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

export interface BenchSystem {
  backend: 'pglite' | 'postgres';
  auth: RoleProcess;
  settlement: RoleProcess;
  caCertPem: string;
  /** The directory key the benchmark's terminals pin. */
  directoryKey: JWK;
  apiKey: string;
  card: (typeof demoIssuers)[number]['cards'][number];
  /** Arrival time (performance.now() of this process) of each webhook, by payment request id and event type. */
  webhooks: Map<string, number>;
  onWebhook?: (key: string) => void;
  close(): Promise<void>;
}

/**
 * Starts the settlement and authentication servers as processes on PostgreSQL (admin URL given) or
 * PGlite; with `profileDir`, each writes V8 CPU profiles into <profileDir>/<role>/ when it stops
 * (`node --cpu-prof`; the main thread's is the one whose name holds thread id 0).
 */
const benchMerchantName = 'Kessai Tea House';
/** Terminals the benchmark may enroll on its one card (one per concurrent payer, at most). */
const benchTerminalsMax = 1_000;

/** The demo issuer `id` (the benchmark's --issuer). */
function demoIssuerOf(id: string) {
  const issuer = demoIssuers.find((i) => i.id === id);
  if (!issuer) throw new Error(`no demo issuer ${id}: ${demoIssuers.map((i) => i.id).join(', ')}`);
  return issuer;
}

/** The merchant's webhook endpoint: records when each event first arrives (no signature check needed here). */
async function startWebhookReceiver(
  tls: { keyPem: string; certPem: string },
  system: Pick<Partial<BenchSystem>, 'onWebhook'> & { webhooks: Map<string, number> },
): Promise<Server> {
  const receiver = createHttpsServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const at = performance.now();
      try {
        const event = JSON.parse(body) as { type: string; data: { id: string } };
        const key = `${event.data.id} ${event.type}`;
        if (!system.webhooks.has(key)) system.webhooks.set(key, at);
        system.onWebhook?.(key);
      } catch {
        // not an event
      }
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  return receiver;
}

/**
 * `sheddingOff`: the servers' in-flight limits out of the way (loadTestLoadShedding), for the parts
 * that measure throughput and latency at a fixed concurrency; the overload part keeps limits.ts's.
 */
/** The bench's development PKI: the broker (server and client), the bank and the webhook receiver. */
function benchPki(dataDir: string) {
  return loadOrCreateDevPki(path.join(dataDir, 'pki'), [
    { name: 'auth-server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usages: ['server', 'client'] },
    { name: 'settlement-server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usages: ['server'] },
    { name: 'shop', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usages: ['server'] },
  ]);
}

export async function startBenchSystem(dataDir: string, pgAdminUrl: string | undefined, profileDir?: string, issuerId = demoIssuers[0]!.id, sheddingOff = true): Promise<BenchSystem> {
  const shedding = sheddingOff ? { loadShedding: loadTestLoadShedding } : {};
  const issuer = demoIssuerOf(issuerId);
  const pki = await benchPki(dataDir);
  const scratches: Scratch[] = [];
  const processes: RoleProcess[] = [];
  let receiver: Server | undefined;
  const close = async () => {
    for (const p of processes.reverse()) await p.stop();
    receiver?.close();
    for (const s of scratches) await s.drop().catch(() => undefined);
  };
  try {
    // Scratch databases on the admin URL's server (dropped at the end); else the databases the
    // `*_DATABASE_URL` variables name, as `npm start` reads them (kept: the run adds its merchant,
    // terminals and payments to them); else PGlite under the data folder.
    const configured = configuredDatabases(issuer.id);
    const databaseUrl = async (prefix: string, role: 'auth' | 'settlement') => {
      if (!pgAdminUrl) return configured?.[role];
      const scratch = await scratchDatabase(pgAdminUrl, prefix);
      scratches.push(scratch);
      return scratch.url;
    };
    const system: Partial<BenchSystem> & { webhooks: Map<string, number> } = { webhooks: new Map() };
    receiver = await startWebhookReceiver(pki.leaves.shop!, system);
    const webhookUrl = `https://127.0.0.1:${(receiver.address() as AddressInfo).port}/webhooks/kessai`;

    const settlementPort = await freePort();
    const settlementDb = await databaseUrl('kessai_bench_settlement', 'settlement');
    const merchantId = newId('mer');
    // Rate limits raised: one load generator is all its traffic, and its terminals all enroll one card.
    const settlementVars = await settlementEnv({ dataDir, issuerId: issuer.id, port: settlementPort, logName: `settlement-${issuer.id}`, rateLimits: loadTestRateLimits, ...shedding, merchants: [{ id: merchantId, name: benchMerchantName }], credentialsPerCardMax: benchTerminalsMax, ...(settlementDb ? { databaseUrl: settlementDb } : {}) });
    const settlement = await spawnRole('settlement-server', 'settlement', settlementVars, profileDir);
    processes.push(settlement);
    const directoryKey = (await publishDirectoryFile(dataDir, pki.caCertPem, [{ issuer, url: settlement.url }])).publicJwk;

    const apiKey = `sk_test_${randomBytes(24).toString('base64url')}`;
    const authDb = await databaseUrl('kessai_bench_auth', 'auth');
    const authVars = await authEnv({
      ...(authDb ? { databaseUrl: authDb } : {}),
      dataDir,
      logName: 'auth-server',
      issuers: [{ id: issuer.id, baseUrl: settlement.url, cardPrefixes: issuer.cardPrefixes }],
      merchants: [{ id: merchantId, name: benchMerchantName, apiKey, webhookUrl, webhookSecret: `whsec_${randomBytes(24).toString('base64url')}` }],
      // The worker's default slow poll (limits.brokerWorkerIntervalMsDefault): webhooks do not wait
      // for it, their commit wakes the delivery (apps/auth-server/src/worker.ts).
      rateLimits: loadTestRateLimits,
      ...shedding,
      serverTiming: true,
    });
    const auth = await spawnRole('auth-server', 'auth', authVars, profileDir);
    processes.push(auth);
    return Object.assign(system, {
      backend: pgAdminUrl || configured ? ('postgres' as const) : ('pglite' as const),
      auth,
      settlement,
      caCertPem: pki.caCertPem,
      directoryKey,
      apiKey,
      card: issuer.cards[0]!,
      close,
    });
  } catch (err) {
    await close();
    throw err;
  }
}
