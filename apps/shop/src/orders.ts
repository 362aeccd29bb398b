/**
 * The shop's orders as stored: step 401 turns a cart into an order with its lines priced as they
 * are now (once: a second checkout of the cart finds the order), step 402's payment request is
 * attached to it, and refunds are read back for the order page. Routes call these; SQL stays here.
 */
import { KessaiError, limits, newId } from '@kessai/protocol';
import type { Db } from '@kessai/service';
import { cartLines } from './carts.ts';
import { findOrder, type OrderRow } from './fulfilment.ts';

export interface OrderLineRow {
  product_id: string;
  description: string;
  quantity: number;
  unit_price_minor: bigint;
}

export async function orderLines(db: Pick<Db, 'query'>, orderId: string): Promise<OrderLineRow[]> {
  const rows = await db.query<OrderLineRow>(
    'select product_id, description, quantity, unit_price_minor from order_lines where order_id = $1 order by position',
    [orderId],
  );
  return rows.map((row) => ({
    ...row,
    quantity: Number(row.quantity),
    unit_price_minor: BigInt(row.unit_price_minor),
  }));
}

/** Step 401: the payer checks out; the cart becomes an order (once: a second call finds it). */
export async function placeOrder(db: Db, cartId: string): Promise<OrderRow> {
  const orderId = await db.transaction(async (tx) => {
    const [cart] = await tx.query<{ id: string }>('select id from carts where id = $1 for update', [cartId]);
    if (!cart) throw new KessaiError('not_found', 'no such cart');
    const [existing] = await tx.query<{ id: string }>('select id from orders where cart_id = $1', [cartId]);
    if (existing) return existing.id;

    const lines = await cartLines(tx, cartId);
    const [first] = lines;
    if (!first) throw new KessaiError('validation_failed', 'the cart is empty');
    const amount = lines.reduce((sum, line) => sum + line.unit_price_minor * BigInt(line.quantity), 0n);
    if (amount > limits.amountMinorMax)
      throw new KessaiError('validation_failed', 'the cart total exceeds amountMinorMax');

    const id = newId('ord');
    await tx.query(
      `insert into orders (id, cart_id, currency, amount_minor, status) values ($1, $2, $3, $4, 'awaiting_payment')`,
      [id, cartId, first.currency, amount],
    );
    for (const [position, line] of lines.entries()) {
      await tx.query(
        `insert into order_lines (order_id, position, product_id, description, quantity, unit_price_minor)
          values ($1, $2, $3, $4, $5, $6)`,
        [id, position, line.product_id, line.name, line.quantity, line.unit_price_minor],
      );
    }
    await tx.query(`update carts set status = 'checked_out' where id = $1`, [cartId]);
    return id;
  });
  const order = await findOrder(db, orderId);
  if (!order) throw new Error(`order ${orderId} vanished`);
  return order;
}

/** Step 402's answer: the payment request is the order's (first one wins; a retry changes nothing). */
export async function attachPaymentRequest(
  db: Pick<Db, 'query'>,
  orderId: string,
  request: { id: string; payment_link: string; merchant_id: string },
): Promise<void> {
  await db.query(
    `update orders set payment_request_id = $2, payment_link = $3, merchant_id = $4, updated_at = now()
      where id = $1 and payment_request_id is null`,
    [orderId, request.id, request.payment_link, request.merchant_id],
  );
}

export interface OrderRefundRow {
  refund_id: string;
  amount_minor: bigint;
  refunded_at: Date;
}

/** What was refunded of an order, oldest first. */
export async function orderRefunds(db: Pick<Db, 'query'>, orderId: string): Promise<OrderRefundRow[]> {
  const rows = await db.query<OrderRefundRow>(
    `select refund_id, amount_minor, refunded_at from order_refunds
      where order_id = $1 order by refunded_at, refund_id`,
    [orderId],
  );
  return rows.map((r) => ({ ...r, amount_minor: BigInt(r.amount_minor), refunded_at: new Date(r.refunded_at) }));
}
