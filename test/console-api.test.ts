/**
 * The operator consoles' read API on the settlement server and the authentication server: only
 * with the operator token, every list bounded by limits.listPageMax, the ledger and the payment
 * shown as they are after a real purchase (approve, capture, refund) — and no card number, holder
 * name, expiry or PIN in any answer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MerchantClient, WalletClient } from '@kessai/sdk';
import { limits } from '@kessai/protocol';
import { callJson, type TestSystem } from './support/system.ts';
import { approvedRequest, cardAccount, idempotencyKey, startWithPayer } from './support/payer.ts';
import { personalDataNeedles } from './support/retention.ts';

let system: TestSystem;
let merchant: MerchantClient;
let wallet: WalletClient;
const cardNumber = '4242424242424242';
let stop = async () => {};
let requestId = '';
beforeAll(async () => {
  ({ system, merchant, wallet, stop } = await startWithPayer(cardNumber));
  requestId = await approvedRequest(merchant, wallet, cardNumber, 4200n);
  await merchant.capture(requestId, { amountMinor: 4000n }, idempotencyKey());
  await merchant.refund(requestId, 1000n, idempotencyKey());
  // A second payment left held, so a hold shows too.
  await approvedRequest(merchant, wallet, cardNumber, 1300n);
});
afterAll(() => stop());

const sakura = () => system.settlements.find((s) => s.issuer.id === 'sakura-bank')!;
const settlementPaths = ['/admin/v1/accounts', '/admin/v1/authorizations', '/admin/v1/transfers', '/admin/v1/refunds', '/admin/v1/volume'];
const authPaths = ['/admin/v1/payment-requests', '/admin/v1/credentials', '/admin/v1/webhook-deliveries'];
const get = (base: string, path: string, headers: Record<string, string> = system.operatorHeaders(base)) => callJson(system, 'GET', `${base}${path}`, undefined, headers);

/** Every answer the tests read, kept for the personal-data search at the end. */
const answers: string[] = [];
async function operatorGet(base: string, path: string) {
  const response = await get(base, path);
  answers.push(JSON.stringify(response.body));
  expect(response.status, `${path}: ${JSON.stringify(response.body)}`).toBe(200);
  return response.body;
}

describe('console API: access', () => {
  it('refuses every console endpoint without the operator token, or with a wrong one, with unauthenticated', async () => {
    for (const [base, paths] of [[sakura().url, settlementPaths], [system.auth.url, authPaths]] as const) {
      for (const path of paths) {
        const missing = await get(base, path, {});
        expect(missing.status, path).toBe(401);
        expect(missing.body.code).toBe('unauthenticated');
        const wrong = await get(base, path, { authorization: `Bearer op_${'x'.repeat(43)}` });
        expect(wrong.status, path).toBe(401);
        expect(wrong.body.code).toBe('unauthenticated');
      }
    }
  });

  it('bounds every list by limits.listPageMax and says when older items were left out', async () => {
    for (const [base, paths] of [[sakura().url, settlementPaths.filter((p) => p !== '/admin/v1/volume')], [system.auth.url, authPaths]] as const) {
      for (const path of paths) {
        const tooMany = await get(base, `${path}?limit=${limits.listPageMax + 1}`);
        expect(tooMany.status, path).toBe(400);
        expect(tooMany.body.code).toBe('validation_failed');
        const full = await operatorGet(base, path);
        expect(full.limit).toBe(limits.listPageMax);
        expect(full.items.length).toBeLessThanOrEqual(limits.listPageMax);
        const one = await operatorGet(base, `${path}?limit=1`);
        expect(one.items).toHaveLength(Math.min(1, full.items.length));
        expect(one.has_more).toBe(full.items.length > 1);
      }
    }
    const volume = await operatorGet(sakura().url, '/admin/v1/volume?bucket=day');
    expect(volume.buckets.length).toBeLessThanOrEqual(limits.listPageMax);
    expect((await get(sakura().url, '/admin/v1/volume?bucket=week')).body.code).toBe('validation_failed');
  });
});

describe('console API: the settlement server after a purchase', () => {
  it('lists the payer’s account with its pending and posted balances and its available balance', async () => {
    const account = await cardAccount(system, cardNumber);
    const { items } = await operatorGet(sakura().url, '/admin/v1/accounts');
    const shown = items.find((item: { id: string }) => item.id === account.id);
    expect(shown).toEqual({
      id: account.id,
      kind: 'cardholder',
      currency: 'JPY',
      merchant_id: null,
      debits_pending: '1300',
      debits_posted: '4000',
      credits_pending: '0',
      credits_posted: (1_000_000n + 1000n).toString(),
      available: (1_000_000n + 1000n - 4000n - 1300n).toString(),
      created_at: expect.any(String),
    });
    const merchantAccount = items.find((item: { kind: string }) => item.kind === 'merchant');
    expect(merchantAccount).toMatchObject({ merchant_id: system.merchant.merchantId, credits_posted: '4000', debits_posted: '1000', credits_pending: '1300' });
  });

  it('lists the authorizations newest first, with what was captured and refunded and the hold’s state', async () => {
    const { items } = await operatorGet(sakura().url, '/admin/v1/authorizations');
    expect(items[0]).toMatchObject({ amount: '1300', status: 'held', hold_state: 'pending', captured_amount: '0' });
    expect(items.find((item: { request_id: string }) => item.request_id === requestId)).toMatchObject({
      merchant_id: system.merchant.merchantId,
      currency: 'JPY',
      amount: '4200',
      decision: 'approved',
      status: 'captured',
      captured_amount: '4000',
      refunded_amount: '1000',
      hold_state: 'posted',
    });
  });

  it('lists transfers, filtered by kind, and refunds', async () => {
    const captures = await operatorGet(sakura().url, '/admin/v1/transfers?kind=post_pending');
    expect(captures.items).toHaveLength(1);
    expect(captures.items[0]).toMatchObject({ kind: 'post_pending', amount: '4000', currency: 'JPY' });
    const all = await operatorGet(sakura().url, '/admin/v1/transfers');
    expect(new Set(all.items.map((t: { kind: string }) => t.kind))).toEqual(new Set(['single', 'pending', 'post_pending']));
    const refunds = await operatorGet(sakura().url, '/admin/v1/refunds');
    expect(refunds.items).toEqual([expect.objectContaining({ request_id: requestId, amount: '1000', currency: 'JPY' })]);
  });

  it('sums captured volume per hour and per day in whole minor units', async () => {
    for (const bucket of ['hour', 'day'] as const) {
      const volume = await operatorGet(sakura().url, `/admin/v1/volume?bucket=${bucket}`);
      expect(volume.bucket).toBe(bucket);
      expect(volume.buckets).toEqual([{ bucket_start: expect.any(String), currency: 'JPY', captured: '4000', captures: 1 }]);
      const start = new Date(volume.buckets[0].bucket_start);
      expect(bucket === 'hour' ? start.getUTCMinutes() : start.getUTCHours()).toBe(0);
    }
  });
});

describe('console API: the authentication server after a purchase', () => {
  it('lists payment requests with their states, filtered by status', async () => {
    const all = await operatorGet(system.auth.url, '/admin/v1/payment-requests');
    expect(all.items.find((item: { id: string }) => item.id === requestId)).toMatchObject({ status: 'captured', amount_minor: '4200', captured_minor: '4000', refunded_minor: '1000', line_items: 1, issuer_id: 'sakura-bank' });
    const approved = await operatorGet(system.auth.url, '/admin/v1/payment-requests?status=approved');
    expect(approved.items.map((item: { status: string }) => item.status)).toEqual(['approved']);
    expect((await get(system.auth.url, '/admin/v1/payment-requests?status=lost')).body.code).toBe('validation_failed');
  });

  it('lists credential records (id, issuer, status, times) and webhook deliveries', async () => {
    const credentials = await operatorGet(system.auth.url, '/admin/v1/credentials');
    expect(credentials.items).toEqual([{ id: wallet.wallet.credential_id, issuer_id: 'sakura-bank', status: 'active', created_at: expect.any(String), last_used_at: expect.any(String) }]);
    const deliveries = await operatorGet(system.auth.url, '/admin/v1/webhook-deliveries');
    expect(deliveries.items.length).toBeGreaterThan(0);
    expect(deliveries.items.find((item: { event_type: string }) => item.event_type === 'payment_request.captured')).toMatchObject({ payment_request_id: requestId, merchant_id: system.merchant.merchantId });
  });

  it('puts no card number, holder name, expiry or PIN in any console answer', async () => {
    for (const [base, paths] of [[sakura().url, settlementPaths], [system.auth.url, authPaths]] as const) {
      for (const path of paths) await operatorGet(base, path);
    }
    const text = answers.join('\n');
    expect(text.length).toBeGreaterThan(1000);
    const found = personalDataNeedles().filter((needle) => needle.pattern.test(text)).map((needle) => needle.label);
    expect(found).toEqual([]);
  });
});
