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
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JWK } from 'jose';
import { Agent, request as undiciRequest } from 'undici';
import { KessaiError, limits, newId } from '@kessai/protocol';
import { loadOrCreateDevPki, loadTestRateLimits } from '@kessai/service';
import { demoIssuers } from '@kessai/cli/demo-data';
import { publishDirectoryFile } from '@kessai/cli/directory';
import { WalletClient, type VerifiedRequest } from '@kessai/sdk';
import { scratchPostgres } from './support/database.ts';
import { authServerMain, freePort, settlementServerMain, startInstance, stopInstance, type Instance } from './support/processes.ts';
import { haproxyAvailable, haproxyBinary, startHaproxy, type Haproxy, type HaproxyValues } from './support/haproxy.ts';
import { answer, ShopCustomer, toldCounts, untilAgreed, type Payment, type RoleDatabases } from './support/agreement.ts';

const adminUrl = process.env.KESSAI_TEST_PG_URL;
const runMs = Number(process.env.KESSAI_LB_MS ?? 30_000);
const skipReason = !adminUrl ? 'load balancer test skipped: it needs PostgreSQL (set KESSAI_TEST_PG_URL)' : !haproxyAvailable() ? `load balancer test skipped: no haproxy at ${haproxyBinary} (apt-get install -y haproxy)` : '';
if (skipReason) console.warn(skipReason);
/** Room for a 2-core machine running six servers, HAProxy and PostgreSQL besides the convergence bound. */
const slackMs = 45_000;
const issuer = demoIssuers.find((i) => i.id === 'sakura-bank')!;
const cards = ['4242424242424242', '4000056655665556'].map((n) => issuer.cards.find((c) => c.cardNumber === n)!);
const shopProcess = 'test/chaos/shop-process.ts';
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
  pushed = 0;
  constructor(readonly wallet: WalletClient) {}

  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      this.opened.push(Date.now());
      try {
        for await (const request of this.wallet.listen(signal)) {
          const rid = request.view.rid;
          if (this.arrived.has(rid)) continue; // a repeat: a reopened stream sends what is still pending
          this.arrived.set(rid, request);
          this.pushed++;
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
  let dataDir: string;
  const drops: Array<() => Promise<void>> = [];
  const databases: RoleDatabases = { auth: '', bank: '', shop: '' };
  /** Each process's port, config file and the instance running on it. */
  const processes: Record<Role, Array<{ name: string; port: number; configFile: string; entry: string; instance?: Instance }>> = { auth: [], bank: [], shop: [] };
  const lbPorts: Record<Role, number> = { auth: 0, bank: 0, shop: 0 };
  let haproxy: Haproxy;
  let agent: Agent;
  let caCertPem: string;
  const listeners: Listener[] = [];
  const payments: Payment[] = [];
  const failures: Array<{ at: number; what: string }> = [];
  const events: string[] = [];
  const stopListening = new AbortController();

  const lbUrl = (role: Role) => `https://127.0.0.1:${lbPorts[role]}`;
  const backendName: Record<Role, string> = { auth: 'auth', bank: `settlement-${issuer.id}`, shop: 'shop' };

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'kessai-lb-'));
    const pki = await loadOrCreateDevPki(path.join(dataDir, 'pki'), [
      { name: 'auth-server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usages: ['server', 'client'] },
      { name: 'settlement-server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usages: ['server'] },
      { name: 'shop', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usages: ['server'] },
    ]);
    caCertPem = pki.caCertPem;
    const caFile = path.join(dataDir, 'pki', 'ca.pem');
    await writeFile(caFile, caCertPem);
    agent = new Agent({ connect: { ca: caCertPem } });
    for (const role of roles) {
      const scratch = (await scratchPostgres(`kessai_lb_${role}`))!;
      drops.push(scratch.drop);
      databases[role] = scratch.url;
      lbPorts[role] = await freePort();
    }
    const merchant = { id: newId('mer'), name: 'Kessai Tea House', apiKey: `sk_test_${randomBytes(24).toString('base64url')}`, webhookSecret: `whsec_${randomBytes(24).toString('base64url')}` };
    const configOf: Record<Role, (port: number, name: string) => unknown> = {
      bank: (port, name) => ({ issuerId: issuer.id, dataDir, port, publicBaseUrl: lbUrl('bank'), databaseUrl: databases.bank, logName: name, merchants: [{ id: merchant.id, name: merchant.name }], rateLimits: loadTestRateLimits, credentialsPerCardMax: 100 }),
      auth: (port, name) => ({
        dataDir,
        port,
        publicBaseUrl: lbUrl('auth'),
        databaseUrl: databases.auth,
        logName: name,
        issuers: [{ id: issuer.id, baseUrl: lbUrl('bank'), cardPrefixes: issuer.cardPrefixes }],
        merchants: [{ ...merchant, webhookUrl: `${lbUrl('shop')}/webhooks/kessai` }],
        workerIntervalMs: 200,
        authorizationDeadlineMs: 3_000,
        rateLimits: loadTestRateLimits,
      }),
      shop: (port) => ({ dataDir, databaseUrl: databases.shop, port, authBaseUrl: lbUrl('auth'), merchantApiKey: merchant.apiKey, webhookSecret: merchant.webhookSecret, issuers: { [issuer.id]: `${lbUrl('bank')}/.well-known/jwks.json` } }),
    };
    const entries: Record<Role, string> = { auth: authServerMain, bank: settlementServerMain, shop: shopProcess };
    for (const role of roles) {
      for (const n of [1, 2]) {
        const name = `${backendName[role]}-${n}`;
        const port = await freePort();
        const configFile = path.join(dataDir, `${name}.json`);
        await writeFile(configFile, JSON.stringify(configOf[role](port, name)), { mode: 0o600 });
        processes[role].push({ name, port, configFile, entry: entries[role] });
      }
    }
    const values: HaproxyValues = {
      caFile,
      statsHost: '127.0.0.1',
      statsPort: await freePort(),
      checkIntervalMs: 500,
      checkFall: 2,
      checkRise: 2,
      idleTimeoutMs: 60_000,
      pools: roles.map((role) => ({ name: backendName[role], bindHost: '127.0.0.1', bindPort: lbPorts[role], servers: processes[role].map((p) => ({ name: p.name, host: '127.0.0.1', port: p.port })) })),
    };
    haproxy = await startHaproxy(values);
    // The first process of a role alone: it migrates the database and creates the shared keys; the second loads them.
    let directoryKey: JWK | undefined;
    for (const role of roles) {
      for (const p of processes[role]) p.instance = await startInstance(p.configFile, p.entry);
      await haproxy.waitForStates(processes[role].map((p) => `${backendName[role]}/${p.name}`), 'UP');
      // The directory's operator signs the bank's keys as they are published through the load balancer.
      if (role === 'bank') directoryKey = (await publishDirectoryFile(dataDir, caCertPem, [{ issuer, url: lbUrl('bank') }])).publicJwk;
    }
    for (const card of cards) {
      const stored = await WalletClient.enroll({ authBaseUrl: lbUrl('auth'), caCertPem, directoryKey: directoryKey!, holderName: card.holderName, cardNumber: card.cardNumber, expiry: card.expiry, pin: card.pin });
      listeners.push(new Listener(new WalletClient(stored, { caCertPem })));
    }
  }, 240_000);

  afterAll(async () => {
    stopListening.abort();
    for (const listener of listeners) await listener.wallet.close();
    for (const role of ['shop', 'auth', 'bank'] as const) for (const p of processes[role]) await stopInstance(p.instance);
    await haproxy?.stop();
    await agent?.close();
    for (const drop of drops) await drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
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
      events.push(`${payment.rid} not pushed within ${pushWaitMs} ms: opened by link`);
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

  /** Which broker processes have had a wallet's event stream opened on them (from their logs). */
  async function brokersWithStreams(): Promise<string[]> {
    const files = await readdir(path.join(dataDir, 'logs'));
    const found: string[] = [];
    for (const p of processes.auth) {
      const file = files.find((f) => f.startsWith(p.name));
      const text = file ? await readFile(path.join(dataDir, 'logs', file), 'utf8') : '';
      if (text.includes('"route":"/v1/terminal/events"')) found.push(p.name);
    }
    return found;
  }

  /**
   * SIGTERM to one process while payments run: its /readyz must turn 503 before it stops
   * answering, HAProxy must take it out before it exits, and it must exit 0 within its drain
   * timeout. Restarted afterwards on the same port, config and database.
   */
  async function drain(role: Role, name: string): Promise<{ readyz503AfterMs: number; downAfterMs: number; exitAfterMs: number; exitCode: number | null }> {
    const p = processes[role].find((x) => x.name === name)!;
    const instance = p.instance!;
    const exited = new Promise<number | null>((resolve) => instance.child.once('exit', (code) => resolve(code)));
    const signalledAt = Date.now();
    instance.child.kill('SIGTERM');
    let readyz503At = 0;
    const watchReadyz = (async () => {
      while (instance.child.exitCode === null && instance.child.signalCode === null) {
        const status = await undiciRequest(`https://127.0.0.1:${p.port}/readyz`, { dispatcher: agent, signal: AbortSignal.timeout(1_000) }).then(async (r) => (await r.body.text(), r.statusCode)).catch(() => 0);
        if (status === 503) {
          readyz503At = Date.now();
          return;
        }
        await sleep(50);
      }
    })();
    await haproxy.waitForStates([`${backendName[role]}/${name}`], 'DOWN', 30_000);
    const downAt = Date.now();
    const exitCode = await exited;
    const exitAt = Date.now();
    await watchReadyz;
    events.push(`${name} SIGTERM: readyz 503 after ${readyz503At ? readyz503At - signalledAt : 'never'} ms, DOWN at HAProxy after ${downAt - signalledAt} ms, exited ${exitCode} after ${exitAt - signalledAt} ms`);
    p.instance = await startInstance(p.configFile, p.entry);
    await haproxy.waitForStates([`${backendName[role]}/${name}`], 'UP');
    return { readyz503AfterMs: readyz503At ? readyz503At - signalledAt : -1, downAfterMs: downAt - signalledAt, exitAfterMs: exitAt - signalledAt, exitCode };
  }

  /** SIGKILL, a short downtime, and a restart on the same port, config and database. */
  async function kill(role: Role, name: string, downMs: number): Promise<void> {
    const p = processes[role].find((x) => x.name === name)!;
    const exited = new Promise((resolve) => p.instance!.child.once('exit', resolve));
    p.instance!.child.kill('SIGKILL');
    await exited;
    events.push(`${name} SIGKILLed`);
    await haproxy.waitForStates([`${backendName[role]}/${name}`], 'DOWN');
    await sleep(downMs);
    p.instance = await startInstance(p.configFile, p.entry);
    await haproxy.waitForStates([`${backendName[role]}/${name}`], 'UP');
  }

  it('drains a broker and a bank process, survives a kill, and ends with broker, bank and shop agreeing and the ledger balanced', async () => {
    const streams = listeners.map((listener) => listener.run(stopListening.signal));
    await sleep(1_000); // the streams are open
    let stop = false;
    let seed = 1;
    const drivers = listeners.flatMap((listener, index) =>
      Array.from({ length: loopsPerWallet }, async () => {
        let s = seed++;
        const random = () => ((s = (s * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
        while (!stop) {
          await pay(listener, cards[index]!.pin, random);
          await sleep(100);
        }
      }),
    );
    const startedAt = Date.now();
    const at = (fraction: number) => sleep(Math.max(0, startedAt + runMs * fraction - Date.now()));

    await at(0.15);
    const withStreams = await brokersWithStreams();
    expect(withStreams.length, 'a wallet stream is open on some broker').toBeGreaterThan(0);
    const drainedBroker = withStreams[0]!;
    const pushedBefore = listeners.map((l) => l.pushed);
    const endedBefore = listeners.reduce((n, l) => n + l.ended.length, 0);
    const broker = await drain('auth', drainedBroker);
    const streamsEnded = listeners.reduce((n, l) => n + l.ended.length, 0) - endedBefore;

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
    console.log(`load balancer: ${payments.length} payments in ${Math.round((clearedAt - startedAt) / 1000)} s; ${events.join('; ')}; told: ${JSON.stringify(toldCounts(payments))}; failures: ${failures.length} ${JSON.stringify(failures.slice(0, 5))}`);

    for (const [what, result] of [['broker', broker], ['bank', bank]] as const) {
      expect(result.exitCode, `the ${what} exited cleanly after SIGTERM`).toBe(0);
      expect(result.readyz503AfterMs, `the ${what}'s /readyz turned 503 while it still served`).toBeGreaterThanOrEqual(0);
      expect(result.downAfterMs, `HAProxy took the ${what} out before it exited`).toBeLessThanOrEqual(result.exitAfterMs);
      expect(result.exitAfterMs, `the ${what} exited within its drain timeout`).toBeLessThanOrEqual(limits.convergenceMs);
    }
    expect(streamsEnded, `the drained broker ${drainedBroker} ended the event streams it carried`).toBeGreaterThan(0);
    for (const [index, listener] of listeners.entries()) {
      expect(listener.pushed, `wallet ${index} got requests pushed after the drain, through the other broker`).toBeGreaterThan(pushedBefore[index]!);
    }
    expect(payments.length).toBeGreaterThan(0);
    const last = await untilAgreed(databases, payments, Math.max(clearedAt + limits.convergenceMs, Date.now()) + slackMs);
    console.log(`load balancer: ${last.length === 0 ? `converged ${Math.round((Date.now() - clearedAt) / 1000)} s after payments stopped` : 'never converged'}`);
    expect(last, events.join('; ')).toEqual([]);
  }, 600_000);
});
