/**
 * Step 409, holds expire on their own: a settlement server whose holds time out after 2 s and
 * whose expiry pass runs every 200 ms releases an uncaptured hold without anyone asking, the
 * payer can spend the money again at once, the issuer's authorization shows `expired`, and a late
 * capture through the merchant API is refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import type { MerchantClient, WalletClient } from '@kessai/sdk';
import { demoCard, waitFor, type TestSystem } from './support/system.ts';
import { codeOf } from './support/errors.ts';
import { cardAccount, startWithPayer } from './support/payer.ts';

let system: TestSystem;
let merchant: MerchantClient;
let wallet: WalletClient;
const cardNumber = '4000056655665556';
const key = () => randomBytes(12).toString('hex');

let stop = async () => {};
beforeAll(async () => {
  ({ system, merchant, wallet, stop } = await startWithPayer(cardNumber, { holdTimeoutSeconds: 2, expiryIntervalMs: 200 }));
});
afterAll(() => stop());

const sakura = () => system.settlements.find((s) => s.issuer.id === 'sakura-bank')!;

describe('authorization holds expire', () => {
  it('releases an uncaptured hold after its timeout on its own, marks the authorization expired, and refuses a late capture', async () => {
    const before = await cardAccount(system, cardNumber);
    const created = await merchant.createPaymentRequest({ order_id: `o-${key()}`, currency: 'JPY', amount_minor: '2500', line_items: [{ description: 'Furoshiki', quantity: 1, unit_price_minor: '2500' }] }, key());
    expect((await wallet.approve(await wallet.fetchRequest(created.id), demoCard(cardNumber).pin)).status).toBe('approved');
    expect((await cardAccount(system, cardNumber)).debitsPending - before.debitsPending).toBe(2500n);

    const status = await waitFor('the hold to expire', async () => {
      const [row] = await sakura().config.db.query<{ status: string }>("select status from authorizations where request_id = $1 and status = 'expired'", [created.id]);
      return row?.status;
    }, 10_000);
    expect(status).toBe('expired');
    const after = await cardAccount(system, cardNumber);
    expect(after.debitsPending).toBe(before.debitsPending);
    expect(after.creditsPosted - after.debitsPosted - after.debitsPending).toBe(before.creditsPosted - before.debitsPosted - before.debitsPending);
    expect(await codeOf(merchant.capture(created.id, {}, key()))).toBe('authorization_not_capturable');
  });
});
