/** The catalogue, as the storefront lists it. Prices are decimal strings of minor units. */
import { z } from 'zod';
import { amountString, currencyCode, limits } from '@kessai/protocol';
import type { KessaiApp } from '@kessai/service';
import type { ShopContext } from '../app.ts';
import { listProducts } from '../catalogue.ts';

export const productView = z.strictObject({
  id: z.string(),
  name: z.string(),
  description: z.string(),
  unit_price_minor: amountString,
  currency: currencyCode,
});
export const productList = z.strictObject({ products: z.array(productView).max(limits.listPageMax) });

const listDocs = { summary: 'List the catalogue', operationId: 'listProducts' };

export function registerProductRoutes(app: KessaiApp, { db }: ShopContext): void {
  app.get('/api/products', { schema: { ...listDocs, response: { 200: productList } } }, async () => ({
    products: await listProducts(db),
  }));
}
