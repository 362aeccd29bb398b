/**
 * An order's state as the storefront shows it, with what was refunded of it. While the shop still
 * waits for the payment (or for its capture) it asks the authentication server first: the polling
 * fallback for a webhook that was lost or is late, through the same fulfilment code. Refunds are
 * learnt from `payment_request.refunded` events only (the payment request view has no refunds).
 */
import { z } from 'zod';
import { KessaiError, amountString, currencyCode, idPattern } from '@kessai/protocol';
import type { KessaiApp } from '@kessai/service';
import type { ShopContext } from '../app.ts';
import { findOrder, orderStatuses } from '../fulfilment.ts';
import { orderLines, orderRefunds } from '../orders.ts';

export const orderParams = z.strictObject({ id: z.string().regex(idPattern('ord'), 'ord_ id') });

export const orderView = z.strictObject({
  id: z.string(),
  status: z.enum(orderStatuses),
  currency: currencyCode,
  amount_minor: amountString,
  captured_minor: amountString,
  /** All refunds so far; each refund is listed under `refunds`. */
  refunded_minor: amountString,
  refunds: z.array(z.strictObject({ id: z.string(), amount_minor: amountString, refunded_at: z.string() })),
  payment_request_id: z.string().nullable(),
  payment_link: z.string().nullable(),
  authorization_id: z.string().nullable(),
  decline_code: z.string().nullable(),
  lines: z.array(
    z.strictObject({
      product_id: z.string(),
      description: z.string(),
      quantity: z.number().int(),
      unit_price_minor: amountString,
    }),
  ),
  created_at: z.string(),
});
export type OrderView = z.infer<typeof orderView>;

const getOrder = {
  summary: 'Retrieve an order and its payment state',
  operationId: 'getOrder',
  params: orderParams,
  response: { 200: orderView },
};

export function registerOrderRoutes(app: KessaiApp, { db, fulfilment }: ShopContext): void {
  app.get('/api/orders/:id', { schema: getOrder }, async (request) => {
    const stored = await findOrder(db, request.params.id);
    if (!stored) throw new KessaiError('not_found', 'no such order');
    const order = await fulfilment.refresh(stored);
    const lines = await orderLines(db, order.id);
    const refunds = await orderRefunds(db, order.id);
    return {
      id: order.id,
      status: order.status,
      currency: order.currency,
      amount_minor: order.amount_minor.toString(),
      captured_minor: order.captured_minor.toString(),
      refunded_minor: order.refunded_minor.toString(),
      refunds: refunds.map((r) => ({
        id: r.refund_id,
        amount_minor: r.amount_minor.toString(),
        refunded_at: r.refunded_at.toISOString(),
      })),
      payment_request_id: order.payment_request_id,
      payment_link: order.payment_link,
      authorization_id: order.authorization_id,
      decline_code: order.decline_code,
      lines: lines.map((line) => ({ ...line, unit_price_minor: line.unit_price_minor.toString() })),
      created_at: new Date(order.created_at).toISOString(),
    };
  });
}
