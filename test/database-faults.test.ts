/**
 * Databases can fail without killing a server (issue 12, item 4). The authentication server and
 * a settlement server run as their own OS processes (`kessai serve <role>`), each on its own
 * PostgreSQL database reached through a TCP proxy (test/support/tcp-proxy.ts), with database
 * timeouts shortened through their configs (`dbTimeouts`; production uses limits.ts db…Ms):
 * - every backend of both terminated (pg_terminate_backend) while payments are in flight: both
 *   processes stay up, each in-flight call succeeds or answers database_unavailable, and payments
 *   succeed afterwards without a restart;
 * - the database stalled longer than the timeouts: calls answer 503 database_unavailable with
 *   Retry-After within the connect/query timeout, not the caller's; after the stall ends the
 *   servers serve again by themselves;
 * - connections cut and refused: 503 at once; restored: serving again.
 * The in-flight limits are raised (loadTestLoadShedding): the bursts here are of database faults, not of load.
 * Needs PostgreSQL (KESSAI_TEST_PG_URL): PGlite runs inside the server's process, with no
 * connection to lose (docs/operations.md, Failure semantics).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { Agent, request } from 'undici';
import { KessaiError, limits, newId, type JWK } from '@kessai/protocol';
import { publishDirectoryFile } from '@kessai/cli/directory';
import { loadOrCreateDevPki, loadTestLoadShedding } from '@kessai/service';
import { demoIssuers } from '@kessai/cli/demo-data';
import { MerchantClient, WalletClient } from '@kessai/sdk';
import { scratchPostgres } from './support/database.ts';
import { authEnv, freePort, settlementEnv, startInstance, stopInstance, type Instance } from './support/processes.ts';
import { waitFor } from './support/system.ts';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.ts';

const pgUrl = process.env.KESSAI_TEST_PG_URL;
const issuer = demoIssuers.find((i) => i.id === 'sakura-bank')!;
const card = issuer.cards.find((c) => c.status === 'active' && c.currency === 'JPY' && c.balanceMinor >= 1_000_000n)!;

/** Short enough to watch them act, long enough for a loaded two-core machine's ordinary statements. */
const dbTimeouts = { connectMs: 1_000, statementMs: 1_500, queryMs: 2_000, idleInTransactionMs: 5_000, listenHeartbeatMs: 1_000 };
/** A fault must be answered within the timeout that notices it plus this (TLS, the process, the machine being busy). */
const marginMs = 2_500;

interface Answer {
  status: number;
  code?: string;
  retryAfter?: string;
  elapsedMs: number;
}

describe.skipIf(!pgUrl)(pgUrl ? 'database faults under separate processes on PostgreSQL' : 'database faults under separate processes (skipped: needs PostgreSQL, set KESSAI_TEST_PG_URL)', () => {
  let dataDir: string;
  const drops: Array<() => Promise<void>> = [];
  const databases: string[] = [];
  let authProxy: TcpProxy;
  let bankProxy: TcpProxy;
  let auth: Instance | undefined;
  let bank: Instance | undefined;
  let operatorToken: string;
  let merchantSeed: { id: string; name: string; apiKey: string; webhookSecret: string };
  let merchant: MerchantClient;
  let wallet: WalletClient;
  let agent: Agent;
  let admin: pg.Client;
  let directoryKey: JWK;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'kessai-dbfaults-'));
    const pki = await loadOrCreateDevPki(path.join(dataDir, 'pki'), [
      { name: 'auth-server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usages: ['server', 'client'] },
      { name: 'settlement-server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usages: ['server'] },
    ]);
    agent = new Agent({ connect: { ca: pki.caCertPem } });
    admin = new pg.Client({ connectionString: pgUrl });
    await admin.connect();
    /** A scratch database, reached through its own proxy. */
    const proxied = async (prefix: string) => {
      const scratch = (await scratchPostgres(prefix))!;
      drops.push(scratch.drop);
      const url = new URL(scratch.url);
      databases.push(url.pathname.slice(1));
      const proxy = await startTcpProxy({ targetHost: url.hostname, targetPort: Number(url.port || 5432) });
      url.host = `127.0.0.1:${proxy.port}`;
      return { proxy, url: url.toString() };
    };
    const authDb = await proxied('kessai_dbfaults_auth');
    const bankDb = await proxied('kessai_dbfaults_bank');
    authProxy = authDb.proxy;
    bankProxy = bankDb.proxy;

    operatorToken = `op_${randomBytes(32).toString('base64url')}`;
    merchantSeed = { id: newId('mer'), name: 'Kessai Tea House', apiKey: `sk_test_${randomBytes(24).toString('base64url')}`, webhookSecret: `whsec_${randomBytes(24).toString('base64url')}` };
    const bankPort = await freePort();
    bank = await startInstance('settlement', await settlementEnv({ issuerId: issuer.id, dataDir, port: bankPort, operatorToken, merchants: [{ id: merchantSeed.id, name: merchantSeed.name }], databaseUrl: bankDb.url, dbTimeouts, logName: 'bank', loadShedding: loadTestLoadShedding }));
    directoryKey = (await publishDirectoryFile(dataDir, pki.caCertPem, [{ issuer, url: bank.url }])).publicJwk;
    auth = await startInstance('auth', await authEnv({ dataDir, databaseUrl: authDb.url, dbTimeouts, issuers: [{ id: issuer.id, baseUrl: bank.url, cardPrefixes: issuer.cardPrefixes }], merchants: [merchantSeed], workerIntervalMs: 100, logName: 'auth', loadShedding: loadTestLoadShedding }));
    merchant = new MerchantClient({ maxNetworkRetries: 0, baseUrl: auth.url, apiKey: merchantSeed.apiKey, caCertPem: pki.caCertPem });
    wallet = new WalletClient(await WalletClient.enroll({ authBaseUrl: auth.url, caCertPem: pki.caCertPem, directoryKey, holderName: card.holderName, cardNumber: card.cardNumber, expiry: card.expiry, pin: card.pin }), { caCertPem: pki.caCertPem });
  }, 180_000);

  afterAll(async () => {
    await wallet?.close();
    await merchant?.close();
    await agent?.close();
    await stopInstance(auth);
    await stopInstance(bank);
    await authProxy?.close();
    await bankProxy?.close();
    await admin?.end();
    for (const drop of drops) await drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  /** One HTTP call, timed; the caller's own timeout is upstreamTimeoutMs, as a peer server's would be. */
  async function call(method: 'GET' | 'POST', url: string, headers: Record<string, string> = {}, body?: unknown): Promise<Answer> {
    const started = Date.now();
    const response = await request(url, {
      method,
      dispatcher: agent,
      headers: { accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(limits.upstreamTimeoutMs),
    });
    const text = await response.body.text();
    const parsed = text ? (JSON.parse(text) as { code?: string }) : {};
    const retryAfter = response.headers['retry-after'];
    return { status: response.statusCode, elapsedMs: Date.now() - started, ...(parsed.code ? { code: parsed.code } : {}), ...(typeof retryAfter === 'string' ? { retryAfter } : {}) };
  }

  const order = (orderId: string) => ({ order_id: orderId, currency: 'JPY', amount_minor: '500', line_items: [{ description: 'Hojicha', quantity: 1, unit_price_minor: '500' }], wallet_handle: wallet.wallet.credential_id });
  /** The broker, on its database: a merchant creating a payment request (a fresh key each time). */
  const createAtBroker = (orderId: string) => call('POST', `${auth!.url}/v1/payment-requests`, { authorization: `Bearer ${merchantSeed.apiKey}`, 'idempotency-key': `${orderId}-${randomBytes(4).toString('hex')}` }, order(orderId));
  /** The bank, on its database: its operator listing authorizations. */
  const readAtBank = () => call('GET', `${bank!.url}/admin/v1/authorizations`, { authorization: `Bearer ${operatorToken}` });

  /** A whole payment: created, approved with the PIN (the bank authorizes), captured. */
  async function pay(orderId: string): Promise<void> {
    const created = await merchant.createPaymentRequest(order(orderId) as Parameters<MerchantClient['createPaymentRequest']>[0], orderId);
    const outcome = await wallet.approve(await wallet.fetchRequest(created.id), card.pin);
    expect(outcome.status, `${orderId}: approved`).toBe('approved');
    expect((await merchant.capture(created.id, {}, `${orderId}-capture`)).status, `${orderId}: captured`).toBe('captured');
  }

  /** A statement on the bank's database, directly (not through its proxy). */
  async function atBankDatabase(sql: string, params: unknown[]): Promise<Array<Record<string, unknown>>> {
    const url = new URL(pgUrl!);
    url.pathname = `/${databases[1]!}`;
    const client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
    try {
      return (await client.query(sql, params)).rows as Array<Record<string, unknown>>;
    } finally {
      await client.end();
    }
  }

  /** A payment under faults: `succeeded` (approved and captured), `reversed` (in doubt, then pending again at the broker with no hold at the bank), or a thrown KessaiError. */
  async function payOnce(orderId: string): Promise<string> {
    const created = await merchant.createPaymentRequest(order(orderId) as Parameters<MerchantClient['createPaymentRequest']>[0], orderId);
    const outcome = await wallet.approve(await wallet.fetchRequest(created.id), card.pin);
    if (outcome.status === 'pending') {
      const held = await atBankDatabase('select status from authorizations where request_id = $1', [created.id]);
      return held.length === 0 ? 'reversed' : `pending at the broker, but ${held[0]!.status} at the bank`;
    }
    if (outcome.status !== 'approved') return `told ${outcome.status}`;
    await merchant.capture(created.id, {}, `${orderId}-capture`);
    return 'succeeded';
  }

  /** Both processes are the ones started in beforeAll, alive, and answer a route that needs no database. */
  async function bothAlive(): Promise<void> {
    for (const instance of [auth!, bank!]) {
      expect(instance.child.exitCode, `${instance.url} has not exited`).toBeNull();
      expect(() => process.kill(instance.child.pid!, 0), `pid ${instance.child.pid} is alive`).not.toThrow();
      expect((await call('GET', `${instance.url}/.well-known/jwks.json`)).status).toBe(200);
    }
  }

  /** Both servers serve from their databases again, by themselves: a read at each, then a whole payment. */
  async function servingAgain(orderId: string): Promise<void> {
    await waitFor('the broker serves from its database again', async () => ((await createAtBroker(`${orderId}-probe`)).status === 201 ? true : undefined), 20_000);
    await waitFor('the bank serves from its database again', async () => ((await readAtBank()).status === 200 ? true : undefined), 20_000);
    await pay(orderId);
  }

  const expectDatabaseUnavailable = (answer: Answer, withinMs: number, who: string) => {
    expect(answer.status, who).toBe(503);
    expect(answer.code, who).toBe('database_unavailable');
    expect(answer.retryAfter, `${who}: Retry-After`).toBe(String(limits.dbRetryAfterSeconds));
    expect(answer.elapsedMs, `${who}: answered within the database timeouts, not the caller's ${limits.upstreamTimeoutMs} ms`).toBeLessThan(withinMs);
  };

  it('pays before any fault', async () => {
    await pay('before-faults');
  });

  it('survives every backend of both servers being terminated while payments are in flight, and pays afterwards without a restart', async () => {
    const pids = [auth!.child.pid, bank!.child.pid];
    const settled = (promise: Promise<unknown>) =>
      promise.then(
        () => 'succeeded',
        (err: unknown) => (err instanceof KessaiError ? err.code : `not a KessaiError: ${String(err)}`),
      );
    const inFlight: Array<Promise<string>> = [];
    for (let i = 0; i < 6; i += 1) {
      inFlight.push(settled(payOnce(`terminate-${i}`)));
      inFlight.push(createAtBroker(`terminate-create-${i}`).then((a) => (a.status === 201 ? 'succeeded' : (a.code ?? String(a.status)))));
      inFlight.push(readAtBank().then((a) => (a.status === 200 ? 'succeeded' : (a.code ?? String(a.status)))));
    }
    let terminated = 0;
    for (let round = 0; round < 5; round += 1) {
      const rows = await admin.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = any($1::text[]) and pid <> pg_backend_pid()', [databases]);
      terminated += rows.rowCount ?? 0;
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    expect(terminated, 'backends of both servers were terminated').toBeGreaterThan(0);
    const outcomes = await Promise.all(inFlight);
    // A payment whose approval met the fault may fail at the broker (database_unavailable), or — when the bank's answer was
    // a 503 — be in doubt and resolved by the broker: adopted (succeeded) or reversed (pending again, nothing held);
    // issuer_unavailable is the broker's word for a bank it could not reach at all. Nothing else: no 500, no hang.
    expect(outcomes.filter((o) => !['succeeded', 'reversed', 'database_unavailable', 'issuer_unavailable'].includes(o)), 'in-flight outcomes other than success, a reversal or database_unavailable').toEqual([]);
    await bothAlive();
    expect([auth!.child.pid, bank!.child.pid]).toEqual(pids);
    await servingAgain('after-terminate');
  }, 120_000);

  it('answers 503 database_unavailable with Retry-After within the timeouts while the databases stall, and serves again by itself after', async () => {
    authProxy.stall();
    bankProxy.stall();
    const stalledSince = Date.now();
    try {
      const withinMs = Math.max(dbTimeouts.queryMs, dbTimeouts.connectMs) + marginMs;
      const [atBroker, atBank] = await Promise.all([createAtBroker('stalled'), readAtBank()]);
      expectDatabaseUnavailable(atBroker, withinMs, 'the broker');
      expectDatabaseUnavailable(atBank, withinMs, 'the bank');
      // Longer than every timeout: new connections wait in the stalled proxy too, and still get a quick answer.
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, 2 * dbTimeouts.idleInTransactionMs - (Date.now() - stalledSince))));
      expectDatabaseUnavailable(await createAtBroker('still-stalled'), withinMs, 'the broker, later in the stall');
      await bothAlive();
    } finally {
      authProxy.resume();
      bankProxy.resume();
    }
    await servingAgain('after-stall');
    // The operator's view: the fault is in each server's log as a warning, not an error.
    for (const name of ['auth', 'bank']) {
      const lines = (await readFile(path.join(dataDir, 'logs', `${name}.log`), 'utf8')).split('\n').filter(Boolean).map((line) => JSON.parse(line) as { level: number; msg: string });
      expect(lines.some((line) => line.level === 40 && line.msg.startsWith('database unavailable')), `${name}.log warns of the database`).toBe(true);
      expect(lines.filter((line) => line.level >= 50).map((line) => line.msg), `${name}.log: no error lines`).toEqual([]);
    }
  }, 120_000);

  it('leaves no hold stranded when the bank\'s database stalls during authorizations: each ends approved (and held) or pending (and nothing held)', async () => {
    const requests = await Promise.all([0, 1, 2].map((i) => merchant.createPaymentRequest(order(`bank-stall-${i}`) as Parameters<MerchantClient['createPaymentRequest']>[0], `bank-stall-${i}`)));
    const views = await Promise.all(requests.map((r) => wallet.fetchRequest(r.id)));
    bankProxy.stall();
    const told = Promise.all(views.map((view) => wallet.approve(view, card.pin).then((o) => o.status, (err: unknown) => (err instanceof KessaiError ? err.code : String(err)))));
    await new Promise((resolve) => setTimeout(resolve, 3 * dbTimeouts.queryMs));
    bankProxy.resume();
    const outcomes = await told;
    for (const [index, created] of requests.entries()) {
      const [atBroker, atBank] = await waitFor(`${created.id} to be resolved at the broker`, async () => {
        const view = await merchant.getPaymentRequest(created.id);
        if (view.status === 'authorizing') return undefined;
        return [view.status, (await atBankDatabase('select status from authorizations where request_id = $1', [created.id]))[0]?.status] as const;
      }, 30_000);
      // Never a hold the broker does not know of, never an approval without one; the wallet was told what happened.
      expect([[atBroker, atBank]], created.id).toContainEqual(atBroker === 'approved' ? ['approved', 'held'] : ['pending', undefined]);
      // ("not known yet", authorizing, is no claim either way.)
      if (outcomes[index] !== 'authorizing') expect(outcomes[index] === 'approved' ? 'approved' : 'pending', `${created.id}: the wallet was told ${outcomes[index]}`).toBe(atBroker);
    }
    const [stranded] = await atBankDatabase("select count(*)::int as n from transfers t join authorizations a on a.hold_transfer_id = t.id where t.state = 'pending' and a.request_id = any($1::text[])", [requests.map((r) => r.id)]);
    expect(stranded!.n).toBe(outcomes.filter((o) => o === 'approved').length);
    await bothAlive();
  }, 120_000);

  it('answers 503 database_unavailable at once while connections to the databases are cut and refused, and serves again once they are restored', async () => {
    authProxy.drop();
    bankProxy.drop();
    try {
      const [atBroker, atBank] = await Promise.all([createAtBroker('dropped'), readAtBank()]);
      expectDatabaseUnavailable(atBroker, marginMs, 'the broker');
      expectDatabaseUnavailable(atBank, marginMs, 'the bank');
      await bothAlive();
    } finally {
      authProxy.resume();
      bankProxy.resume();
    }
    await servingAgain('after-drop');
  }, 120_000);
});
