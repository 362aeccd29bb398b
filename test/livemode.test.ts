/**
 * Test and live mode, as Stripe's (docs/protocol.md "Test and live mode"): a merchant API key is
 * sk_test_… or sk_live_…; every payment request, refund and webhook event says which mode it is
 * of; a key of one mode cannot see or act on the other mode's objects (404, as if absent). The
 * demo merchant of `kessai start` has a test key, and its demo cards are test cards. The bank
 * learns the mode from the payer's device — the signed view's livemode, signed back as the
 * approval's lm — and declines a card of the other mode with livemode_mismatch.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'undici';
import { MerchantClient, WalletClient } from '@kessai/sdk';
import { readJwsPayload } from '@kessai/protocol';
import { createMerchant } from '../apps/auth-server/src/merchants.ts';
import { merchantsAtBroker } from './support/cli.ts';
import { codeOf } from './support/errors.ts';
import { approvedRequest, cardAccount, idempotencyKey, payerForFile } from './support/payer.ts';
import { callJson, waitFor } from './support/system.ts';

const card = '4000056655665556';
const kessai = payerForFile(card);
const auth = () => kessai.system.auth;

const { cli: kessaiCli, atBroker } = merchantsAtBroker(() => kessai.system.dataDir, () => auth().url);
const clientOf = (apiKey: string) => new MerchantClient({ maxNetworkRetries: 0, baseUrl: auth().url, apiKey, caCertPem: kessai.system.pki.caCertPem });
const newRequest = (client: MerchantClient) =>
  client.createPaymentRequest({ order_id: `o-${idempotencyKey()}`, currency: 'JPY', amount_minor: '900', line_items: [{ description: 'Gyokuro', quantity: 1, unit_price_minor: '900' }] }, idempotencyKey());

/** A live card (no `test` column: the import's default), imported at Sakura by its operator. */
const liveCard = { cardNumber: '4000000000000085', holderName: 'RIKU HONDA', expiry: '06/35', pin: '1618' };
let liveWalletOnce: Promise<WalletClient> | undefined;

/** A wallet enrolled with the live card, imported and enrolled on first use (closed with the system's other clients at the end). */
function liveWallet(): Promise<WalletClient> {
  liveWalletOnce ??= (async () => {
    const { system } = kessai;
    const sakura = system.settlements.find((s) => s.issuer.id === 'sakura-bank')!;
    const row = { card_number: liveCard.cardNumber, holder_name: liveCard.holderName, expiry: liveCard.expiry, pin: liveCard.pin, balance: '100000', currency: 'JPY', kind: 'debit' };
    const imported = await callJson(system, 'POST', `${sakura.url}/admin/v1/accounts/import`, { rows: [row] }, system.operatorHeaders(sakura.url));
    expect(imported.body.created).toBe(1);
    const stored = await WalletClient.enroll({ authBaseUrl: system.auth.url, caCertPem: system.pki.caCertPem, directoryKey: system.directoryKey.publicJwk, ...liveCard });
    return new WalletClient(stored, { caCertPem: system.pki.caCertPem });
  })();
  return liveWalletOnce;
}
afterAll(async () => (await liveWalletOnce)?.close());

/** A one-line request of `client`'s mode answered by `wallet` with `pin`: the terminal's outcome and the issuer's signed decision. */
async function paid(client: MerchantClient, wallet: WalletClient, pin: string) {
  const created = await newRequest(client);
  const request = await wallet.fetchRequest(created.id);
  const outcome = await wallet.approve(request, pin);
  const decision = outcome.authorization ? (readJwsPayload(outcome.authorization, 'internal_error') as { decision: string; code: string | null; lm?: boolean }) : undefined;
  return { id: created.id, shown: request.view.livemode, outcome, decision };
}

/** A live request of `live` approved with the live card (a test card is declined livemode_mismatch there): its id. */
async function approvedLive(live: MerchantClient): Promise<string> {
  const { id, outcome } = await paid(live, await liveWallet(), liveCard.pin);
  expect(outcome.status).toBe('approved');
  return id;
}

/** A merchant made by `kessai merchants create [--live]`, onboarded at Sakura: its id and key. */
async function createdMerchant(name: string, live: boolean): Promise<{ id: string; apiKey: string }> {
  const printed = await atBroker('merchants', 'create', '--name', name, ...(live ? ['--live'] : []));
  const id = /^created: (mer_[0-9a-z]{26}) /m.exec(printed)![1]!;
  const apiKey = /^api key \(shown once, stored only as a hash\): (sk_\S+)$/m.exec(printed)![1]!;
  const sakura = kessai.system.settlements.find((s) => s.issuer.id === 'sakura-bank')!;
  await kessaiCli(['merchants', 'onboard', '--issuer', 'sakura-bank', '--id', id, '--name', name, '--url', sakura.url]);
  return { id, apiKey };
}

describe('test and live mode', () => {
  it('kessai start’s demo merchant has a test key, and its payment requests, refunds and events are test objects', async () => {
    expect(kessai.system.merchant.apiKey).toMatch(/^sk_test_/);
    const id = await approvedRequest(kessai.merchant, kessai.wallet, card, 700n);
    expect((await kessai.merchant.getPaymentRequest(id)).livemode).toBe(false);
    await kessai.merchant.capture(id, {}, idempotencyKey());
    const refund = await kessai.merchant.refund(id, 100n, idempotencyKey());
    expect(refund.livemode).toBe(false);
    const events = await callJson(kessai.system, 'GET', `${auth().url}/v1/webhook-events`, undefined, { authorization: `Bearer ${kessai.system.merchant.apiKey}` });
    const ofRequest = events.body.items.filter((event: { payment_request_id: string }) => event.payment_request_id === id);
    expect(ofRequest.length).toBeGreaterThan(0);
    expect(ofRequest.every((event: { livemode: boolean }) => event.livemode === false)).toBe(true);
  });

  it('kessai merchants create makes an sk_test_ key by default and an sk_live_ key with --live; show names each key’s mode', async () => {
    const test = await createdMerchant('Genmaicha Stand', false);
    const live = await createdMerchant('Kabusecha Shop', true);
    expect(test.apiKey).toMatch(/^sk_test_[A-Za-z0-9_-]{32}$/);
    expect(live.apiKey).toMatch(/^sk_live_[A-Za-z0-9_-]{32}$/);
    expect(await atBroker('merchants', 'show', live.id)).toContain(`keys: current live …${live.apiKey.slice(-4)}`);
    expect(await atBroker('merchants', 'show', test.id)).toContain(`keys: current test …${test.apiKey.slice(-4)}`);
    const created = await callJson(kessai.system, 'POST', `${auth().url}/admin/v1/merchants`, { name: 'Bancha Corner', livemode: true }, kessai.system.operatorHeaders(auth().url));
    expect([created.status, created.body.merchant.api_keys[0].livemode]).toEqual([200, true]);
    expect(created.body.api_key).toMatch(/^sk_live_/);
  });

  it('a key sees only objects of its own mode: the other mode’s payment request, refunds and events are absent (404)', async () => {
    const { id, apiKey: testKey } = await createdMerchant('Sobacha Place', false);
    // Rolling to a live key with an overlap leaves the merchant a key of each mode at once.
    const rolled = await atBroker('merchants', 'rotate-key', id, '--live', '--overlap', '600');
    const liveKey = /^new api key .*: (sk_live_\S+)$/m.exec(rolled)![1]!;
    expect(await atBroker('merchants', 'show', id)).toMatch(/keys: current live …\S{4}, previous test …/);
    const [test, live] = [clientOf(testKey), clientOf(liveKey)];
    try {
      const testRequest = await newRequest(test);
      expect(testRequest.livemode).toBe(false);
      // One idempotency key used with both keys: two requests, never the other mode's answer replayed.
      const shared = idempotencyKey();
      const body = { order_id: 'o-shared', currency: 'JPY' as const, amount_minor: '300', line_items: [{ description: 'Mugicha', quantity: 1, unit_price_minor: '300' }] };
      const [inTest, inLive] = [await test.createPaymentRequest(body, shared), await live.createPaymentRequest(body, shared)];
      expect([inTest.livemode, inLive.livemode, inTest.id === inLive.id]).toEqual([false, true, false]);
      const { id: liveId, outcome } = await paid(live, await liveWallet(), liveCard.pin);
      expect(outcome.status).toBe('approved');
      expect((await live.getPaymentRequest(liveId)).livemode).toBe(true);
      expect(await codeOf(test.getPaymentRequest(liveId))).toBe('payment_request_not_found');
      expect(await codeOf(live.getPaymentRequest(testRequest.id))).toBe('payment_request_not_found');
      expect(await codeOf(test.capture(liveId, {}, idempotencyKey()))).toBe('payment_request_not_found');
      expect(await codeOf(test.void(liveId, idempotencyKey()))).toBe('payment_request_not_found');
      expect((await live.capture(liveId, {}, idempotencyKey())).livemode).toBe(true);
      expect(await codeOf(test.refund(liveId, 100n, idempotencyKey()))).toBe('payment_request_not_found');
      expect((await live.refund(liveId, 100n, idempotencyKey())).livemode).toBe(true);

      const eventsWith = async (key: string) => (await callJson(kessai.system, 'GET', `${auth().url}/v1/webhook-events`, undefined, { authorization: `Bearer ${key}` })).body.items as { id: string; payment_request_id: string; livemode: boolean }[];
      const liveEvents = (await eventsWith(liveKey)).filter((event) => event.payment_request_id === liveId);
      expect(liveEvents.length).toBeGreaterThan(0);
      expect(liveEvents.every((event) => event.livemode)).toBe(true);
      expect((await eventsWith(testKey)).some((event) => event.payment_request_id === liveId)).toBe(false);
      const resend = await callJson(kessai.system, 'POST', `${auth().url}/v1/webhook-events/${liveEvents[0]!.id}/resend`, {}, { authorization: `Bearer ${testKey}`, 'idempotency-key': idempotencyKey() });
      expect([resend.status, resend.body.code]).toEqual([404, 'webhook_event_not_found']);

      // The lists (GET /v1/payment-requests, /v1/refunds, /v1/events) hold only the key's mode, and
      // the other mode's id is no cursor for them.
      const listWith = async (key: string, path: string) =>
        (await callJson(kessai.system, 'GET', `${auth().url}${path}`, undefined, { authorization: `Bearer ${key}` })).body as {
          items: Array<{ id: string; livemode: boolean; payment_request_id?: string; data?: { id: string } }>;
          code?: string;
        };
      for (const [key, mode] of [[testKey, false], [liveKey, true]] as const) {
        const requests = (await listWith(key, '/v1/payment-requests')).items;
        expect(requests.length).toBeGreaterThan(0);
        expect(requests.every((item) => item.livemode === mode)).toBe(true);
        expect(requests.some((item) => item.id === (mode ? testRequest.id : liveId))).toBe(false);
        const refunds = (await listWith(key, '/v1/refunds')).items;
        expect(refunds.every((item) => item.livemode === mode)).toBe(true);
        expect(refunds.length).toBe(mode ? 1 : 0);
        const events = (await listWith(key, '/v1/events')).items;
        expect(events.every((item) => item.livemode === mode)).toBe(true);
        expect(events.some((item) => item.data?.id === liveId)).toBe(mode);
      }
      expect((await listWith(testKey, `/v1/payment-requests?starting_after=${liveId}`)).code).toBe('starting_after_not_found');
    } finally {
      await test.close();
      await live.close();
    }
  });

  it('one Idempotency-Key used for a refund in each mode makes two refunds, neither refused for the other mode’s', async () => {
    const { id, apiKey: testKey } = await createdMerchant('Hojicha Bar', false);
    const rolled = await atBroker('merchants', 'rotate-key', id, '--live', '--overlap', '600');
    const liveKey = /^new api key .*: (sk_live_\S+)$/m.exec(rolled)![1]!;
    const [test, live] = [clientOf(testKey), clientOf(liveKey)];
    try {
      const [testId, liveId] = [await approvedRequest(test, kessai.wallet, card, 500n), await approvedLive(live)];
      await test.capture(testId, {}, idempotencyKey());
      await live.capture(liveId, {}, idempotencyKey());
      const shared = idempotencyKey();
      const inTest = await test.refund(testId, 100n, shared);
      const inLive = await live.refund(liveId, 200n, shared);
      expect([inTest.payment_request_id, inTest.livemode, inTest.amount_minor]).toEqual([testId, false, '100']);
      expect([inLive.payment_request_id, inLive.livemode, inLive.amount_minor]).toEqual([liveId, true, '200']);
      // A retry in each mode still answers that mode's refund.
      expect((await live.refund(liveId, 200n, shared)).id).toBe(inLive.id);
      expect((await test.refund(testId, 100n, shared)).id).toBe(inTest.id);
    } finally {
      await test.close();
      await live.close();
    }
  });

  it('the event stream of a key carries only its own mode’s events', async () => {
    const { id, apiKey: testKey } = await createdMerchant('Matcha Kiosk', false);
    const rolled = await atBroker('merchants', 'rotate-key', id, '--live', '--overlap', '600');
    const liveKey = /^new api key .*: (sk_live_\S+)$/m.exec(rolled)![1]!;
    const agent = new Agent({ connect: { ca: kessai.system.pki.caCertPem } });
    const controller = new AbortController();
    const texts = { test: '', live: '' };
    const open = async (key: string, mode: 'test' | 'live') => {
      const stream = await request(new URL('/v1/events/stream', auth().url), { dispatcher: agent, headers: { authorization: `Bearer ${key}` }, signal: controller.signal });
      expect(stream.statusCode).toBe(200);
      // Wrapped: an async function returning the reader's promise would wait for the stream to end.
      return {
        done: (async () => {
          for await (const chunk of stream.body) texts[mode] += (chunk as Buffer).toString();
        })().catch(() => undefined),
      };
    };
    const readers = [(await open(testKey, 'test')).done, (await open(liveKey, 'live')).done];
    const [test, live] = [clientOf(testKey), clientOf(liveKey)];
    try {
      await new Promise((resolve) => setTimeout(resolve, 300));
      const liveId = await approvedLive(live);
      const testId = await approvedRequest(test, kessai.wallet, card, 401n);
      await waitFor('both events on their streams', async () => (texts.live.includes(liveId) && texts.test.includes(testId)) || undefined);
      expect(texts.test).not.toContain(liveId);
      expect(texts.live).not.toContain(testId);
    } finally {
      controller.abort();
      await Promise.all(readers);
      await agent.close();
      await test.close();
      await live.close();
    }
  });

  it('a key made before modes existed (sk_… with neither prefix) is a test key', async () => {
    const legacyKey = `sk_${randomBytes(24).toString('base64url')}`;
    const { merchant } = await createMerchant(auth().db, { name: 'Kukicha Cellar', apiKey: legacyKey });
    expect(merchant.api_keys[0]!.livemode).toBe(false);
    const sakura = kessai.system.settlements.find((s) => s.issuer.id === 'sakura-bank')!;
    await kessaiCli(['merchants', 'onboard', '--issuer', 'sakura-bank', '--id', merchant.merchant_id, '--name', 'Kukicha Cellar', '--url', sakura.url]);
    const legacy = clientOf(legacyKey);
    try {
      expect((await newRequest(legacy)).livemode).toBe(false);
    } finally {
      await legacy.close();
    }
  });
});

describe('the bank learns the mode from the payer’s device (view livemode → approval lm → the card’s own flag)', () => {
  it('a test request paid with a demo test card is approved, and every signature says test (the control)', async () => {
    const { shown, outcome, decision } = await paid(kessai.merchant, kessai.wallet, '2846');
    expect([shown, outcome.status, decision?.decision, decision?.lm]).toEqual([false, 'approved', 'approved', false]);
  });

  it('a live request paid with a live card is approved, the authorization saying lm true (the control)', async () => {
    const { key } = await liveMerchant();
    const live = clientOf(key);
    try {
      const { shown, outcome, decision } = await paid(live, await liveWallet(), liveCard.pin);
      expect([shown, outcome.status, decision?.lm]).toEqual([true, 'approved', true]);
    } finally {
      await live.close();
    }
  });

  it('declines a live request paid with a test card with livemode_mismatch, signed, and holds nothing', async () => {
    const { key } = await liveMerchant();
    const live = clientOf(key);
    try {
      const before = await cardAccount(kessai.system, card);
      const { id, outcome, decision } = await paid(live, kessai.wallet, '2846');
      expect([outcome.status, outcome.decline_code, decision?.decision, decision?.code, decision?.lm]).toEqual(['declined', 'livemode_mismatch', 'declined', 'livemode_mismatch', true]);
      expect(await live.getPaymentRequest(id)).toMatchObject({ status: 'declined', decline_code: 'livemode_mismatch', livemode: true });
      expect((await cardAccount(kessai.system, card)).debitsPending).toBe(before.debitsPending);
    } finally {
      await live.close();
    }
  });

  it('declines a test request paid with a live card with livemode_mismatch', async () => {
    const { outcome, decision } = await paid(kessai.merchant, await liveWallet(), liveCard.pin);
    expect([outcome.status, decision?.code, decision?.lm]).toEqual(['declined', 'livemode_mismatch', false]);
  });
});

let liveMerchantOnce: Promise<{ id: string; key: string }> | undefined;
/** One live merchant for the mode tests, made on first use. */
function liveMerchant(): Promise<{ id: string; key: string }> {
  liveMerchantOnce ??= createdMerchant('Hojicha Roastery', true).then(({ id, apiKey }) => ({ id, key: apiKey }));
  return liveMerchantOnce;
}
