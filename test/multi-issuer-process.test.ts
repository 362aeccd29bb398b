/**
 * Two issuers behind one authentication server, every server its own OS process (issue 6): the
 * settlement servers of sakura-bank and fuji-bank (`kessai serve settlement`, each on its
 * own database) and one authentication server (`kessai serve auth`) routing by card
 * range, over real TLS and mutual TLS. The merchant and the terminals are this process. Each
 * issuer's ledger is read through its own operator API. On PostgreSQL (KESSAI_TEST_PG_URL) each
 * role has its own scratch database; otherwise each process has its own PGlite folder.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { KessaiError, newId, type JWK } from '@kessai/protocol';
import { publishDirectoryFile } from '@kessai/cli/directory';
import { loadOrCreateDevPki } from '@kessai/service';
import { demoIssuers } from '@kessai/cli/demo-data';
import { HttpClient, MerchantClient, WalletClient } from '@kessai/sdk';
import { scratchPostgres } from './support/database.ts';
import { codeOf } from './support/errors.ts';
import { authEnv, freePort, settlementEnv, startInstance, stopInstance, type Instance } from './support/processes.ts';

const backend = process.env.KESSAI_TEST_PG_URL ? 'PostgreSQL' : 'PGlite';
const [sakura, fuji] = ['sakura-bank', 'fuji-bank'].map((id) => demoIssuers.find((i) => i.id === id)!) as [(typeof demoIssuers)[number], (typeof demoIssuers)[number]];
/** The first card of an issuer that pays a few thousand yen. */
const payingCard = (issuer: typeof sakura) => issuer.cards.find((c) => c.status === 'active' && c.currency === 'JPY' && c.balanceMinor >= 100_000n)!;
/** A Luhn-valid number (a public test number) in a range neither issuer serves. */
const cardInNoRange = '378282246310005';

const authorizations = z.object({
  items: z.array(z.object({ request_id: z.string(), status: z.string(), amount: z.string(), captured_amount: z.string(), hold_state: z.string().nullable() }).loose()),
});

interface IssuerProcess {
  issuer: typeof sakura;
  /** Its variables, kept for the restart. */
  env: Record<string, string>;
  url: string;
  instance?: Instance;
}

describe(`two issuers behind one authentication server, each server its own process (${backend})`, () => {
  let dataDir: string;
  const drops: Array<() => Promise<void>> = [];
  const issuers = new Map<string, IssuerProcess>();
  let auth: Instance | undefined;
  let caCertPem: string;
  let operatorToken: string;
  let merchant: MerchantClient;
  let operator: HttpClient;
  let directoryKey: JWK;
  const wallets = new Map<string, WalletClient>();

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'kessai-issuers-'));
    // Made once here, so that three processes starting at once do not race to create the CA.
    const pki = await loadOrCreateDevPki(path.join(dataDir, 'pki'), [
      { name: 'auth-server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usages: ['server', 'client'] },
      { name: 'settlement-server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usages: ['server'] },
    ]);
    caCertPem = pki.caCertPem;
    operatorToken = `op_${randomBytes(32).toString('base64url')}`;
    const databaseUrl = async (prefix: string) => {
      const scratch = await scratchPostgres(prefix);
      if (!scratch) return {};
      drops.push(scratch.drop);
      return { databaseUrl: scratch.url };
    };

    const seed = { id: newId('mer'), name: 'Kessai Tea House', apiKey: `sk_test_${randomBytes(24).toString('base64url')}`, webhookSecret: `whsec_${randomBytes(24).toString('base64url')}` };
    for (const issuer of [sakura, fuji]) {
      // A fixed port, so that the restarted process is found where the authentication server's config says.
      const port = await freePort();
      // Each bank onboards the merchant itself: it pays no merchant it does not know.
      const env = await settlementEnv({ issuerId: issuer.id, dataDir, port, operatorToken, merchants: [{ id: seed.id, name: seed.name }], ...(await databaseUrl(`kessai_issuers_${issuer.id}`)) });
      issuers.set(issuer.id, { issuer, env, url: `https://127.0.0.1:${port}` });
    }
    await Promise.all(
      [...issuers.values()].map(async (p) => {
        p.instance = await startInstance('settlement', p.env);
        expect(p.instance.url).toBe(p.url);
      }),
    );

    // The directory's operator signs the list of both issuers' current keys; the wallets pin its key.
    directoryKey = (await publishDirectoryFile(dataDir, caCertPem, [...issuers.values()].map((p) => ({ issuer: p.issuer, url: p.url })))).publicJwk;
    auth = await startInstance(
      'auth',
      await authEnv({
        dataDir,
        issuers: [...issuers.values()].map((p) => ({ id: p.issuer.id, baseUrl: p.url, cardPrefixes: p.issuer.cardPrefixes })),
        merchants: [seed],
        workerIntervalMs: 100,
        ...(await databaseUrl('kessai_issuers_auth')),
      }),
    );
    merchant = new MerchantClient({ maxNetworkRetries: 0, baseUrl: auth.url, apiKey: seed.apiKey, caCertPem });
    operator = new HttpClient({ caCertPem });
  }, 180_000);

  afterAll(async () => {
    for (const wallet of wallets.values()) await wallet.close();
    await merchant?.close();
    await operator?.close();
    await stopInstance(auth);
    for (const p of issuers.values()) await stopInstance(p.instance);
    for (const drop of drops) await drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  const walletOf = (issuer: typeof sakura) => {
    const wallet = wallets.get(issuer.id);
    if (!wallet) throw new Error(`no wallet enrolled for ${issuer.id}`);
    return wallet;
  };

  /** The issuer's authorizations as its operator API shows them (its own database, its own ledger). */
  const authorizationsAt = async (issuer: typeof sakura) =>
    (await operator.call('GET', `${issuers.get(issuer.id)!.url}/admin/v1/authorizations`, { headers: { authorization: `Bearer ${operatorToken}` }, schema: authorizations, unavailable: 'issuer_unavailable' })).items;

  /** Steps 402–404: a request addressed to the issuer's wallet, fetched and verified by it. */
  async function requestFor(issuer: typeof sakura, orderId: string, amountMinor = 1_200) {
    const created = await merchant.createPaymentRequest(
      { order_id: orderId, currency: 'JPY', amount_minor: String(amountMinor), line_items: [{ description: 'Gyokuro', quantity: 1, unit_price_minor: String(amountMinor) }], wallet_handle: walletOf(issuer).wallet.credential_id },
      orderId,
    );
    return { id: created.id, request: await walletOf(issuer).fetchRequest(created.id) };
  }

  /** A whole payment: approved with the card's PIN, then captured by the merchant. */
  async function pay(issuer: typeof sakura, orderId: string): Promise<string> {
    const { id, request } = await requestFor(issuer, orderId);
    const outcome = await walletOf(issuer).approve(request, payingCard(issuer).pin);
    expect(outcome.status, `${issuer.id}: approved`).toBe('approved');
    expect((await merchant.capture(id, {}, `${orderId}-capture`)).status, `${issuer.id}: captured`).toBe('captured');
    return id;
  }

  it('enrolls a card of each issuer and routes each to its own settlement server', async () => {
    for (const issuer of [sakura, fuji]) {
      const card = payingCard(issuer);
      const wallet = new WalletClient(await WalletClient.enroll({ authBaseUrl: auth!.url, caCertPem, directoryKey, holderName: card.holderName, cardNumber: card.cardNumber, expiry: card.expiry, pin: card.pin }), { caCertPem });
      wallets.set(issuer.id, wallet);
      expect(wallet.wallet.issuer.id).toBe(issuer.id);
      expect(wallet.wallet.issuer.name).toBe(issuer.name);
      expect(wallet.wallet.issuer.conversion_mode).toBe(issuer.conversionMode);
      // The PIN key comes from the signed directory: the key that issuer's own process publishes, not the other's.
      const published = (await operator.call('GET', `${issuers.get(issuer.id)!.url}/.well-known/jwks.json`, { schema: z.object({ keys: z.array(z.object({ kid: z.string(), use: z.string() }).loose()) }), unavailable: 'issuer_unavailable' })).keys;
      const fromDirectory = (await (await wallet.directory()).keys(issuer.id)).current('enc');
      expect(published.find((key) => key.use === 'enc')?.kid).toBe(fromDirectory.kid);
    }
  });

  it('refuses a card number in no configured range with issuer_unknown', async () => {
    const card = payingCard(sakura);
    expect(await codeOf(WalletClient.enroll({ authBaseUrl: auth!.url, caCertPem, directoryKey, holderName: card.holderName, cardNumber: cardInNoRange, expiry: card.expiry, pin: card.pin }))).toBe('issuer_unknown');
  });

  it("approves and captures a payment with each card, in that issuer's ledger only", async () => {
    const paid = { [sakura.id]: await pay(sakura, 'issuers-sakura-1'), [fuji.id]: await pay(fuji, 'issuers-fuji-1') };
    for (const issuer of [sakura, fuji]) {
      const other = issuer === sakura ? fuji : sakura;
      const rows = await authorizationsAt(issuer);
      const own = rows.filter((r) => r.request_id === paid[issuer.id]);
      expect(own, `${issuer.id} holds its own payment`).toHaveLength(1);
      expect(own[0]).toMatchObject({ status: 'captured', amount: '1200', captured_amount: '1200', hold_state: 'posted' });
      expect(rows.filter((r) => r.request_id === paid[other.id]), `${issuer.id} holds nothing of ${other.id}'s payment`).toHaveLength(0);
    }
  });

  it("fails a stopped issuer's payments with issuer_unavailable while the other's succeed, and pays again after its restart", async () => {
    const stopped = issuers.get(fuji.id)!;
    const pin = payingCard(fuji).pin;
    // Before the stop: one payment approved but not yet captured, one request the terminal is about to approve.
    const held = await requestFor(fuji, 'issuers-fuji-held');
    expect((await walletOf(fuji).approve(held.request, pin)).status).toBe('approved');
    const waiting = await requestFor(fuji, 'issuers-fuji-waiting');
    const approval = await walletOf(fuji).approvalBody(waiting.request, pin); // needs the issuer's PIN key, fetched while it is up

    expect(await stopInstance(stopped.instance), 'the settlement process closed cleanly on SIGTERM').toBe(0);

    // Step 405–406: the authentication server cannot reach the issuer; the request stays pending.
    const refused = await walletOf(fuji).sendApproval(waiting.id, approval).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(KessaiError);
    expect((refused as KessaiError).code).toBe('issuer_unavailable');
    // The authentication server answered (its problem's detail names its own call to the issuer), not the terminal's transport.
    expect((refused as KessaiError).message).toContain('/internal/v1/authorizations');
    expect((await merchant.getPaymentRequest(waiting.id)).status).toBe('pending');
    // Step 409: the capture relayed to the stopped issuer fails the same way, and the hold is still only approved.
    const captureRefused = await merchant.capture(held.id, {}, 'issuers-fuji-held-capture').then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(captureRefused).toBeInstanceOf(KessaiError);
    expect((captureRefused as KessaiError).code).toBe('issuer_unavailable');
    expect((captureRefused as KessaiError).message).toMatch(/\/internal\/v1\/authorizations\/.+\/capture/);
    expect((await merchant.getPaymentRequest(held.id)).status).toBe('approved');
    // A terminal approving afresh cannot even fetch the issuer's PIN key.
    expect(await codeOf(walletOf(fuji).approve(waiting.request, pin))).toBe('issuer_unavailable');

    // The other issuer is untouched.
    const sakuraPaid = await pay(sakura, 'issuers-sakura-during-outage');
    expect((await authorizationsAt(sakura)).find((r) => r.request_id === sakuraPaid)?.status).toBe('captured');

    // Restarted on the same port, database and keys, it pays again.
    stopped.instance = await startInstance('settlement', stopped.env);
    expect(stopped.instance.url).toBe(stopped.url);
    expect((await walletOf(fuji).approve(waiting.request, pin)).status).toBe('approved');
    expect((await merchant.capture(waiting.id, {}, 'issuers-fuji-waiting-capture')).status).toBe('captured');
    // The failed capture, retried with the same Idempotency-Key, goes through.
    expect((await merchant.capture(held.id, {}, 'issuers-fuji-held-capture')).status).toBe('captured');
    const fujiRows = await authorizationsAt(fuji);
    for (const id of [held.id, waiting.id]) expect(fujiRows.find((r) => r.request_id === id)).toMatchObject({ status: 'captured', captured_amount: '1200' });
    const sakuraRows = await authorizationsAt(sakura);
    expect(sakuraRows.some((r) => r.request_id === held.id || r.request_id === waiting.id), "sakura-bank's ledger holds none of fuji-bank's payments").toBe(false);
  });
});
