/**
 * A bank lost and restored from its backups (docs/operations.md, "Backup and restore"): the
 * settlement server of sakura-bank and an authentication server as their own processes, a wallet
 * enrolled and paying; then the bank's database is backed up (pg_dump on PostgreSQL, a copy of the
 * stopped PGlite folder otherwise) with its key folder (`kessai keys backup`), the bank stopped,
 * its database dropped and its key folder deleted; both restored (pg_restore, `kessai keys
 * restore`), the bank started again, and the SAME enrolled wallet pays again — which takes the
 * restored card lookup key, PIN verification key, cipher 2 and credential registry — while the
 * earlier payment is still captured in the bank's ledger.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { newId, type JWK } from '@kessai/protocol';
import { publishDirectoryFile } from '@kessai/cli/directory';
import { demoIssuers } from '@kessai/cli/demo-data';
import { backupKeys, restoreKeys } from '@kessai/cli/keys-commands';
import { dbExit, dbStatus } from '@kessai/cli/db-commands';
import { loadOrCreateDevPki } from '@kessai/service';
import { HttpClient, MerchantClient, WalletClient } from '@kessai/sdk';
import { asAdmin, scratchPostgres } from './support/database.ts';
import { authEnv, freePort, holdPort, settlementEnv, startInstance, stopInstance, type Instance } from './support/processes.ts';

const run = promisify(execFile);
const pgBin = '/usr/lib/postgresql/15/bin';
const adminUrl = process.env.KESSAI_TEST_PG_URL;
const backend = adminUrl ? 'PostgreSQL' : 'PGlite';
const sakura = demoIssuers.find((i) => i.id === 'sakura-bank')!;
const card = sakura.cards.find((c) => c.status === 'active' && c.currency === 'JPY' && c.balanceMinor >= 100_000n)!;

const authorizations = z.object({ items: z.array(z.object({ request_id: z.string(), status: z.string(), captured_amount: z.string() }).loose()) });

describe(`a bank backed up, wiped and restored pays again with the same wallet (${backend})`, () => {
  let dataDir: string;
  let backupDir: string;
  const drops: Array<() => Promise<void>> = [];
  let bank: Instance | undefined;
  let auth: Instance | undefined;
  let bankEnv: Record<string, string>;
  let bankUrl: string;
  let bankPort: number;
  let bankDatabaseUrl: string | undefined;
  let operatorToken: string;
  let caCertPem: string;
  let merchant: MerchantClient;
  let operator: HttpClient;
  let wallet: WalletClient;
  let firstPayment: string;
  const keysDir = () => path.join(dataDir, `settlement-${sakura.id}`, 'keys');
  const pgliteDir = () => path.join(dataDir, `settlement-${sakura.id}`, 'db');

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'kessai-bank-restore-'));
    backupDir = await mkdtemp(path.join(tmpdir(), 'kessai-bank-backups-'));
    const pki = await loadOrCreateDevPki(path.join(dataDir, 'pki'), [
      { name: 'auth-server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usages: ['server', 'client'] },
      { name: 'settlement-server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usages: ['server'] },
    ]);
    caCertPem = pki.caCertPem;
    operatorToken = `op_${randomBytes(32).toString('base64url')}`;
    const seed = { id: newId('mer'), name: 'Kessai Tea House', apiKey: `sk_test_${randomBytes(24).toString('base64url')}`, webhookSecret: `whsec_${randomBytes(24).toString('base64url')}` };
    const scratch = async (prefix: string) => {
      const created = await scratchPostgres(prefix);
      if (created) drops.push(created.drop);
      return created?.url;
    };
    bankDatabaseUrl = await scratch('kessai_restore_bank');
    bankPort = await freePort();
    bankUrl = `https://127.0.0.1:${bankPort}`;
    bankEnv = await settlementEnv({ issuerId: sakura.id, dataDir, port: bankPort, operatorToken, merchants: [{ id: seed.id, name: seed.name }], ...(bankDatabaseUrl ? { databaseUrl: bankDatabaseUrl } : {}) });
    bank = await startInstance('settlement', bankEnv);
    const directoryKey: JWK = (await publishDirectoryFile(dataDir, caCertPem, [{ issuer: sakura, url: bankUrl }])).publicJwk;
    const authDatabaseUrl = await scratch('kessai_restore_auth');
    auth = await startInstance('auth', await authEnv({ dataDir, issuers: [{ id: sakura.id, baseUrl: bankUrl, cardPrefixes: sakura.cardPrefixes }], merchants: [seed], workerIntervalMs: 100, ...(authDatabaseUrl ? { databaseUrl: authDatabaseUrl } : {}) }));
    merchant = new MerchantClient({ maxNetworkRetries: 0, baseUrl: auth.url, apiKey: seed.apiKey, caCertPem });
    operator = new HttpClient({ caCertPem });
    wallet = new WalletClient(await WalletClient.enroll({ authBaseUrl: auth.url, caCertPem, directoryKey, holderName: card.holderName, cardNumber: card.cardNumber, expiry: card.expiry, pin: card.pin }), { caCertPem });
  }, 180_000);

  afterAll(async () => {
    await wallet?.close();
    await merchant?.close();
    await operator?.close();
    await stopInstance(auth);
    await stopInstance(bank);
    for (const drop of drops) await drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
    if (backupDir) await rm(backupDir, { recursive: true, force: true });
  });

  /** Steps 402–409: a request for this wallet, approved with the card's PIN, captured. */
  async function pay(orderId: string): Promise<string> {
    const created = await merchant.createPaymentRequest({ order_id: orderId, currency: 'JPY', amount_minor: '1500', line_items: [{ description: 'Sencha', quantity: 1, unit_price_minor: '1500' }], wallet_handle: wallet.wallet.credential_id }, orderId);
    const outcome = await wallet.approve(await wallet.fetchRequest(created.id), card.pin);
    expect(outcome.status, `${orderId}: approved`).toBe('approved');
    expect((await merchant.capture(created.id, {}, `${orderId}-capture`)).status).toBe('captured');
    return created.id;
  }

  const ledger = async () => (await operator.call('GET', `${bankUrl}/admin/v1/authorizations`, { headers: { authorization: `Bearer ${operatorToken}` }, schema: authorizations, unavailable: 'issuer_unavailable' })).items;

  it('pays and captures before the loss', async () => {
    firstPayment = await pay('restore-before');
    expect((await ledger()).find((r) => r.request_id === firstPayment)).toMatchObject({ status: 'captured', captured_amount: '1500' });
  });

  it('backs up the database and the key folder, loses both, restores both, and the same wallet pays again', async () => {
    const passphraseFile = path.join(backupDir, 'passphrase');
    await writeFile(passphraseFile, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600 });
    const keysBackup = path.join(backupDir, 'sakura-keys.jwe');
    const dump = path.join(backupDir, 'sakura.dump');

    // Back up: PostgreSQL online (pg_dump takes a consistent snapshot), then the keys; PGlite only while stopped.
    if (bankDatabaseUrl) await run(path.join(pgBin, 'pg_dump'), ['--format=custom', '--file', dump, '--dbname', bankDatabaseUrl]);
    await backupKeys({ role: `settlement-${sakura.id}`, keysDir: keysDir(), out: keysBackup, passphraseFile });
    expect(await stopInstance(bank), 'the bank stopped cleanly').toBe(0);
    const port = await holdPort(bankPort);
    if (!bankDatabaseUrl) await cp(pgliteDir(), path.join(backupDir, 'sakura-db'), { recursive: true });

    // The loss: the database dropped, the key folder deleted.
    const dbName = bankDatabaseUrl ? new URL(bankDatabaseUrl).pathname.slice(1) : undefined;
    if (dbName) await asAdmin(adminUrl!, `DROP DATABASE "${dbName}" WITH (FORCE)`);
    else await rm(pgliteDir(), { recursive: true });
    await rm(keysDir(), { recursive: true });
    await expect(stat(keysDir())).rejects.toMatchObject({ code: 'ENOENT' });

    // The restore: an empty database of the same name and pg_restore, or the folder copied back; then the keys.
    if (dbName) {
      await asAdmin(adminUrl!, `CREATE DATABASE "${dbName}"`);
      await run(path.join(pgBin, 'pg_restore'), ['--no-owner', '--exit-on-error', '--dbname', bankDatabaseUrl!, dump]);
    } else {
      await cp(path.join(backupDir, 'sakura-db'), pgliteDir(), { recursive: true });
    }
    await restoreKeys({ in: keysBackup, keysDir: keysDir(), passphraseFile });
    // The restored schema is complete and unchanged.
    const status = await dbStatus({ role: 'settlement', ...(bankDatabaseUrl ? { databaseUrl: bankDatabaseUrl } : { dataDir: path.join(dataDir, `settlement-${sakura.id}`) }) });
    expect(status.exitCode, status.lines.join('\n')).toBe(dbExit.upToDate);

    await port.release();
    bank = await startInstance('settlement', bankEnv);
    expect(bank.url).toBe(bankUrl);

    // The same wallet: its credential is in the restored registry, its card found by the restored lookup key, its PIN checked with the restored PIN key.
    const secondPayment = await pay('restore-after');
    const rows = await ledger();
    expect(rows.find((r) => r.request_id === firstPayment), 'the payment before the loss is still captured').toMatchObject({ status: 'captured', captured_amount: '1500' });
    expect(rows.find((r) => r.request_id === secondPayment)).toMatchObject({ status: 'captured', captured_amount: '1500' });
  }, 120_000);
});
