/**
 * Credit cards: the demo card 5425 2334 3010 9903 has nothing paid in and a credit line of
 * JPY 50,000 (docs/ledger.md, "Credit lines"). It pays up to the line and no further; a capture
 * and a refund move what it may still spend; the issuer can raise the line, and can never cut it
 * below what the payer has already spent or holds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MerchantClient, WalletClient } from '@kessai/sdk';
import { changeCreditLimit, panLookup, creditLimitOf, ledgerTotals } from '@kessai/settlement-server';
import { newId } from '@kessai/protocol';
import { demoCard, type TestSystem } from './support/system.ts';
import { approvedRequest, cardAccount, idempotencyKey, startWithPayer } from './support/payer.ts';

const cardNumber = '5425233430109903';
let system: TestSystem;
let merchant: MerchantClient;
let wallet: WalletClient;
let stop = async () => {};
beforeAll(async () => {
  ({ system, merchant, wallet, stop } = await startWithPayer(cardNumber));
});
afterAll(() => stop());

const fuji = () => system.settlements.find((s) => s.issuer.id === 'fuji-bank')!;
const available = async () => {
  const account = await cardAccount(system, cardNumber);
  return account.creditsPosted - account.debitsPosted - account.debitsPending;
};
async function lineOf(): Promise<{ accountId: string; lineAccountId: string }> {
  const [row] = await fuji().config.db.query<{ account_id: string; credit_line_account_id: string | null }>('select account_id, credit_line_account_id from cards where pan_lookup = $1', [panLookup(fuji().config.cardKeys, cardNumber)]);
  expect(row?.credit_line_account_id).toMatch(/^acct_/);
  return { accountId: row!.account_id, lineAccountId: row!.credit_line_account_id! };
}
async function request(amount: bigint) {
  return merchant.createPaymentRequest({ order_id: `o-${idempotencyKey()}`, currency: 'JPY', amount_minor: amount.toString(), line_items: [{ description: 'Tetsubin', quantity: 1, unit_price_minor: amount.toString() }] }, idempotencyKey());
}

describe('a credit card with a credit line', () => {
  it('is granted its limit by its own credit-line account, and pays up to it but not beyond (insufficient_funds)', async () => {
    const { lineAccountId } = await lineOf();
    expect(await creditLimitOf(fuji().config.db, lineAccountId)).toBe(50_000n);
    expect(await available()).toBe(50_000n);

    const paid = await approvedRequest(merchant, wallet, cardNumber, 30_000n);
    expect(await available()).toBe(20_000n);
    const beyond = await request(25_000n);
    const outcome = await wallet.approve(await wallet.fetchRequest(beyond.id), demoCard(cardNumber).pin);
    expect(outcome).toMatchObject({ status: 'declined', decline_code: 'insufficient_funds' });
    expect(await available()).toBe(20_000n);

    // Capture and a refund: spending what was held, then getting part of it back.
    await merchant.capture(paid, {}, idempotencyKey());
    await merchant.refund(paid, 10_000n, idempotencyKey());
    expect(await available()).toBe(30_000n);
    for (const row of await ledgerTotals(fuji().config.db)) expect([row.debits_pending, row.debits_posted]).toEqual([row.credits_pending, row.credits_posted]);
  });

  it('cannot have its line cut below what the payer has spent or holds, can have it raised, and each change is idempotent by id', async () => {
    const { accountId, lineAccountId } = await lineOf();
    const db = fuji().config.db;
    const limit = await creditLimitOf(db, lineAccountId);
    const spent = limit - (await available());
    expect(spent).toBeGreaterThan(0n);

    const cut = await db.transaction((tx) => changeCreditLimit(tx, newId('xfer'), { cardholderAccountId: accountId, lineAccountId }, spent - 1n, new Date()));
    expect(cut).toBe('exceeds_credits');
    expect(await creditLimitOf(db, lineAccountId)).toBe(limit);

    const raiseId = newId('xfer');
    expect(await db.transaction((tx) => changeCreditLimit(tx, raiseId, { cardholderAccountId: accountId, lineAccountId }, 80_000n, new Date()))).toBe('ok');
    expect(await db.transaction((tx) => changeCreditLimit(tx, raiseId, { cardholderAccountId: accountId, lineAccountId }, 80_000n, new Date()))).toBe('unchanged');
    expect(await creditLimitOf(db, lineAccountId)).toBe(80_000n);
    expect(await available()).toBe(80_000n - spent);

    // The raised line pays what the old one could not.
    const big = await approvedRequest(merchant, wallet, cardNumber, 45_000n);
    expect(big).toMatch(/^pr_/);
    expect(await available()).toBe(80_000n - spent - 45_000n);

    // A cut to exactly what is spent and held is allowed: nothing is left to spend.
    const used = 80_000n - (await available());
    expect(await db.transaction((tx) => changeCreditLimit(tx, newId('xfer'), { cardholderAccountId: accountId, lineAccountId }, used, new Date()))).toBe('ok');
    expect(await available()).toBe(0n);
  });
});
