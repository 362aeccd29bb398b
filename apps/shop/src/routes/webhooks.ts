/**
 * The webhook receiver (step 407 reaching the shop). The signature is checked over the raw body
 * bytes before anything is parsed, so this route keeps the body as a string (a content-type
 * parser of its own, in its own plugin scope: every other route still parses JSON). Deliveries
 * are retried, so an event id is handled once, and an event whose `sequence` is not above the last
 * one applied to its order is stale and dropped; the order update is the same code polling uses.
 */
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { KessaiError, limits } from '@kessai/protocol';
import { AuthorizationVerificationError, isSettlementBatchEvent, verifyWebhookEvent } from '@kessai/sdk';
import type { KessaiApp } from '@kessai/service';
import type { ShopContext } from '../app.ts';
import { webhookPath } from '../config.ts';

export const webhookHeaders = z.looseObject({ 'kessai-signature': z.string().min(1).max(1024) });
export const webhookAck = z.strictObject({ received: z.literal(true) });

/** The event is handled: a retry of it is acknowledged and changes nothing. */
async function recordProcessed(db: ShopContext['db'], event: { id: string; type: string }) {
  await db.query(
    'insert into processed_webhook_events (event_id, type) values ($1, $2) on conflict (event_id) do nothing',
    [event.id, event.type],
  );
  return { received: true as const };
}

const receiveDocs = {
  summary: 'Receive a Kessai webhook (signed)',
  description: 'The body is the event as signed (Standard Webhooks headers); it is verified before it is read.',
  operationId: 'receiveKessaiWebhook',
};

export async function registerWebhookRoute(app: KessaiApp, { config, db, fulfilment }: ShopContext): Promise<void> {
  await app.register(async (plugin) => {
    plugin.removeContentTypeParser('application/json');
    plugin.addContentTypeParser(
      'application/json',
      { parseAs: 'string', bodyLimit: limits.bodyBytesMax },
      (_request, body, done) => done(null, body),
    );
    const scope = plugin.withTypeProvider<ZodTypeProvider>();

    scope.post(
      webhookPath,
      { schema: { ...receiveDocs, headers: webhookHeaders, body: z.string(), response: { 200: webhookAck } } },
      async (request) => {
        const event = await verifyWebhookEvent(
          config.webhookSecrets,
          request.headers['kessai-signature'],
          request.body,
        );
        if (!event)
          throw new KessaiError(
            'validation_failed',
            'Kessai-Signature does not verify, is stale, or the body is not a webhook event',
          );

        const [seen] = await db.query<{ event_id: string }>(
          'select event_id from processed_webhook_events where event_id = $1',
          [event.id],
        );
        if (seen) return { received: true as const };
        // A settlement batch closed at an issuer: the merchant's books, nothing for the storefront (the back office
        // reads batches through /api/settlements). Acknowledged and logged, once.
        if (isSettlementBatchEvent(event)) {
          request.log.info({ event: event.id, batch: event.data.id }, 'settlement batch closed: nothing to fulfil');
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
          request.log.info(
            { event: event.id, type: event.type, sequence: event.sequence, applied: Number(order.last_event_sequence) },
            'stale webhook event dropped: a later event of its payment request was applied',
          );
          if (event.refund) await fulfilment.recordRefundOf(event.data, event.refund);
          await db.query(
            `insert into processed_webhook_events (event_id, type, stale) values ($1, $2, true)
              on conflict (event_id) do nothing`,
            [event.id, event.type],
          );
          return { received: true as const };
        }
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
          request.log.error(
            { event: event.id, paymentRequest: event.data.id, reason: err.reason },
            'step 408: authorization refused, order not fulfilled',
          );
        }
        await db.query(
          'update orders set last_event_sequence = greatest(last_event_sequence, $2) where payment_request_id = $1',
          [event.data.id, event.sequence],
        );
        return recordProcessed(db, event);
      },
    );
  });
}
