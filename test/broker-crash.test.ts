/**
 * The authentication server killed (SIGKILL) at the moment the bank's signed authorization (step
 * 407) reaches it — after the bank placed the hold (406), before the broker recorded anything. The
 * request is left `authorizing` (its intent was saved before the call); a new process on the same
 * database finds it, asks the bank (the status inquiry), verifies the bank's stored decision and
 * adopts it: the wallet, which lost its connection, is told approved — never "not paid" — the
 * merchant gets its event, and the bank holds the money once. The broker is its own OS process
 * (`kessai serve auth`); the bank runs in this process, so a hook can pull the trigger.
 * On PostgreSQL (KESSAI_TEST_PG_URL) both have scratch databases; otherwise the broker has a
 * PGlite folder and the bank an in-memory PGlite.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '@kessai/protocol';
import { loadOrCreateDevPki, openDb, type Db } from '@kessai/service';
import { demoIssuers } from '@kessai/cli/demo-data';
import { publishDirectoryFile } from '@kessai/cli/directory';
import { MerchantClient, WalletClient } from '@kessai/sdk';
import { pgliteTemplate, scratchPostgres } from './support/database.ts';
import { authEnv, freePort, startInstance, stopInstance, type Instance } from './support/processes.ts';
import { startInProcessIssuer, type InProcessIssuer } from './support/issuer.ts';
import { waitFor } from './support/system.ts';

const backend = process.env.KESSAI_TEST_PG_URL ? 'PostgreSQL' : 'PGlite';
const issuer = demoIssuers.find((i) => i.id === 'sakura-bank')!;
const card = issuer.cards.find((c) => c.status === 'active' && c.currency === 'JPY' && c.balanceMinor >= 100_000n)!;

describe(`the broker killed after the bank's answer (step 407), restarted on its database (${backend})`, () => {
  let dataDir: string;
  const drops: Array<() => Promise<void>> = [];
  let bankDb: Db;
  let bank: InProcessIssuer['app'];
  let brokerEnv: Record<string, string>;
  let broker: Instance | undefined;
  let merchant: MerchantClient;
  let wallet: WalletClient;
  /** Set to kill the broker when the bank's next authorization answer is about to go out. */
  let killOnAnswer = false;
  let killed = false;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'kessai-broker-crash-'));
    const pki = await loadOrCreateDevPki(path.join(dataDir, 'pki'), [
      { name: 'auth-server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usages: ['server', 'client'] },
      { name: 'settlement-server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usages: ['server'] },
    ]);
    const scratchBank = await scratchPostgres('kessai_crash_bank');
    const scratchAuth = await scratchPostgres('kessai_crash_auth');
    for (const scratch of [scratchBank, scratchAuth]) if (scratch) drops.push(scratch.drop);
    bankDb = scratchBank ? await openDb({ url: scratchBank.url }) : await openDb({ pgliteTemplate: await pgliteTemplate() });
    const seed = { id: newId('mer'), name: 'Kessai Tea House', apiKey: `sk_test_${randomBytes(24).toString('base64url')}`, webhookSecret: `whsec_${randomBytes(24).toString('base64url')}` };
    // The trigger: the hold is committed (the handler ran); the answer has not left yet.
    const started = await startInProcessIssuer({
      issuer,
      dataDir,
      db: bankDb,
      pki,
      merchants: [{ id: seed.id, name: seed.name }],
      beforeListen: (app) =>
        app.addHook('onSend', async (request, _reply, payload) => {
          if (killOnAnswer && request.method === 'POST' && request.url === '/internal/v1/authorizations') {
            killOnAnswer = false;
            const exited = new Promise((resolve) => broker!.child.once('exit', resolve));
            broker!.child.kill('SIGKILL');
            await exited;
            killed = true;
          }
          return payload;
        }),
    });
    bank = started.app;
    const bankUrl = started.url;
    const directoryKey = (await publishDirectoryFile(dataDir, pki.caCertPem, [{ issuer, url: bankUrl }])).publicJwk;
    // A fixed port, so that the restarted process is found where the wallet and the merchant look.
    const port = await freePort();
    brokerEnv = await authEnv({
      dataDir,
      port,
      issuers: [{ id: issuer.id, baseUrl: bankUrl, cardPrefixes: issuer.cardPrefixes }],
      merchants: [seed],
      workerIntervalMs: 100,
      authorizationDeadlineMs: 1_000,
      ...(scratchAuth ? { databaseUrl: scratchAuth.url } : {}),
    });
    broker = await startInstance('auth', brokerEnv);
    merchant = new MerchantClient({ maxNetworkRetries: 0, baseUrl: broker.url, apiKey: seed.apiKey, caCertPem: pki.caCertPem });
    wallet = new WalletClient(await WalletClient.enroll({ authBaseUrl: broker.url, caCertPem: pki.caCertPem, directoryKey, holderName: card.holderName, cardNumber: card.cardNumber, expiry: card.expiry, pin: card.pin }), { caCertPem: pki.caCertPem });
  }, 120_000);

  afterAll(async () => {
    await wallet?.close();
    await merchant?.close();
    await stopInstance(broker);
    await bank?.close();
    await bankDb?.close();
    for (const drop of drops) await drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('leaves the request in doubt; the restarted broker adopts the bank\'s decision, and the wallet hears approved', async () => {
    const created = await merchant.createPaymentRequest({ order_id: `o-${newId('ord')}`, currency: 'JPY', amount_minor: '1111', line_items: [{ description: 'Sencha', quantity: 1, unit_price_minor: '1111' }] }, randomBytes(8).toString('hex'));
    const request = await wallet.fetchRequest(created.id);
    killOnAnswer = true;
    // The wallet's connection dies with the broker: it keeps asking for the outcome meanwhile.
    const answered = wallet.approve(request, card.pin);
    await waitFor('the broker to be killed', async () => (killed ? true : undefined));
    const [hold] = await bankDb.query<{ status: string }>('select status from authorizations where request_id = $1', [created.id]);
    expect(hold?.status, 'the bank placed the hold before the broker died').toBe('held');
    broker = await startInstance('auth', brokerEnv);
    const outcome = await answered;
    expect(outcome.status).toBe('approved');
    expect(await wallet.verifyAuthorization(outcome.authorization!, request.view)).toMatchObject({ rid: created.id, decision: 'approved', amt: '1111' });
    // The merchant sees it approved, and can capture it: the money moves once.
    expect((await merchant.getPaymentRequest(created.id)).status).toBe('approved');
    expect(await merchant.capture(created.id, {}, randomBytes(8).toString('hex'))).toMatchObject({ status: 'captured', captured_minor: '1111' });
    const rows = await bankDb.query<{ status: string; captured_amount: bigint }>('select status, captured_amount from authorizations where request_id = $1', [created.id]);
    expect(rows.map((r) => [r.status, BigInt(r.captured_amount)])).toEqual([['captured', 1111n]]);
  }, 120_000);
});
