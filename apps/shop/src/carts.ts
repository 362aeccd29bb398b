/**
 * Carts: anonymous (no account, no personal data), one currency each, at most lineItemsMax
 * products of at most quantityMax each. A cart that has been checked out no longer changes.
 * The rules and the SQL live here; routes/carts.ts parses and answers.
 */
import { z } from 'zod';
import { KessaiError, amountString, currencyCode, limits, newId, type Currency } from '@kessai/protocol';
import type { Db } from '@kessai/service';

export const cartView = z.strictObject({
  id: z.string(),
  status: z.enum(['open', 'checked_out']),
  currency: currencyCode.nullable(),
  items: z.array(
    z.strictObject({
      product_id: z.string(),
      name: z.string(),
      quantity: z.number().int(),
      unit_price_minor: amountString,
      line_total_minor: amountString,
    }),
  ),
  total_minor: amountString,
});
export type CartView = z.infer<typeof cartView>;

interface CartRow {
  id: string;
  status: 'open' | 'checked_out';
  currency: Currency | null;
}

export interface CartLine {
  product_id: string;
  name: string;
  quantity: number;
  unit_price_minor: bigint;
  currency: string;
}

export async function cartLines(db: Pick<Db, 'query'>, cartId: string): Promise<CartLine[]> {
  const rows = await db.query<CartLine>(
    `select i.product_id, p.name, i.quantity, p.unit_price_minor, p.currency
     from cart_items i join products p on p.id = i.product_id
     where i.cart_id = $1 order by i.added_at, i.product_id`,
    [cartId],
  );
  return rows.map((row) => ({
    ...row,
    quantity: Number(row.quantity),
    unit_price_minor: BigInt(row.unit_price_minor),
  }));
}

export async function loadCart(db: Pick<Db, 'query'>, id: string): Promise<CartView> {
  const [cart] = await db.query<CartRow>('select id, status, currency from carts where id = $1', [id]);
  if (!cart) throw new KessaiError('not_found', 'no such cart');
  const lines = await cartLines(db, id);
  const items = lines.map((line) => ({
    product_id: line.product_id,
    name: line.name,
    quantity: line.quantity,
    unit_price_minor: line.unit_price_minor.toString(),
    line_total_minor: (line.unit_price_minor * BigInt(line.quantity)).toString(),
  }));
  const total = lines.reduce((sum, line) => sum + line.unit_price_minor * BigInt(line.quantity), 0n);
  return { id: cart.id, status: cart.status, currency: cart.currency, items, total_minor: total.toString() };
}

/** A new, empty cart. */
export async function createCart(db: Pick<Db, 'query'>): Promise<CartView> {
  const id = newId('cart');
  await db.query('insert into carts (id) values ($1)', [id]);
  return loadCart(db, id);
}

/** Adds `quantity` of a product to an open cart, within the cart's currency and the limits. */
export async function addCartItem(db: Db, id: string, productId: string, quantity: number): Promise<CartView> {
  await db.transaction(async (tx) => {
    const [cart] = await tx.query<CartRow>('select id, status, currency from carts where id = $1 for update', [id]);
    if (!cart) throw new KessaiError('not_found', 'no such cart');
    if (cart.status !== 'open') throw new KessaiError('validation_failed', 'the cart has been checked out');
    const [product] = await tx.query<{ currency: string }>('select currency from products where id = $1', [productId]);
    if (!product) throw new KessaiError('not_found', 'no such product');
    if (cart.currency !== null && cart.currency !== product.currency) {
      throw new KessaiError('validation_failed', `the cart is in ${cart.currency}`);
    }
    const [existing] = await tx.query<{ quantity: number }>(
      'select quantity from cart_items where cart_id = $1 and product_id = $2',
      [id, productId],
    );
    if (existing) {
      const total = Number(existing.quantity) + quantity;
      if (total > limits.quantityMax)
        throw new KessaiError('validation_failed', `at most ${limits.quantityMax} of one product`);
      await tx.query('update cart_items set quantity = $3 where cart_id = $1 and product_id = $2', [
        id,
        productId,
        total,
      ]);
    } else {
      const [{ count } = { count: 0 }] = await tx.query<{ count: number }>(
        'select count(*)::int as count from cart_items where cart_id = $1',
        [id],
      );
      if (Number(count) >= limits.lineItemsMax) {
        throw new KessaiError('validation_failed', `at most ${limits.lineItemsMax} products in one cart`);
      }
      await tx.query('insert into cart_items (cart_id, product_id, quantity) values ($1, $2, $3)', [
        id,
        productId,
        quantity,
      ]);
    }
    if (cart.currency === null) await tx.query('update carts set currency = $2 where id = $1', [id, product.currency]);
  });
  return loadCart(db, id);
}
