/**
 * Step 407 at the shop, once the receiver (routes/webhooks.ts) has verified an event's signature:
 * an event id is handled once (deliveries are retried), and an event whose `sequence` is not above
 * the last one applied to its order is stale and dropped — its refund, a fact of its own, is still
 * recorded. The order update is the same code polling uses (fulfilment.ts). SQL stays here.
 */
import { KessaiError } from '@kessai/protocol';
import {
  AuthorizationVerificationError,
  isSettlementBatchEvent,
  type TolerantPaymentRequestEvent,
  type TolerantWebhookEvent,
} from '@kessai/sdk';
import type { Db, Logger } from '@kessai/service';
import type { Fulfilment } from './fulfilment.ts';

/** Where a received event is applied, and where what happened to it is logged. */
export interface WebhookEventTarget {
  db: Db;
  fulfilment: Fulfilment;
  log: Pick<Logger, 'info' | 'error'>;
}

/** Applies a verified event once: a repeat or a stale event changes no order. */
export async function receiveWebhookEvent(target: WebhookEventTarget, event: TolerantWebhookEvent): Promise<void> {
  const { db, fulfilment, log } = target;
  const [seen] = await db.query<{ event_id: string }>(
    'select event_id from processed_webhook_events where event_id = $1',
    [event.id],
  );
  if (seen) return;
  // A settlement batch closed at an issuer: the merchant's books, nothing for the storefront (the back office
  // reads batches through /api/settlements). Acknowledged and logged, once.
  if (isSettlementBatchEvent(event)) {
    log.info({ event: event.id, batch: event.data.id }, 'settlement batch closed: nothing to fulfil');
    return recordProcessed(db, event);
  }
  // A retry that overtook a later event of the same payment request (a stale `approved` after
  // `captured`): acknowledged, so it is not sent again, and not applied. Its refund, a fact of
  // its own, is still recorded (once per refund id).
  const [order] = await db.query<{ last_event_sequence: string | number | bigint }>(
    'select last_event_sequence from orders where payment_request_id = $1',
    [event.data.id],
  );
  if (order && event.sequence <= Number(order.last_event_sequence)) {
    log.info(
      { event: event.id, type: event.type, sequence: event.sequence, applied: Number(order.last_event_sequence) },
      'stale webhook event dropped: a later event of its payment request was applied',
    );
    if (event.refund) await fulfilment.recordRefundOf(event.data, event.refund);
    await db.query(
      `insert into processed_webhook_events (event_id, type, stale) values ($1, $2, true)
        on conflict (event_id) do nothing`,
      [event.id, event.type],
    );
    return;
  }
  await applyEvent(target, event);
  await db.query(
    'update orders set last_event_sequence = greatest(last_event_sequence, $2) where payment_request_id = $1',
    [event.data.id, event.sequence],
  );
  await recordProcessed(db, event);
}

/** The event is handled: a retry of it is acknowledged and changes nothing. */
async function recordProcessed(db: Db, event: { id: string; type: string }): Promise<void> {
  await db.query(
    'insert into processed_webhook_events (event_id, type) values ($1, $2) on conflict (event_id) do nothing',
    [event.id, event.type],
  );
}

/** The order follows the event; an authorization that does not verify leaves it unfulfilled. */
async function applyEvent({ fulfilment, log }: WebhookEventTarget, event: TolerantPaymentRequestEvent): Promise<void> {
  try {
    await fulfilment.apply(event.data, {
      waitForCapture: false,
      ...(event.refund ? { refund: event.refund } : {}),
    });
  } catch (err) {
    if (!(err instanceof AuthorizationVerificationError)) throw err;
    // Unreachable keys may come back: refuse the delivery so that it is retried.
    if (err.transient)
      throw new KessaiError('issuer_unavailable', 'the issuer keys are unreachable; deliver again later');
    // A forged or mismatched authorization will not get better: keep the order unfulfilled.
    log.error(
      { event: event.id, paymentRequest: event.data.id, reason: err.reason },
      'step 408: authorization refused, order not fulfilled',
    );
  }
}
