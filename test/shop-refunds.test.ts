/**
 * Step 409 at the shop, and a currency with three decimals end to end. The shop records each
 * refund it learns from a signed `payment_request.refunded` event once (by refund id), and its
 * order API shows `refunded_minor`, the refunds, and `partially_refunded` / `refunded`. Then a
 * payer whose account is in Kuwaiti dinar (KWD, exponent 3) buys a KWD product, the shop captures,
 * the merchant refunds part; and a second KWD payment is captured partly and refunded: every
 * amount exact in minor units (KWD 12.345 = 12345) at the shop, the broker and the issuer's ledger.
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { formatAmount, newId, signWebhook, type WebhookEvent } from '@kessai/protocol';
import type { WalletClient } from '@kessai/sdk';
import { ledgerTotals } from '@kessai/settlement-server';
import { callJson, demoCard, waitFor } from './support/system.ts';
import { cardAccount, idempotencyKey, merchantForFile } from './support/payer.ts';
import { checkout, waitForOrder } from './support/shop.ts';

const jpyCard = '4242424242424242';
const kwdCard = '4000004140000005';
const kessai = merchantForFile();

const sakura = () => kessai.system.settlements.find((s) => s.issuer.id === 'sakura-bank')!;

interface ShopOrder {
  status: string;
  currency: string;
  amount_minor: string;
  captured_minor: string;
  refunded_minor: string;
  refunds: Array<{ id: string; amount_minor: string; refunded_at: string }>;
}

async function shopOrder(orderId: string): Promise<ShopOrder> {
  const answer = await callJson(kessai.system, 'GET', `${kessai.system.shop.url}/api/orders/${orderId}`);
  expect(answer.status).toBe(200);
  return answer.body as ShopOrder;
}

function waitForRefunded(orderId: string, status: string, refundedMinor: string): Promise<ShopOrder> {
  return waitFor(`order ${orderId} to be ${status} with ${refundedMinor} refunded`, async () => {
    const order = await shopOrder(orderId);
    return order.status === status && order.refunded_minor === refundedMinor ? order : undefined;
  });
}

/** Checks out `lines` at the shop, approves on the terminal, and waits for the shop's capture. */
async function paidAtShop(wallet: WalletClient, cardNumber: string, lines: Array<{ index: number; quantity: number }>) {
  const order = await checkout(kessai.system, lines, wallet.wallet.credential_id);
  const outcome = await wallet.approve(await wallet.fetchRequest(order.payment_request_id), demoCard(cardNumber).pin);
  expect(outcome.status).toBe('approved');
  await waitForOrder(kessai.system, order.order_id, 'captured');
  return order;
}

describe('the shop tracks refunds', () => {
  it('records each refund once, shows refunded_minor and turns partially_refunded, then refunded', async () => {
    const wallet = await kessai.payer(jpyCard);
    const order = await paidAtShop(wallet, jpyCard, [{ index: 0, quantity: 1 }]); // chasen, JPY 3,300
    expect(await shopOrder(order.order_id)).toMatchObject({ status: 'captured', captured_minor: '3300', refunded_minor: '0', refunds: [] });

    const first = await kessai.merchant.refund(order.payment_request_id, 1000n, idempotencyKey());
    const partly = await waitForRefunded(order.order_id, 'partially_refunded', '1000');
    expect(partly.refunds).toEqual([{ id: first.id, amount_minor: '1000', refunded_at: first.created_at }]);

    // A second event about the same refund (a new event id, properly signed) records nothing twice.
    const [outboxRow] = await kessai.system.auth.db.query<{ body: string }>("select body from webhook_outbox where event_type = 'payment_request.refunded' and body like $1", [`%${first.id}%`]);
    const again: WebhookEvent = { ...(JSON.parse(outboxRow!.body) as WebhookEvent), id: newId('evt') };
    const body = JSON.stringify(again);
    const signature = await signWebhook(kessai.system.merchant.webhookSecret, body, Math.floor(Date.now() / 1000));
    const delivered = await callJson(kessai.system, 'POST', `${kessai.system.shop.url}/webhooks/kessai`, body, { 'kessai-signature': signature });
    expect(delivered.status).toBe(200);
    expect(await shopOrder(order.order_id)).toMatchObject({ status: 'partially_refunded', refunded_minor: '1000', refunds: [{ id: first.id }] });

    const second = await kessai.merchant.refund(order.payment_request_id, 2300n, idempotencyKey());
    const whole = await waitForRefunded(order.order_id, 'refunded', '3300');
    expect(whole.refunds.map((r) => [r.id, r.amount_minor])).toEqual(expect.arrayContaining([[first.id, '1000'], [second.id, '2300']]));
    expect(whole.refunds).toHaveLength(2);
    expect(whole.captured_minor).toBe('3300');
  });
});

describe('a three-decimal currency (KWD) end to end', () => {
  it('pays a KWD product at the shop, captures and refunds part of it, exact to the fils', async () => {
    expect(demoCard(kwdCard).currency).toBe('KWD');
    const wallet = await kessai.payer(kwdCard);
    const before = await cardAccount(kessai.system, kwdCard);
    expect(before.currency).toBe('KWD');
    expect(before.creditsPosted).toBe(1_000_000n); // KWD 1,000.000

    const products = await callJson(kessai.system, 'GET', `${kessai.system.shop.url}/api/products`);
    const index = (products.body.products as Array<{ id: string }>).findIndex((p) => p.id === 'uji-gyokuro-kwd');
    expect(products.body.products[index]).toMatchObject({ currency: 'KWD', unit_price_minor: '12345' });
    expect(formatAmount(12_345n, 'KWD')).toBe('KWD 12.345');

    const order = await checkout(kessai.system, [{ index, quantity: 2 }], wallet.wallet.credential_id);
    const request = await wallet.fetchRequest(order.payment_request_id);
    expect([request.view.currency, request.view.amount_minor]).toEqual(['KWD', '24690']);
    expect((await wallet.approve(request, demoCard(kwdCard).pin)).status).toBe('approved');
    const captured = await waitForOrder(kessai.system, order.order_id, 'captured');
    expect([captured.amount_minor, captured.captured_minor]).toEqual(['24690', '24690']);
    const afterCapture = await cardAccount(kessai.system, kwdCard);
    expect([afterCapture.debitsPosted - before.debitsPosted, afterCapture.debitsPending]).toEqual([24_690n, 0n]);

    const refund = await kessai.merchant.refund(order.payment_request_id, 12_345n, idempotencyKey());
    expect(refund).toMatchObject({ currency: 'KWD', amount_minor: '12345', refunded_minor: '12345', captured_minor: '24690' });
    expect(await waitForRefunded(order.order_id, 'partially_refunded', '12345')).toMatchObject({ currency: 'KWD', refunds: [{ id: refund.id, amount_minor: '12345' }] });
    expect((await cardAccount(kessai.system, kwdCard)).creditsPosted - before.creditsPosted).toBe(12_345n);
  });

  it('captures a KWD authorization partly (the rest is released) and refunds one fils', async () => {
    const wallet = await kessai.payer(kwdCard);
    const before = await cardAccount(kessai.system, kwdCard);
    const created = await kessai.merchant.createPaymentRequest({ order_id: `o-${randomBytes(6).toString('hex')}`, currency: 'KWD', amount_minor: '5000', line_items: [{ description: 'Tea tasting', quantity: 1, unit_price_minor: '5000' }] }, idempotencyKey());
    expect((await wallet.approve(await wallet.fetchRequest(created.id), demoCard(kwdCard).pin)).status).toBe('approved');
    expect((await cardAccount(kessai.system, kwdCard)).debitsPending - before.debitsPending).toBe(5_000n);

    const captured = await kessai.merchant.capture(created.id, { amountMinor: 4_321n }, idempotencyKey());
    expect([captured.status, captured.currency, captured.captured_minor]).toEqual(['captured', 'KWD', '4321']);
    const afterCapture = await cardAccount(kessai.system, kwdCard);
    expect([afterCapture.debitsPosted - before.debitsPosted, afterCapture.debitsPending - before.debitsPending]).toEqual([4_321n, 0n]);

    const refund = await kessai.merchant.refund(created.id, 1n, idempotencyKey());
    expect(refund).toMatchObject({ currency: 'KWD', amount_minor: '1', refunded_minor: '1', captured_minor: '4321' });
    const after = await cardAccount(kessai.system, kwdCard);
    expect(after.creditsPosted - afterCapture.creditsPosted).toBe(1n);
    expect(after.creditsPosted - after.debitsPosted - after.debitsPending).toBe(before.creditsPosted - before.debitsPosted - before.debitsPending - 4_320n);

    const [issuerRow] = await sakura().config.db.query<{ currency: string; amount: bigint; captured_amount: bigint; refunded_amount: bigint }>('select currency, amount, captured_amount, refunded_amount from authorizations where request_id = $1', [created.id]);
    expect([issuerRow!.currency, BigInt(issuerRow!.amount), BigInt(issuerRow!.captured_amount), BigInt(issuerRow!.refunded_amount)]).toEqual(['KWD', 5_000n, 4_321n, 1n]);
    const totals = await ledgerTotals(sakura().config.db);
    expect(totals.map((row) => row.currency)).toContain('KWD');
    for (const row of totals) expect([row.debits_pending, row.debits_posted]).toEqual([row.credits_pending, row.credits_posted]);
  });
});
