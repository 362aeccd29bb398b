/**
 * Checkout: steps 401–402. The order is written first (with its lines as priced now), then the
 * payment request is asked for with an Idempotency-Key derived from the order id, so a retried
 * checkout finds the order and can never create a second payment request for it.
 */
import { z } from 'zod';
import { KessaiError, credentialId, type CreatePaymentRequest, type PaymentRequestView } from '@kessai/protocol';
import type { KessaiApp } from '@kessai/service';
import type { ShopContext } from '../app.ts';
import { findOrder, idempotencyKeys, orderStatuses, type OrderRow } from '../fulfilment.ts';
import { attachPaymentRequest, orderLines, placeOrder } from '../orders.ts';
import { cartParams } from './carts.ts';

export const checkoutRequest = z.strictObject({
  /** Push the payment request to this wallet; passed through, never stored. */
  wallet_handle: credentialId.optional(),
});

export const checkoutResponse = z.strictObject({
  order_id: z.string(),
  payment_request_id: z.string(),
  payment_link: z.string(),
  status: z.enum(orderStatuses),
});

/** Step 402: the shop asks the authentication server for a payment request for the order. */
async function requestPayment(
  { db, merchant, config }: ShopContext,
  order: OrderRow,
  walletHandle: string | undefined,
): Promise<OrderRow> {
  const lines = await orderLines(db, order.id);
  const body: CreatePaymentRequest = {
    order_id: order.id,
    currency: order.currency,
    amount_minor: order.amount_minor.toString(),
    line_items: lines.map((line) => ({
      description: line.description,
      quantity: line.quantity,
      unit_price_minor: line.unit_price_minor.toString(),
    })),
    ...(walletHandle ? { wallet_handle: walletHandle } : {}),
  };
  let view: PaymentRequestView;
  try {
    view = await merchant.createPaymentRequest(body, idempotencyKeys.paymentRequest(order.id, walletHandle));
  } catch (err) {
    if (!(err instanceof KessaiError)) throw err;
    // The payer's own input (an unknown or revoked wallet) is theirs to see, and a concurrent
    // checkout of the same cart is worth a retry; anything else is the shop's problem, not theirs.
    if (err.code.startsWith('credential_') || err.code === 'idempotency_request_in_progress') throw err;
    config.logger.error(
      { order: order.id, code: err.code },
      'step 402: no payment request from the authentication server',
    );
    throw new KessaiError('issuer_unavailable', `the authentication server answered ${err.code}`);
  }
  if (view.order_id !== order.id || view.amount_minor !== body.amount_minor || view.currency !== body.currency) {
    throw new KessaiError('issuer_unavailable', 'the payment request does not match the order');
  }
  await attachPaymentRequest(db, order.id, view);
  config.logger.info({ order: order.id, paymentRequest: view.id }, 'step 402: payment request created');
  return (await findOrder(db, order.id)) ?? order;
}

const checkoutDocs = {
  summary: 'Check out: an order and its payment request (steps 401–402)',
  operationId: 'checkoutCart',
};

export function registerCheckoutRoute(app: KessaiApp, context: ShopContext): void {
  app.post(
    '/api/carts/:id/checkout',
    {
      schema: {
        ...checkoutDocs,
        params: cartParams,
        body: checkoutRequest.nullish(),
        response: { 200: checkoutResponse },
      },
    },
    async (request) => {
      // step 401: the payer checks out; the shop places the order
      let order = await placeOrder(context.db, request.params.id);
      // step 402: the shop asks the broker for a payment request
      if (!order.payment_request_id) order = await requestPayment(context, order, request.body?.wallet_handle);
      if (!order.payment_request_id || !order.payment_link)
        throw new Error(`order ${order.id} has no payment request after step 402`);
      return {
        order_id: order.id,
        payment_request_id: order.payment_request_id,
        payment_link: order.payment_link,
        status: order.status,
      };
    },
  );
}
