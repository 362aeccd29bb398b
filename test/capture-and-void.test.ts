/**
 * Step 409 through the merchant API: full and partial capture, void, and their refusals, with the
 * ledger checked after each — holds placed, posted or released exactly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MerchantClient, WalletClient } from '@kessai/sdk';
import { requestHash } from '../apps/auth-server/src/idempotency.ts';
import type { TestSystem } from './support/system.ts';
import { codeOf } from './support/errors.ts';
import { approvedRequest, cardAccount, idempotencyKey, startWithPayer } from './support/payer.ts';

let system: TestSystem;
let merchant: MerchantClient;
let wallet: WalletClient;
const cardNumber = '4000056655665556';

let stop = async () => {};
beforeAll(async () => {
  ({ system, merchant, wallet, stop } = await startWithPayer(cardNumber));
});
afterAll(() => stop());

describe('capture and void', () => {
  it('places a hold on approval that reduces what the payer can spend', async () => {
    const before = await cardAccount(system, cardNumber);
    await approvedRequest(merchant, wallet, cardNumber, 4000n);
    const after = await cardAccount(system, cardNumber);
    expect(after.debitsPending - before.debitsPending).toBe(4000n);
    expect(after.debitsPosted).toBe(before.debitsPosted);
  });

  it('captures part of an authorization, posting that part and releasing the rest', async () => {
    const id = await approvedRequest(merchant, wallet, cardNumber, 5000n);
    const before = await cardAccount(system, cardNumber);
    const captured = await merchant.capture(id, { amountMinor: 1800n }, idempotencyKey());
    expect(captured).toMatchObject({ status: 'captured', captured_minor: '1800' });
    const after = await cardAccount(system, cardNumber);
    expect(after.debitsPosted - before.debitsPosted).toBe(1800n);
    expect(before.debitsPending - after.debitsPending).toBe(5000n);
  });

  it('voids an authorization, releasing the whole hold', async () => {
    const id = await approvedRequest(merchant, wallet, cardNumber, 3000n);
    const before = await cardAccount(system, cardNumber);
    expect(await merchant.void(id, idempotencyKey())).toMatchObject({ status: 'voided', captured_minor: '0' });
    const after = await cardAccount(system, cardNumber);
    expect(before.debitsPending - after.debitsPending).toBe(3000n);
    expect(after.debitsPosted).toBe(before.debitsPosted);
  });

  it('answers a retried capture with the same Idempotency-Key with the stored answer and posts once', async () => {
    const id = await approvedRequest(merchant, wallet, cardNumber, 2000n);
    const before = await cardAccount(system, cardNumber);
    const retryKey = idempotencyKey();
    const first = await merchant.capture(id, {}, retryKey);
    const second = await merchant.capture(id, {}, retryKey);
    expect(second).toEqual(first);
    expect((await cardAccount(system, cardNumber)).debitsPosted - before.debitsPosted).toBe(2000n);
  });

  it('lets a retry take over an Idempotency-Key left in progress by a request that died', async () => {
    const id = await approvedRequest(merchant, wallet, cardNumber, 1500n);
    const retryKey = idempotencyKey();
    const path = `/v1/payment-requests/${id}/capture`;
    const hash = await requestHash('POST', path, {});
    await system.auth.db.query("insert into idempotency_keys (merchant_id, key, request_hash, state, created_at) values ($1, $2, $3, 'in_progress', now() - interval '2 minutes')", [system.merchant.merchantId, retryKey, hash]);
    expect(await merchant.capture(id, {}, retryKey)).toMatchObject({ status: 'captured', captured_minor: '1500' });
  });

  it('refuses to capture more than was authorized with capture_exceeds_authorization', async () => {
    const id = await approvedRequest(merchant, wallet, cardNumber, 1000n);
    expect(await codeOf(merchant.capture(id, { amountMinor: 1001n }, idempotencyKey()))).toBe('capture_exceeds_authorization');
  });

  it('refuses to capture a request that was not approved with authorization_not_capturable', async () => {
    const created = await merchant.createPaymentRequest({ order_id: `o-${idempotencyKey()}`, currency: 'JPY', amount_minor: '100', line_items: [{ description: 'Tenugui', quantity: 1, unit_price_minor: '100' }] }, idempotencyKey());
    expect(await codeOf(merchant.capture(created.id, {}, idempotencyKey()))).toBe('authorization_not_capturable');
    const id = await approvedRequest(merchant, wallet, cardNumber, 1000n);
    await merchant.void(id, idempotencyKey());
    expect(await codeOf(merchant.capture(id, {}, idempotencyKey()))).toBe('authorization_not_capturable');
  });

  it('keeps debits equal to credits in the issuer’s ledger', async () => {
    for (const settlement of system.settlements) {
      const [sums] = await settlement.config.db.query<{ dp: bigint; cp: bigint; dpo: bigint; cpo: bigint }>('select sum(debits_pending) as dp, sum(credits_pending) as cp, sum(debits_posted) as dpo, sum(credits_posted) as cpo from ledger_accounts');
      expect(BigInt(sums!.dp)).toBe(BigInt(sums!.cp));
      expect(BigInt(sums!.dpo)).toBe(BigInt(sums!.cpo));
    }
  });
});
