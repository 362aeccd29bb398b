/**
 * Two authentication servers as separate OS processes (`kessai serve auth`) on one
 * PostgreSQL database, with a settlement server: a payment request created through instance A is
 * pushed to a terminal listening on instance B (LISTEN/NOTIFY, ids only), approved through B, and
 * the merchant waiting on A sees it approved. The push channel survives its connection being cut.
 * Needs PostgreSQL (KESSAI_TEST_PG_URL): on PGlite there is one process and no channel to test.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { newId } from '@kessai/protocol';
import { loadOrCreateDevPki, openDb, type Db } from '@kessai/service';
import { demoIssuers } from '@kessai/cli/demo-data';
import { MerchantClient, WalletClient, type VerifiedRequest } from '@kessai/sdk';
import { publishDirectoryFile } from '@kessai/cli/directory';
import { scratchPostgres } from './support/database.ts';
import { authEnv, startInstance, stopInstance, type Instance } from './support/processes.ts';
import { startInProcessIssuer, type InProcessIssuer } from './support/issuer.ts';
import { waitFor } from './support/system.ts';

const issuer = demoIssuers[0]!;
const card = issuer.cards.find((c) => c.status === 'active')!;

const pgUrl = process.env.KESSAI_TEST_PG_URL;

describe.skipIf(!pgUrl)('several authentication servers on one PostgreSQL', () => {
  let dataDir: string;
  const drops: Array<() => Promise<void>> = [];
  let authDbUrl: string;
  let settlementDb: Db;
  let settlement: InProcessIssuer['app'];
  let a: Instance | undefined;
  let b: Instance | undefined;
  let caCertPem: string;
  let merchantA: MerchantClient;
  let wallet: WalletClient;
  const notices: string[] = [];
  let observer: pg.Client;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'kessai-multi-'));
    const authScratch = (await scratchPostgres('kessai_multi_auth'))!;
    const settlementScratch = (await scratchPostgres('kessai_multi_settlement'))!;
    drops.push(authScratch.drop, settlementScratch.drop);
    authDbUrl = authScratch.url;
    const pki = await loadOrCreateDevPki(path.join(dataDir, 'pki'), [
      { name: 'auth-server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usages: ['server', 'client'] },
      { name: 'settlement-server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usages: ['server'] },
    ]);
    caCertPem = pki.caCertPem;
    settlementDb = await openDb({ url: settlementScratch.url });
    // Both instances share the keys (auth/keys under dataDir), the database and the merchant seed; the bank onboards the merchant.
    const merchant = { id: newId('mer'), name: 'Kessai Tea House', apiKey: `sk_test_${randomBytes(24).toString('base64url')}`, webhookSecret: `whsec_${randomBytes(24).toString('base64url')}` };
    const started = await startInProcessIssuer({ issuer, dataDir, db: settlementDb, pki, merchants: [{ id: merchant.id, name: merchant.name }] });
    settlement = started.app;
    const settlementUrl = started.url;
    const directoryKey = (await publishDirectoryFile(dataDir, caCertPem, [{ issuer, url: settlementUrl }])).publicJwk;
    // The listen heartbeat (`select 1`) is pushed past the test: the last test finds each instance's channel connection by its query text, LISTEN.
    const env = await authEnv({ databaseUrl: authDbUrl, dataDir, issuers: [{ id: issuer.id, baseUrl: settlementUrl, cardPrefixes: issuer.cardPrefixes }], merchants: [merchant], workerIntervalMs: 100, dbTimeouts: { listenHeartbeatMs: 600_000 } });
    a = await startInstance('auth', env);
    b = await startInstance('auth', env); // after A: A ran the migrations and made the shared keys
    merchantA = new MerchantClient({ maxNetworkRetries: 0, baseUrl: a.url, apiKey: merchant.apiKey, caCertPem });
    // The terminal is enrolled at, listens on and approves through B only.
    wallet = new WalletClient(await WalletClient.enroll({ authBaseUrl: b.url, caCertPem, directoryKey, holderName: card.holderName, cardNumber: card.cardNumber, expiry: card.expiry, pin: card.pin }), { caCertPem });
    // What crosses the channel, as any other listener on the database sees it.
    observer = new pg.Client({ connectionString: authDbUrl });
    await observer.connect();
    observer.on('notification', (message) => notices.push(message.payload ?? ''));
    await observer.query('LISTEN kessai_push');
  }, 120_000);

  afterAll(async () => {
    await observer?.end().catch(() => undefined);
    await wallet?.close();
    await merchantA?.close();
    await stopInstance(a);
    await stopInstance(b);
    await settlement?.close();
    await settlementDb?.close();
    for (const drop of drops) await drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  const order = (orderId: string) => ({ order_id: orderId, currency: 'JPY' as const, amount_minor: '300', line_items: [{ description: 'Sencha', quantity: 1, unit_price_minor: '300' }], wallet_handle: wallet.wallet.credential_id });

  /**
   * Opens the terminal's event stream on B and waits until it is live — B sends what is already
   * pending right after subscribing, so a request made beforehand comes first — then creates the
   * request through A: it can reach B only through the channel.
   */
  async function pushedThroughB(orderId: string): Promise<{ request: VerifiedRequest; id: string }> {
    const opener = await merchantA.createPaymentRequest(order(`${orderId}-opener`), `${orderId}-opener`);
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 20_000);
    try {
      const stream = wallet.listen(abort.signal);
      const first = await stream.next();
      expect(first.value?.view.rid, 'the stream on B is live').toBe(opener.id);
      const created = await merchantA.createPaymentRequest(order(orderId), orderId);
      let pushed = await stream.next();
      while (pushed.value && pushed.value.view.rid === opener.id) pushed = await stream.next(); // a repeat of the opener
      expect(pushed.value, 'B pushed the request created through A').toBeDefined();
      expect((await wallet.decline(first.value!)).status).toBe('cancelled');
      return { request: pushed.value!, id: created.id };
    } finally {
      clearTimeout(timer);
      abort.abort();
    }
  }

  it('pushes a request created through A to the terminal on B; B approves; the merchant waiting on A sees it', async () => {
    const { request, id } = await pushedThroughB('multi-1');
    expect(request.view.rid).toBe(id);
    expect(request.view.amount_minor).toBe('300');

    const waiting = waitFor('approval seen through A', async () => {
      const view = await merchantA.getPaymentRequest(id);
      return view.status === 'pending' || view.status === 'authorizing' ? undefined : view;
    });
    const outcome = await wallet.approve(request, card.pin);
    expect(outcome.status).toBe('approved');
    const seen = await waiting;
    expect(seen.status).toBe('approved');
    expect(seen.authorization).toBe(outcome.authorization);

    // The channel carries ids only: origin process, credential, request.
    const ours = notices.map((n) => JSON.parse(n) as Record<string, string>).filter((n) => n.r === id);
    expect(ours).toHaveLength(1);
    expect(Object.keys(ours[0]!).sort()).toEqual(['c', 'o', 'r']);
    expect(ours[0]!.c).toBe(wallet.wallet.credential_id);
    for (const notice of notices) {
      expect(notice).not.toContain(card.cardNumber);
      expect(notice).not.toContain(card.holderName);
      expect(notice).not.toContain('Sencha');
    }
  });

  it('keeps pushing after the listening connections are cut', async () => {
    const admin = new pg.Client({ connectionString: authDbUrl });
    await admin.connect();
    try {
      const observerPid = (await observer.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
      const cut = await admin.query<{ pid: number }>("select pid from pg_stat_activity where datname = current_database() and query = 'LISTEN kessai_push' and pid <> $1 and pid <> pg_backend_pid()", [observerPid]);
      expect(cut.rows.length).toBe(2); // one per instance
      for (const { pid } of cut.rows) await admin.query('select pg_terminate_backend($1)', [pid]);
      await waitFor('both instances listening again', async () => {
        const again = await admin.query<{ pid: number }>("select pid from pg_stat_activity where datname = current_database() and query = 'LISTEN kessai_push' and pid <> $1", [observerPid]);
        return again.rows.length === 2 && again.rows.every((r) => !cut.rows.some((c) => c.pid === r.pid)) ? true : undefined;
      });
    } finally {
      await admin.end();
    }
    const { request, id } = await pushedThroughB('multi-2');
    expect(request.view.rid).toBe(id);
    expect((await wallet.decline(request)).status).toBe('cancelled');
  });
});
