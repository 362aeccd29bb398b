/**
 * The four roles each as its own `kessai serve <role>` process, configured from environment
 * variables alone (each from its own folder: certificate, key, CA bundle, keys, operator token),
 * on PGlite — or on PostgreSQL when KESSAI_TEST_PG_URL is set — and one purchase end to end:
 * a wallet enrolls with the SDK, the shop's checkout creates the payment request, the wallet
 * approves with the PIN, the shop captures.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '@kessai/protocol';
import { freePort } from '@kessai/service';
import { demoIssuers } from '@kessai/cli/demo-data';
import { publishDirectoryFile } from '@kessai/cli/directory';
import type { KessaiSystem } from '@kessai/cli/system';
import { MerchantClient, WalletClient } from '@kessai/sdk';
import { scratchPostgres } from './support/database.ts';
import { roleFolder, seedBankCards, startServe, writeConfigFile, type Served } from './support/serve.ts';
import { checkout, waitForOrder } from './support/shop.ts';
import { callJson } from './support/system.ts';

const issuer = demoIssuers[0]!;
const card = issuer.cards.find((c) => c.status === 'active' && c.currency === 'JPY')!;

describe('kessai serve: the four roles from environment variables only', () => {
  let dir: string;
  const running: Served[] = [];
  const drops: Array<() => Promise<void>> = [];
  let caCertPem: string;
  let urls: { auth: string; bank: string; shop: string; wallet: string };
  let merchant: { id: string; name: string; apiKey: string; webhookSecret: string };
  let directoryKey: Awaited<ReturnType<typeof publishDirectoryFile>>;

  /** A database URL per role on PostgreSQL; nothing (PGlite under the role's folder) otherwise. */
  async function database(role: string): Promise<Record<string, string>> {
    const scratch = await scratchPostgres(`kessai_serve_${role}`);
    if (!scratch) return {};
    drops.push(scratch.drop);
    return { KESSAI_DATABASE_URL: scratch.url };
  }

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'kessai-serve-'));
    const caDir = path.join(dir, 'test-ca');
    const folders = {
      auth: await roleFolder({ dir: path.join(dir, 'auth'), caDir }),
      bank: await roleFolder({ dir: path.join(dir, 'bank'), caDir, client: false }),
      shop: await roleFolder({ dir: path.join(dir, 'shop'), caDir, client: false }),
      wallet: await roleFolder({ dir: path.join(dir, 'wallet'), caDir, client: false }),
    };
    caCertPem = folders.auth.caCertPem;
    merchant = { id: newId('mer'), name: 'Kessai Tea House', apiKey: `sk_test_${randomBytes(24).toString('base64url')}`, webhookSecret: `whsec_${randomBytes(24).toString('base64url')}` };
    const [shopPort, walletPort] = [await freePort(), await freePort()];
    const local = { KESSAI_HOST: '127.0.0.1', KESSAI_LOG_LEVEL: 'warn' };

    // Role 40: the bank, its cards imported before it starts.
    const bankEnv = {
      ...folders.bank.env,
      ...local,
      KESSAI_PORT: '0',
      ...(await database('bank')),
      KESSAI_BANK_FILE: await writeConfigFile(folders.bank.dir, 'bank.json', JSON.stringify({ id: issuer.id, name: issuer.name, conversionMode: issuer.conversionMode, cipher2: issuer.cipher2, holdTimeoutSeconds: 3_600, businessDayTimeZone: 'Asia/Tokyo' })),
      KESSAI_BROKER_CERT_FINGERPRINTS: folders.auth.fingerprint,
      KESSAI_MERCHANTS_FILE: await writeConfigFile(folders.bank.dir, 'merchants.json', JSON.stringify([{ id: merchant.id, name: merchant.name }])),
    };
    await seedBankCards(bankEnv, [card]);
    const bank = await startServe('settlement', bankEnv);
    running.push(bank);

    // The scheme operator signs the directory from the bank's published keys.
    directoryKey = await publishDirectoryFile(path.join(dir, 'directory'), caCertPem, [{ issuer, url: bank.url }]);
    const shopUrl = `https://127.0.0.1:${shopPort}`;
    const walletUrl = `https://127.0.0.1:${walletPort}`;

    // Role 30: the broker.
    const auth = await startServe('auth', {
      ...folders.auth.env,
      ...local,
      KESSAI_PORT: '0',
      ...(await database('auth')),
      KESSAI_ISSUERS: JSON.stringify([{ id: issuer.id, baseUrl: bank.url, cardPrefixes: issuer.cardPrefixes }]),
      KESSAI_DIRECTORY_FILE: path.join(dir, 'directory', 'directory', 'directory.jws'),
      KESSAI_MERCHANTS_FILE: await writeConfigFile(folders.auth.dir, 'merchants.json', JSON.stringify([{ ...merchant, webhookUrl: `${shopUrl}/webhooks/kessai` }])),
      KESSAI_WALLET_ORIGINS: walletUrl,
      KESSAI_WALLET_URL: `${walletUrl}/wallet/`,
      KESSAI_CONFIG_FILE: await writeConfigFile(folders.auth.dir, 'tuning.json', JSON.stringify({ workerIntervalMs: 200 })),
    });
    running.push(auth);

    // Role 50: the shop.
    const shop = await startServe('shop', {
      ...folders.shop.env,
      ...local,
      KESSAI_PORT: String(shopPort),
      ...(await database('shop')),
      KESSAI_AUTH_URL: auth.url,
      KESSAI_MERCHANT_API_KEY_FILE: await writeConfigFile(folders.shop.dir, 'api-key', `${merchant.apiKey}\n`),
      KESSAI_WEBHOOK_SECRETS_FILE: await writeConfigFile(folders.shop.dir, 'webhook-secrets', `${merchant.webhookSecret}\n`),
      KESSAI_ISSUER_JWKS: JSON.stringify({ [issuer.id]: `${bank.url}/.well-known/jwks.json` }),
    });
    running.push(shop);

    // The browser wallet's own origin.
    const wallet = await startServe('wallet-host', {
      ...folders.wallet.env,
      ...local,
      KESSAI_PORT: String(walletPort),
      KESSAI_AUTH_URL: auth.url,
      KESSAI_DIRECTORY_KEY_FILE: directoryKey.file,
    });
    running.push(wallet);
    urls = { auth: auth.url, bank: bank.url, shop: shop.url, wallet: wallet.url };
  }, 300_000);

  afterAll(async () => {
    const codes = await Promise.all(running.reverse().map((served) => served.stop()));
    expect(codes.every((code) => code === 0), 'every role exits 0 on SIGTERM').toBe(true);
    for (const drop of drops) await drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it('pays end to end: enroll, checkout at the shop, approve with the PIN, capture', async () => {
    // Two support functions read a system's CA and shop URL only.
    const system = { pki: { caCertPem }, shop: { url: urls.shop } } as unknown as KessaiSystem;
    const wallet = new WalletClient(await WalletClient.enroll({ authBaseUrl: urls.auth, caCertPem, directoryKey: directoryKey.publicJwk, holderName: card.holderName, cardNumber: card.cardNumber, expiry: card.expiry, pin: card.pin }), { caCertPem });
    const merchantClient = new MerchantClient({ maxNetworkRetries: 0, baseUrl: urls.auth, apiKey: merchant.apiKey, caCertPem });
    const abort = new AbortController();
    try {
      expect(wallet.wallet.issuer.id).toBe(issuer.id);
      const stream = wallet.listen(abort.signal);
      const pushed = stream.next();
      const order = await checkout(system, [{ index: 0, quantity: 1 }], wallet.wallet.credential_id);
      const request = (await pushed).value!;
      expect(request.view.rid).toBe(order.payment_request_id);
      const outcome = await wallet.approve(request, card.pin);
      expect(outcome.status).toBe('approved');
      const paid = await waitForOrder(system, order.order_id, 'captured');
      expect(paid.captured_minor).toBe(paid.amount_minor);
      expect((await merchantClient.getPaymentRequest(order.payment_request_id)).status).toBe('captured');
    } finally {
      abort.abort();
      await wallet.close();
      await merchantClient.close();
    }
  });

  it('the wallet host serves the broker URL and the directory key it was configured with', async () => {
    const config = await callJson({ pki: { caCertPem } } as unknown as KessaiSystem, 'GET', `${urls.wallet}/wallet/config.json`);
    expect(config.status).toBe(200);
    expect(config.body).toEqual({ auth_base_url: urls.auth, directory_key: directoryKey.publicJwk });
  });
});
