/**
 * Cart routes: parse and answer. The rules (one currency, lineItemsMax, quantityMax, no change
 * after checkout) and the SQL are in ../carts.ts.
 */
import { z } from 'zod';
import { idPattern, limits } from '@kessai/protocol';
import type { KessaiApp } from '@kessai/service';
import type { ShopContext } from '../app.ts';
import { addCartItem, cartView, createCart, loadCart } from '../carts.ts';
import { productIdPattern } from '../catalogue.ts';

export const cartParams = z.strictObject({ id: z.string().regex(idPattern('cart'), 'cart_ id') });
export const addItemRequest = z.strictObject({
  product_id: z.string().regex(productIdPattern, 'product id'),
  quantity: z.number().int().min(1).max(limits.quantityMax),
});

const docs = {
  create: { summary: 'Open a cart', operationId: 'createCart' },
  get: { summary: 'Retrieve a cart', operationId: 'getCart' },
  addItem: { summary: 'Add a product to a cart', operationId: 'addCartItem' },
};

export function registerCartRoutes(app: KessaiApp, { db }: ShopContext): void {
  const created = { 201: cartView };
  app.post(
    '/api/carts',
    { schema: { ...docs.create, body: z.strictObject({}).nullish(), response: created } },
    async (_request, reply) => reply.code(201).send(await createCart(db)),
  );

  app.get(
    '/api/carts/:id',
    { schema: { ...docs.get, params: cartParams, response: { 200: cartView } } },
    async (request) => loadCart(db, request.params.id),
  );

  const addItem = { ...docs.addItem, params: cartParams, body: addItemRequest, response: { 200: cartView } };
  app.post('/api/carts/:id/items', { schema: addItem }, async (request) =>
    addCartItem(db, request.params.id, request.body.product_id, request.body.quantity),
  );
}
