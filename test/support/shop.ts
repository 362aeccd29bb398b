/** Shopping through the reference shop's JSON API, as a storefront would (step 401). */
import { expect } from 'vitest';
import type { KessaiSystem } from '@kessai/cli/system';
import { callJson, waitFor } from './system.ts';

export async function checkout(system: KessaiSystem, lines: Array<{ index: number; quantity: number }>, walletHandle?: string) {
  const products = await callJson(system, 'GET', `${system.shop.url}/api/products`);
  expect(products.status).toBe(200);
  const cart = await callJson(system, 'POST', `${system.shop.url}/api/carts`, {});
  expect(cart.status).toBe(201);
  for (const line of lines) {
    const product = products.body.products[line.index];
    const added = await callJson(system, 'POST', `${system.shop.url}/api/carts/${cart.body.id}/items`, { product_id: product.id, quantity: line.quantity });
    expect(added.status).toBe(200);
  }
  const done = await callJson(system, 'POST', `${system.shop.url}/api/carts/${cart.body.id}/checkout`, walletHandle ? { wallet_handle: walletHandle } : {});
  expect(done.status).toBe(200);
  return done.body as { order_id: string; payment_request_id: string; payment_link: string; status: string };
}

export async function orderOf(system: KessaiSystem, orderId: string) {
  const order = await callJson(system, 'GET', `${system.shop.url}/api/orders/${orderId}`);
  expect(order.status).toBe(200);
  return order.body as { status: string; amount_minor: string; captured_minor: string; decline_code: string | null; authorization_id: string | null };
}

export function waitForOrder(system: KessaiSystem, orderId: string, status: string) {
  return waitFor(`order ${orderId} to be ${status}`, async () => {
    const order = await orderOf(system, orderId);
    return order.status === status ? order : undefined;
  });
}
