/**
 * The shop's JSON API without a payment: catalogue, carts and the input checks of checkout and
 * orders (strict schemas, limits, problem+json), and checkout's Idempotency-Key (step 402).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { limits, newId } from '@kessai/protocol';
import { catalogue, seedCatalogue } from '../src/catalogue.ts';
import { startTestShop, type TestShop } from './fakes.ts';

let shop: TestShop;
beforeAll(async () => {
  shop = await startTestShop();
});
afterAll(async () => {
  await shop?.stop();
});

async function call(method: 'GET' | 'POST', url: string, payload?: unknown) {
  const response = await shop.app.inject({ method, url, ...(payload === undefined ? {} : { payload: payload as object }) });
  return { status: response.statusCode, body: response.json(), type: String(response.headers['content-type']) };
}

async function newCart(): Promise<string> {
  const { status, body } = await call('POST', '/api/carts');
  expect(status).toBe(201);
  return body.id;
}

function expectProblem(result: { status: number; body: { code: string }; type: string }, status: number, code: string) {
  expect(result.status).toBe(status);
  expect(result.type).toContain('application/problem+json');
  expect(result.body.code).toBe(code);
}

describe('catalogue', () => {
  it('lists the seeded products with prices as decimal strings of minor units', async () => {
    const { status, body } = await call('GET', '/api/products');
    expect(status).toBe(200);
    expect(body.products).toHaveLength(catalogue.length);
    const sencha = body.products.find((p: { id: string }) => p.id === 'sencha-100g');
    expect(sencha).toEqual({ id: 'sencha-100g', name: 'Sencha, 100 g', description: expect.any(String), unit_price_minor: '1200', currency: 'JPY' });
  });

  it('seeds only once: a second start inserts nothing', async () => {
    expect(await seedCatalogue(shop.db)).toBe(0);
  });
});

describe('carts', () => {
  it('creates an empty open cart', async () => {
    const { body } = await call('GET', `/api/carts/${await newCart()}`);
    expect(body).toMatchObject({ status: 'open', currency: null, items: [], total_minor: '0' });
  });

  it('adds products, adds quantities of the same product, and totals exactly', async () => {
    const id = await newCart();
    await call('POST', `/api/carts/${id}/items`, { product_id: 'sencha-100g', quantity: 2 });
    await call('POST', `/api/carts/${id}/items`, { product_id: 'tenugui', quantity: 1 });
    const { status, body } = await call('POST', `/api/carts/${id}/items`, { product_id: 'sencha-100g', quantity: 1 });
    expect(status).toBe(200);
    expect(body).toMatchObject({ currency: 'JPY', total_minor: '4590' });
    expect(body.items).toEqual([
      { product_id: 'sencha-100g', name: 'Sencha, 100 g', quantity: 3, unit_price_minor: '1200', line_total_minor: '3600' },
      { product_id: 'tenugui', name: 'Tenugui', quantity: 1, unit_price_minor: '990', line_total_minor: '990' },
    ]);
  });

  it('answers an unknown product with a 404 problem', async () => {
    expectProblem(await call('POST', `/api/carts/${await newCart()}/items`, { product_id: 'no-such-thing', quantity: 1 }), 404, 'not_found');
  });

  it('answers an unknown cart with a 404 problem and a malformed cart id with a 400', async () => {
    expectProblem(await call('GET', `/api/carts/${newId('cart')}`), 404, 'not_found');
    expectProblem(await call('GET', '/api/carts/cart_1'), 400, 'validation_failed');
    expectProblem(await call('POST', `/api/carts/${newId('ord')}/items`, { product_id: 'tenugui', quantity: 1 }), 400, 'validation_failed');
  });

  it('refuses unknown fields and quantities that are not an integer from 1 to quantityMax', async () => {
    const url = `/api/carts/${await newCart()}/items`;
    for (const body of [
      { product_id: 'tenugui', quantity: 1, price: '1' },
      { product_id: 'tenugui', quantity: 0 },
      { product_id: 'tenugui', quantity: -1 },
      { product_id: 'tenugui', quantity: 1.5 },
      { product_id: 'tenugui', quantity: '1' },
      { product_id: 'tenugui', quantity: limits.quantityMax + 1 },
      { product_id: 'TENUGUI; drop table', quantity: 1 },
      { product_id: 'tenugui' },
    ]) {
      expectProblem(await call('POST', url, body), 400, 'validation_failed');
    }
    expectProblem(await call('POST', '/api/carts', { currency: 'JPY' }), 400, 'validation_failed');
  });

  it('refuses a quantity that would take one product past quantityMax', async () => {
    const id = await newCart();
    expect((await call('POST', `/api/carts/${id}/items`, { product_id: 'tenugui', quantity: limits.quantityMax })).status).toBe(200);
    const result = await call('POST', `/api/carts/${id}/items`, { product_id: 'tenugui', quantity: 1 });
    expectProblem(result, 400, 'validation_failed');
    expect((await call('GET', `/api/carts/${id}`)).body.items[0].quantity).toBe(limits.quantityMax);
  });

  it('refuses more than lineItemsMax different products in one cart', async () => {
    const extra = Array.from({ length: limits.lineItemsMax }, (_, i) => ({ id: `bulk-${i}`, name: `Bulk ${i}`, description: 'test', unitPriceMinor: 1n, currency: 'JPY' as const }));
    await seedCatalogue(shop.db, extra);
    const id = await newCart();
    for (const product of extra) expect((await call('POST', `/api/carts/${id}/items`, { product_id: product.id, quantity: 1 })).status).toBe(200);
    expectProblem(await call('POST', `/api/carts/${id}/items`, { product_id: 'tenugui', quantity: 1 }), 400, 'validation_failed');
  });

  it('refuses a product in another currency than the cart', async () => {
    await seedCatalogue(shop.db, [{ id: 'imported-tea', name: 'Imported tea', description: 'test', unitPriceMinor: 1_500n, currency: 'USD' }]);
    const id = await newCart();
    await call('POST', `/api/carts/${id}/items`, { product_id: 'tenugui', quantity: 1 });
    expectProblem(await call('POST', `/api/carts/${id}/items`, { product_id: 'imported-tea', quantity: 1 }), 400, 'validation_failed');
  });

  it('keeps JSON bodies under bodyBytesMax', async () => {
    const response = await shop.app.inject({ method: 'POST', url: `/api/carts/${await newCart()}/items`, headers: { 'content-type': 'application/json' }, payload: `{"product_id":"tenugui","quantity":1,"x":"${'a'.repeat(limits.bodyBytesMax)}"}` });
    expect(response.statusCode).toBe(413);
    expect(response.json().code).toBe('body_too_large');
  });
});

describe('checkout', () => {
  it('refuses an empty cart, an unknown cart, unknown fields and a malformed wallet handle', async () => {
    const id = await newCart();
    expectProblem(await call('POST', `/api/carts/${id}/checkout`, {}), 400, 'validation_failed');
    expectProblem(await call('POST', `/api/carts/${newId('cart')}/checkout`, {}), 404, 'not_found');
    await call('POST', `/api/carts/${id}/items`, { product_id: 'chawan', quantity: 1 });
    expectProblem(await call('POST', `/api/carts/${id}/checkout`, { wallet_handle: 'alice@example.com' }), 400, 'validation_failed');
    expectProblem(await call('POST', `/api/carts/${id}/checkout`, { coupon: 'FREE' }), 400, 'validation_failed');
    expect(shop.peers.callsTo('POST', '/v1/payment-requests')).toHaveLength(0);
  });

  it('creates one payment request with the order id, line items, total and an Idempotency-Key from the order', async () => {
    const id = await newCart();
    await call('POST', `/api/carts/${id}/items`, { product_id: 'matcha-30g', quantity: 2 });
    await call('POST', `/api/carts/${id}/items`, { product_id: 'chasen', quantity: 1 });
    const wallet = newId('cred');
    const before = shop.peers.callsTo('POST', '/v1/payment-requests').length;
    const { status, body } = await call('POST', `/api/carts/${id}/checkout`, { wallet_handle: wallet });
    expect(status).toBe(200);
    expect(body).toEqual({ order_id: expect.stringMatching(/^ord_/), payment_request_id: expect.stringMatching(/^pr_/), payment_link: expect.any(String), status: 'awaiting_payment' });

    const [sent] = shop.peers.callsTo('POST', '/v1/payment-requests').slice(before);
    expect(sent?.authorization).toBe('Bearer sk_test_shop');
    expect(sent?.idempotencyKey).toBe(`${body.order_id}:payment-request:${wallet}`);
    expect(sent?.body).toEqual({
      order_id: body.order_id,
      currency: 'JPY',
      amount_minor: '8900',
      line_items: [
        { description: 'Matcha, 30 g', quantity: 2, unit_price_minor: '2800' },
        { description: 'Chasen', quantity: 1, unit_price_minor: '3300' },
      ],
      wallet_handle: wallet,
    });
  });

  it('answers a repeated checkout with the same order and payment request, and freezes the cart', async () => {
    const id = await newCart();
    await call('POST', `/api/carts/${id}/items`, { product_id: 'furoshiki', quantity: 1 });
    const first = await call('POST', `/api/carts/${id}/checkout`);
    const second = await call('POST', `/api/carts/${id}/checkout`, {});
    expect(second.body).toEqual(first.body);
    expect(shop.peers.requests.size).toBe(new Set([...shop.peers.requests.values()].map((r) => r.order_id)).size);
    expectProblem(await call('POST', `/api/carts/${id}/items`, { product_id: 'tenugui', quantity: 1 }), 400, 'validation_failed');
    expect((await call('GET', `/api/carts/${id}`)).body.status).toBe('checked_out');
  });

  it('keeps the order when the authentication server is down, and a retry reuses the Idempotency-Key', async () => {
    const id = await newCart();
    await call('POST', `/api/carts/${id}/items`, { product_id: 'chawan', quantity: 1 });
    shop.peers.failMerchantApi = { status: 503, code: 'internal_error' };
    try {
      expectProblem(await call('POST', `/api/carts/${id}/checkout`), 502, 'issuer_unavailable');
    } finally {
      shop.peers.failMerchantApi = undefined;
    }
    const retry = await call('POST', `/api/carts/${id}/checkout`);
    expect(retry.status).toBe(200);
    const keys = shop.peers.callsTo('POST', '/v1/payment-requests').filter((c) => (c.body as { order_id: string }).order_id === retry.body.order_id).map((c) => c.idempotencyKey);
    // The SDK's own retries (1 + maxNetworkRetries = 3 tries of the failing checkout), then the payer's retry: one key throughout.
    expect(keys).toEqual(Array.from({ length: 4 }, () => `${retry.body.order_id}:payment-request:link`));
  });

  it('passes an unknown wallet back to the payer, but hides the shop’s own misconfiguration', async () => {
    for (const [code, status] of [['credential_not_found', 404], ['unauthenticated', 502]] as const) {
      const id = await newCart();
      await call('POST', `/api/carts/${id}/items`, { product_id: 'chawan', quantity: 1 });
      shop.peers.failMerchantApi = { status: code === 'unauthenticated' ? 401 : 404, code };
      try {
        expectProblem(await call('POST', `/api/carts/${id}/checkout`, { wallet_handle: newId('cred') }), status, code === 'unauthenticated' ? 'issuer_unavailable' : code);
      } finally {
        shop.peers.failMerchantApi = undefined;
      }
    }
  });
});

describe('orders', () => {
  it('shows an order with its lines and amounts as strings', async () => {
    const id = await newCart();
    await call('POST', `/api/carts/${id}/items`, { product_id: 'chawan', quantity: 2 });
    const { body: checkout } = await call('POST', `/api/carts/${id}/checkout`);
    const { status, body } = await call('GET', `/api/orders/${checkout.order_id}`);
    expect(status).toBe(200);
    expect(body).toMatchObject({
      id: checkout.order_id,
      status: 'awaiting_payment',
      currency: 'JPY',
      amount_minor: '13000',
      captured_minor: '0',
      payment_request_id: checkout.payment_request_id,
      authorization_id: null,
      lines: [{ product_id: 'chawan', description: 'Chawan', quantity: 2, unit_price_minor: '6500' }],
    });
  });

  it('answers an unknown order with 404 and a malformed order id with 400', async () => {
    expectProblem(await call('GET', `/api/orders/${newId('ord')}`), 404, 'not_found');
    expectProblem(await call('GET', '/api/orders/ord_x'), 400, 'validation_failed');
  });

  it('stores no personal data of the payer: the wallet handle is passed through, not kept', async () => {
    const id = await newCart();
    await call('POST', `/api/carts/${id}/items`, { product_id: 'chawan', quantity: 1 });
    const wallet = newId('cred');
    await call('POST', `/api/carts/${id}/checkout`, { wallet_handle: wallet });
    const tables = await shop.db.query<{ table_name: string }>(`select table_name from information_schema.tables where table_schema = 'public'`);
    for (const { table_name } of tables) {
      const rows = await shop.db.query<Record<string, unknown>>(`select * from "${table_name}"`);
      expect(JSON.stringify(rows, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))).not.toContain(wallet);
    }
  });
});
