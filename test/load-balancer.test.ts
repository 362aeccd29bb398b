/**
 * Several processes of each role behind a real load balancer (docs/operations.md, "Scaling out"):
 * HAProxy (test/support/haproxy.ts, TCP mode, health checks on GET /readyz) in front of two
 * authentication servers on one PostgreSQL database, two settlement-server processes of one bank
 * on one database, and two shop processes on one database. Wallets pay at the shop through HAProxy
 * (each listening on its event stream, step 403) while one broker and then one bank process are
 * stopped with SIGTERM — each must turn /readyz 503 first, be taken out by HAProxy, finish what it
 * had in flight, and exit within its drain timeout — and then one process is SIGKILLed. Afterwards
 * every payment must end in one state agreed by broker, bank and shop (test/support/agreement.ts:
 * nothing authorized-but-unknown, nothing captured twice) and the bank's ledger must balance.
 * KESSAI_LB_MS sets how long payments run (default 30 s, the CI run). Needs PostgreSQL
 * (KESSAI_TEST_PG_URL) and haproxy; skipped, saying which is missing, without them.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JWK } from 'jose';
import { Agent, request as undiciRequest } from 'undici';
import { KessaiError, limits, newId } from '@kessai/protocol';
import { loadOrCreateDevPki, loadTestLoadShedding, loadTestRateLimits } from '@kessai/service';
import { demoIssuers } from '@kessai/cli/demo-data';
import { publishDirectoryFile } from '@kessai/cli/directory';
import { WalletClient, type VerifiedRequest } from '@kessai/sdk';
import { scratchPostgres } from './support/database.ts';
import { freePort } from './support/processes.ts';
import { roleFolder, seedBankCards, startServe, writeConfigFile, type Served, type ServeRoleName } from './support/serve.ts';
import { checkHaproxyConfig, haproxyAvailable, haproxyBinary, lbExampleTuning, renderHaproxyConfig, startHaproxy, type Haproxy, type HaproxyValues } from './support/haproxy.ts';
import { seededRandom } from './support/random.ts';
import { answer, ShopCustomer, toldCounts, untilAgreed, type Payment, type RoleDatabases } from './support/agreement.ts';

const adminUrl = process.env.KESSAI_TEST_PG_URL;
const runMs = Number(process.env.KESSAI_LB_MS ?? 30_000);
const skipReason = !adminUrl ? 'load balancer test skipped: it needs PostgreSQL (set KESSAI_TEST_PG_URL)' : !haproxyAvailable() ? `load balancer test skipped: no haproxy at ${haproxyBinary} (apt-get install -y haproxy)` : '';
if (skipReason) console.warn(skipReason);
/** Room for a 2-core machine running six servers, HAProxy and PostgreSQL besides the convergence bound. */
const slackMs = 45_000;
const issuer = demoIssuers.find((i) => i.id === 'sakura-bank')!;
const cards = ['4242424242424242', '4000056655665556'].map((n) => issuer.cards.find((c) => c.cardNumber === n)!);
/** Payments each wallet keeps going at once. */
const loopsPerWallet = 2;
/** How long a checkout addressed to a wallet may take to be pushed to it before the payer opens it by link instead. */
const pushWaitMs = 5_000;

type Role = 'auth' | 'bank' | 'shop';
const roles: Role[] = ['bank', 'auth', 'shop'];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A wallet's event stream, reopened through the load balancer whenever it ends (the broker behind it drained or died). */
class Listener {
  readonly arrived = new Map<string, VerifiedRequest>();
  readonly waiting = new Map<string, (request: VerifiedRequest) => void>();
  readonly opened: number[] = [];
  readonly ended: Array<{ at: number; why: string }> = [];
  /** When each request was pushed (repeats not counted). */
  readonly pushes: number[] = [];
  constructor(readonly wallet: WalletClient) {}

  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      this.opened.push(Date.now());
      try {
        for await (const request of this.wallet.listen(signal)) {
          const rid = request.view.rid;
          if (this.arrived.has(rid)) continue; // a repeat: a reopened stream sends what is still pending
          this.arrived.set(rid, request);
          this.pushes.push(Date.now());
          this.waiting.get(rid)?.(request);
        }
        this.ended.push({ at: Date.now(), why: 'ended' });
      } catch (err) {
        if (signal.aborted) return;
        this.ended.push({ at: Date.now(), why: err instanceof KessaiError ? err.code : String(err) });
      }
      await sleep(200);
    }
  }

  /** The request pushed for `rid`, or undefined after `timeoutMs`. */
  pushedRequest(rid: string, timeoutMs: number): Promise<VerifiedRequest | undefined> {
    const already = this.arrived.get(rid);
    if (already) return Promise.resolve(already);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(rid);
        resolve(undefined);
      }, timeoutMs);
      this.waiting.set(rid, (request) => {
        clearTimeout(timer);
        this.waiting.delete(rid);
        resolve(request);
      });
    });
  }
}

describe.skipIf(skipReason !== '')('two processes of each role behind HAProxy on PostgreSQL: draining and a kill while payments run', () => {
  let dir: string;
  const drops: Array<() => Promise<void>> = [];
  const databases: RoleDatabases = { auth: '', bank: '', shop: '' };
  /** Each process: its name at HAProxy, its port, the environment it is started with, and the process running now. */
  const processes: Record<Role, Array<{ name: string; port: number; env: Record<string, string>; served?: Served }>> = { auth: [], bank: [], shop: [] };
  const lbPorts: Record<Role, number> = { auth: 0, bank: 0, shop: 0 };
  let haproxy: Haproxy;
  let agent: Agent;
  let caCertPem: string;
  const listeners: Listener[] = [];
  const payments: Payment[] = [];
  const failures: Array<{ at: number; what: string }> = [];
  const events: Array<{ at: number; what: string }> = [];
  const stopListening = new AbortController();

  const lbUrl = (role: Role) => `https://127.0.0.1:${lbPorts[role]}`;
  const backendName: Record<Role, string> = { auth: 'auth', bank: `settlement-${issuer.id}`, shop: 'shop' };
  const serveRole: Record<Role, ServeRoleName> = { auth: 'auth', bank: 'settlement', shop: 'shop' };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'kessai-lb-'));
    const caDir = path.join(dir, 'test-ca');
    // One folder per role, shared by its two processes: the same certificate (the bank's behind TLS
    // passthrough; the broker's, pinned by the bank), the same keys, the same database.
    const folders = {
      auth: await roleFolder({ dir: path.join(dir, 'auth'), caDir, pgliteFromTemplate: false }),
      bank: await roleFolder({ dir: path.join(dir, 'bank'), caDir, client: false, pgliteFromTemplate: false }),
      shop: await roleFolder({ dir: path.join(dir, 'shop'), caDir, client: false, pgliteFromTemplate: false }),
    };
    caCertPem = folders.auth.caCertPem;
    agent = new Agent({ connect: { ca: caCertPem } });
    for (const role of roles) {
      const scratch = (await scratchPostgres(`kessai_lb_${role}`))!;
      drops.push(scratch.drop);
      databases[role] = scratch.url;
      lbPorts[role] = await freePort();
    }
    const merchant = { id: newId('mer'), name: 'Kessai Tea House', apiKey: `sk_test_${randomBytes(24).toString('base64url')}`, webhookSecret: `whsec_${randomBytes(24).toString('base64url')}` };
    const tuning = { rateLimits: loadTestRateLimits, loadShedding: loadTestLoadShedding };
    const common = (role: Role) => ({ ...folders[role].env, KESSAI_HOST: '127.0.0.1', KESSAI_LOG_LEVEL: 'info', KESSAI_DATABASE_URL: databases[role], KESSAI_PUBLIC_BASE_URL: lbUrl(role) });
    const directory = path.join(dir, 'directory');
    const roleEnv: Record<Role, Record<string, string>> = {
      bank: {
        ...common('bank'),
        KESSAI_BANK_FILE: await writeConfigFile(folders.bank.dir, 'bank.json', JSON.stringify({ id: issuer.id, name: issuer.name, conversionMode: issuer.conversionMode, cipher2: issuer.cipher2, holdTimeoutSeconds: 3_600, businessDayTimeZone: 'Asia/Tokyo' })),
        KESSAI_BROKER_CERT_FINGERPRINTS: folders.auth.fingerprint,
        KESSAI_MERCHANTS_FILE: await writeConfigFile(folders.bank.dir, 'merchants.json', JSON.stringify([{ id: merchant.id, name: merchant.name }])),
        KESSAI_CONFIG_FILE: await writeConfigFile(folders.bank.dir, 'tuning.json', JSON.stringify({ ...tuning, credentialsPerCardMax: 100 })),
      },
      auth: {
        ...common('auth'),
        KESSAI_ISSUERS: JSON.stringify([{ id: issuer.id, baseUrl: lbUrl('bank'), cardPrefixes: issuer.cardPrefixes }]),
        KESSAI_DIRECTORY_FILE: path.join(directory, 'directory', 'directory.jws'),
        KESSAI_MERCHANTS_FILE: await writeConfigFile(folders.auth.dir, 'merchants.json', JSON.stringify([{ ...merchant, webhookUrl: `${lbUrl('shop')}/webhooks/kessai` }])),
        KESSAI_CONFIG_FILE: await writeConfigFile(folders.auth.dir, 'tuning.json', JSON.stringify({ ...tuning, workerIntervalMs: 200, authorizationDeadlineMs: 3_000 })),
      },
      shop: {
        ...common('shop'),
        KESSAI_AUTH_URL: lbUrl('auth'),
        KESSAI_MERCHANT_API_KEY_FILE: await writeConfigFile(folders.shop.dir, 'api-key', `${merchant.apiKey}\n`),
        KESSAI_WEBHOOK_SECRETS_FILE: await writeConfigFile(folders.shop.dir, 'webhook-secrets', `${merchant.webhookSecret}\n`),
        KESSAI_ISSUER_JWKS: JSON.stringify({ [issuer.id]: `${lbUrl('bank')}/.well-known/jwks.json` }),
        KESSAI_CONFIG_FILE: await writeConfigFile(folders.shop.dir, 'tuning.json', JSON.stringify(tuning)),
      },
    };
    for (const role of roles) {
      for (const n of [1, 2]) {
        const port = await freePort();
        processes[role].push({ name: `${backendName[role]}-${n}`, port, env: { ...roleEnv[role], KESSAI_PORT: String(port) } });
      }
    }
    haproxy = await startHaproxy({
      ...lbExampleTuning,
      caFile: folders.auth.caFile,
      statsHost: '127.0.0.1',
      statsPort: await freePort(),
      pools: roles.map((role) => ({ name: backendName[role], bindHost: '127.0.0.1', bindPort: lbPorts[role], servers: processes[role].map((p) => ({ name: p.name, host: '127.0.0.1', port: p.port })) })),
    });
    // What an operator's import does before the bank's first start: its cardholders' accounts.
    await seedBankCards(roleEnv.bank, cards);
    // The first process of a role alone: it migrates the database and creates the shared keys; the second loads them.
    let directoryKey: JWK | undefined;
    for (const role of roles) {
      for (const p of processes[role]) p.served = await startServe(serveRole[role], p.env);
      await haproxy.waitForStates(processes[role].map((p) => `${backendName[role]}/${p.name}`), 'UP');
      // The scheme operator signs the bank's keys as the load balancer publishes them.
      if (role === 'bank') directoryKey = (await publishDirectoryFile(directory, caCertPem, [{ issuer, url: lbUrl('bank') }])).publicJwk;
    }
    for (const card of cards) {
      const stored = await WalletClient.enroll({ authBaseUrl: lbUrl('auth'), caCertPem, directoryKey: directoryKey!, holderName: card.holderName, cardNumber: card.cardNumber, expiry: card.expiry, pin: card.pin });
      listeners.push(new Listener(new WalletClient(stored, { caCertPem })));
    }
  }, 300_000);

  afterAll(async () => {
    stopListening.abort();
    for (const listener of listeners) await listener.wallet.close();
    for (const role of ['shop', 'auth', 'bank'] as const) for (const p of processes[role]) await p.served?.stop();
    await haproxy?.stop();
    await agent?.close();
    for (const drop of drops) await drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** One checkout addressed to the wallet, the request pushed to it (or opened by link when the push is late), and the payer's answer. */
  async function pay(listener: Listener, pin: string, random: () => number): Promise<void> {
    let payment: Payment;
    try {
      const checkedOut = await new ShopCustomer(lbUrl('shop'), agent).checkout((count) => ({ index: Math.floor(random() * count), quantity: 1 + Math.floor(random() * 2) }), listener.wallet.wallet.credential_id);
      if ('refusal' in checkedOut) {
        failures.push({ at: Date.now(), what: `shop ${checkedOut.refusal}` });
        return;
      }
      payment = checkedOut;
    } catch (err) {
      failures.push({ at: Date.now(), what: `shop: ${String(err)}` });
      return;
    }
    payments.push(payment);
    let request = await listener.pushedRequest(payment.rid, pushWaitMs);
    if (!request) {
      events.push({ at: Date.now(), what: `${payment.rid} not pushed within ${pushWaitMs} ms: opened by link` });
      try {
        request = await listener.wallet.fetchRequest(payment.rid);
      } catch (err) {
        payment.told = 'not paid';
        payment.detail = `fetch: ${err instanceof KessaiError ? err.code : String(err)}`;
        failures.push({ at: Date.now(), what: `fetch ${payment.detail}` });
        return;
      }
    }
    await answer(listener.wallet, payment, request, pin);
    if (payment.told !== 'paid') failures.push({ at: Date.now(), what: `approve ${payment.detail}` });
  }

  /** The broker processes a wallet's event stream was opened on (from their request logs). */
  function brokersWithStreams(): string[] {
    return processes.auth.filter((p) => p.served!.stdout.some((line) => line.includes('"route":"/v1/terminal/events"'))).map((p) => p.name);
  }

  interface Drained {
    /** From the signal: when /readyz answered 503 (-1: never seen), when HAProxy marked the process DOWN, when it exited. */
    readyz503AfterMs: number;
    downAfterMs: number;
    exitAfterMs: number;
    exitCode: number | null;
    /** Payments that failed (at the shop, or told anything but paid) between the signal and the exit. */
    failedMeanwhile: string[];
  }

  /**
   * SIGTERM to one process while payments run, watched from outside: its own /readyz (asked
   * directly, not through HAProxy), HAProxy's view of it, and its exit. Restarted afterwards with
   * the same environment.
   */
  async function drain(role: Role, name: string): Promise<Drained> {
    const p = processes[role].find((x) => x.name === name)!;
    const served = p.served!;
    const signalledAt = Date.now();
    served.child.kill('SIGTERM');
    let readyz503At = 0;
    const watchReadyz = (async () => {
      while (served.child.exitCode === null && served.child.signalCode === null && readyz503At === 0) {
        const status = await undiciRequest(`https://127.0.0.1:${p.port}/readyz`, { dispatcher: agent, signal: AbortSignal.timeout(1_000) }).then(async (r) => (await r.body.text(), r.statusCode)).catch(() => 0);
        if (status === 503) readyz503At = Date.now();
        else await sleep(50);
      }
    })();
    await haproxy.waitForStates([`${backendName[role]}/${name}`], 'DOWN', limits.drainTimeoutMs);
    const downAt = Date.now();
    // Past the drain timeout the process must have exited on its own (1, with a log line); SIGKILL only so the test goes on.
    const exitCode = await Promise.race([served.exited, sleep(limits.drainTimeoutMs + 5_000).then(() => served.kill().then(() => -1))]);
    const exitAt = Date.now();
    await watchReadyz;
    const failedMeanwhile = failures.filter((f) => f.at >= signalledAt && f.at <= exitAt).map((f) => f.what);
    events.push({ at: signalledAt, what: `${name} SIGTERM: /readyz 503 after ${readyz503At ? readyz503At - signalledAt : 'never'} ms, DOWN at HAProxy after ${downAt - signalledAt} ms, exited ${exitCode} after ${exitAt - signalledAt} ms, ${failedMeanwhile.length} payments failed meanwhile` });
    p.served = await startServe(serveRole[role], p.env);
    await haproxy.waitForStates([`${backendName[role]}/${name}`], 'UP');
    events.push({ at: Date.now(), what: `${name} restarted and UP again` });
    return { readyz503AfterMs: readyz503At ? readyz503At - signalledAt : -1, downAfterMs: downAt - signalledAt, exitAfterMs: exitAt - signalledAt, exitCode, failedMeanwhile };
  }

  /** SIGKILL, a short downtime, and a restart with the same environment. */
  async function kill(role: Role, name: string, downMs: number): Promise<void> {
    const p = processes[role].find((x) => x.name === name)!;
    await p.served!.kill();
    events.push({ at: Date.now(), what: `${name} SIGKILLed` });
    await haproxy.waitForStates([`${backendName[role]}/${name}`], 'DOWN');
    await sleep(downMs);
    p.served = await startServe(serveRole[role], p.env);
    await haproxy.waitForStates([`${backendName[role]}/${name}`], 'UP');
    events.push({ at: Date.now(), what: `${name} restarted and UP again` });
  }

  it('drains a broker and a bank process, survives a kill, and ends with broker, bank and shop agreeing and the ledger balanced', async () => {
    const streams = listeners.map((listener) => listener.run(stopListening.signal));
    await sleep(1_000); // the streams are open
    let stop = false;
    const drivers = listeners.flatMap((listener, index) =>
      Array.from({ length: loopsPerWallet }, async (_, loop) => {
        const random = seededRandom(index * loopsPerWallet + loop + 1);
        while (!stop) {
          await pay(listener, cards[index]!.pin, random);
          await sleep(100);
        }
      }),
    );
    const startedAt = Date.now();
    const at = (fraction: number) => sleep(Math.max(0, startedAt + runMs * fraction - Date.now()));

    await at(0.15);
    const withStreams = brokersWithStreams();
    expect(withStreams.length, 'a wallet stream is open on some broker').toBeGreaterThan(0);
    const drainedBroker = withStreams[0]!;
    const drainStartedAt = Date.now();
    const broker = await drain('auth', drainedBroker);
    // The streams the drained broker carried: ended between the signal and its exit.
    const endedByDrain = listeners.map((l) => l.ended.filter((e) => e.at >= drainStartedAt && e.at <= drainStartedAt + broker.exitAfterMs + 1_000));

    await at(0.45);
    const bank = await drain('bank', processes.bank[0]!.name);

    await at(0.7);
    await kill('bank', processes.bank[1]!.name, 1_000);

    await at(1);
    stop = true;
    const clearedAt = Date.now();
    await Promise.all(drivers);
    stopListening.abort();
    await Promise.all(streams);
    const since = (at: number) => `${((at - startedAt) / 1000).toFixed(1)} s`;
    console.log(
      [
        `load balancer: ${payments.length} payments in ${since(clearedAt)}; told: ${JSON.stringify(toldCounts(payments))}; wallets' streams: ${listeners.map((l) => `${l.opened.length} opened, ${l.ended.length} ended, ${l.pushes.length} pushed`).join('; ')}`,
        ...events.map((e) => `  ${since(e.at)} ${e.what}`),
        // haproxy in the foreground prints each change twice (its log and its warning): once here.
        ...[...new Set(haproxy.log.filter((l) => / is (UP|DOWN)/.test(l.line)).map((l) => `  ${since(l.at)} haproxy: ${l.line.replace(/^.*?Server /, '').replace(/, check duration.*$/, '')}`))],
        ...failures.map((f) => `  ${since(f.at)} failed: ${f.what}`),
      ].join('\n'),
    );

    for (const [what, result] of [['broker', broker], ['bank', bank]] as const) {
      expect(result.exitCode, `the ${what} exited cleanly after SIGTERM`).toBe(0);
      expect(result.readyz503AfterMs, `the ${what}'s /readyz turned 503 while it still served`).toBeGreaterThanOrEqual(0);
      expect(result.downAfterMs, `HAProxy took the ${what} out before it exited`).toBeLessThanOrEqual(result.exitAfterMs);
      expect(result.readyz503AfterMs, `the ${what}'s /readyz turned 503 within its readiness delay`).toBeLessThan(limits.drainReadinessDelayMs);
      expect(result.downAfterMs, `HAProxy took the ${what} out within the readiness delay, while it still served`).toBeLessThan(limits.drainReadinessDelayMs);
      expect(result.exitAfterMs, `the ${what} exited within its drain timeout`).toBeLessThanOrEqual(limits.drainTimeoutMs);
    }
    expect(endedByDrain.flat().length, `the drained broker ${drainedBroker} ended the event streams it carried`).toBeGreaterThan(0);
    for (const [index, listener] of listeners.entries()) {
      const ended = endedByDrain[index]!.at(-1);
      if (!ended) continue; // this wallet's stream was on the other broker
      expect(listener.opened.some((at) => at > ended.at), `wallet ${index} reopened its event stream through HAProxy`).toBe(true);
      expect(listener.pushes.some((at) => at > ended.at), `wallet ${index} got requests pushed on its reopened stream`).toBe(true);
    }
    expect(payments.length).toBeGreaterThan(0);
    const last = await untilAgreed(databases, payments, Math.max(clearedAt + limits.convergenceMs, Date.now()) + slackMs);
    console.log(`load balancer: ${last.length === 0 ? `converged ${Math.round((Date.now() - clearedAt) / 1000)} s after payments stopped` : 'never converged'}`);
    expect(last, events.map((e) => e.what).join('; ')).toEqual([]);
  }, 600_000);
});

/** The example of docs/operations.md ("Several processes behind HAProxy"): three roles, two hosts each. */
const documented: HaproxyValues = {
  ...lbExampleTuning,
  caFile: '/etc/kessai/tls/ca.pem',
  statsHost: '127.0.0.1',
  statsPort: 8404,
  pools: [
    { name: 'auth', bindHost: '0.0.0.0', bindPort: 8443, servers: [{ name: 'auth-1', host: '10.0.0.11', port: 8443 }, { name: 'auth-2', host: '10.0.0.12', port: 8443 }] },
    { name: 'settlement-sakura-bank', bindHost: '0.0.0.0', bindPort: 8444, servers: [{ name: 'settlement-sakura-bank-1', host: '10.0.0.21', port: 8444 }, { name: 'settlement-sakura-bank-2', host: '10.0.0.22', port: 8444 }] },
    { name: 'shop', bindHost: '0.0.0.0', bindPort: 8446, servers: [{ name: 'shop-1', host: '10.0.0.31', port: 8446 }, { name: 'shop-2', host: '10.0.0.32', port: 8446 }] },
  ],
};

describe('the HAProxy example of docs/operations.md', () => {
  it('is the template the load-balancer test runs, rendered with the documented values', async () => {
    const doc = await readFile(path.join(import.meta.dirname, '..', 'docs', 'operations.md'), 'utf8');
    const example = /```haproxy\n([\s\S]*?)```/.exec(doc)?.[1];
    expect(example, 'docs/operations.md has a ```haproxy block').toBeDefined();
    expect(example).toBe(renderHaproxyConfig(documented));
  });

  it('takes a draining server out of rotation within its readiness delay', () => {
    // Health checks fail from the first check after the signal: at most one interval, then `fall` checks.
    expect((documented.checkFall + 1) * documented.checkIntervalMs).toBeLessThan(limits.drainReadinessDelayMs);
    expect(documented.idleTimeoutMs).toBeGreaterThan(limits.sseHeartbeatMs);
  });

  it.skipIf(!haproxyAvailable())('is a configuration haproxy accepts (haproxy -c)', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'kessai-haproxy-doc-'));
    try {
      const caFile = path.join(dir, 'ca.pem');
      await writeFile(caFile, (await loadOrCreateDevPki(path.join(dir, 'pki'), [])).caCertPem);
      const configFile = path.join(dir, 'haproxy.cfg');
      await writeFile(configFile, renderHaproxyConfig({ ...documented, caFile }));
      const checked = checkHaproxyConfig(configFile);
      expect(checked.output).toBe('');
      expect(checked.ok).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
