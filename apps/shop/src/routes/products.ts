/** The catalogue, as the storefront lists it. Prices are decimal strings of minor units. */
import { z } from 'zod';
import { amountString, currencyCode, limits, type Currency } from '@kessai/protocol';
import type { KessaiApp } from '@kessai/service';
import type { ShopContext } from '../app.ts';

export const productView = z.strictObject({
  id: z.string(),
  name: z.string(),
  description: z.string(),
  unit_price_minor: amountString,
  currency: currencyCode,
});
export const productList = z.strictObject({ products: z.array(productView).max(limits.listPageMax) });

interface ProductRow {
  id: string;
  name: string;
  description: string;
  unit_price_minor: bigint;
  currency: Currency;
}

const listProducts = { summary: 'List the catalogue', operationId: 'listProducts' };

export function registerProductRoutes(app: KessaiApp, { db }: ShopContext): void {
  app.get('/api/products', { schema: { ...listProducts, response: { 200: productList } } }, async () => {
    const rows = await db.query<ProductRow>(
      'select id, name, description, unit_price_minor, currency from products order by id limit $1',
      [limits.listPageMax],
    );
    return { products: rows.map((row) => ({ ...row, unit_price_minor: BigInt(row.unit_price_minor).toString() })) };
  });
}
