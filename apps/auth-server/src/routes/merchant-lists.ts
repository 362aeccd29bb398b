/**
 * The merchant API's lists (merchant-lists.ts): `GET /v1/payment-requests`, `GET /v1/refunds` and
 * `GET /v1/events`, each `{ items, limit, has_more }`, newest first, paged with `limit` and
 * `starting_after` (the last id of the previous page). Only the calling merchant's objects.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  idPattern,
  KessaiError,
  limits,
  paymentRequestId,
  paymentRequestView,
  refundId,
  refundView,
  webhookEvent,
  settlementBatchEvent,
  webhookEventType,
} from '@kessai/protocol';
import { consolePage } from '@kessai/service';
import { authenticateMerchant } from '../callers.ts';
import type { AuthContext } from '../context.ts';
import { listEvents, listPaymentRequests, listRefunds } from '../merchant-lists.ts';
import { merchantView } from '../payment-requests.ts';

const limit = z.coerce.number().int().min(1).max(limits.merchantListMax).default(limits.merchantListMax);
const eventType = webhookEventType;
const eventId = z.string().regex(idPattern('evt'), 'evt_ id');

const paymentRequestsQuery = z.strictObject({ limit, starting_after: paymentRequestId.optional() });
const refundsQuery = z.strictObject({
  limit,
  starting_after: refundId.optional(),
  payment_request_id: paymentRequestId.optional(),
});
const eventsQuery = z.strictObject({
  limit,
  starting_after: eventId.optional(),
  type: eventType.optional(),
  /** Several types, comma-separated. */
  types: z.string().max(limits.stringLengthMax).optional(),
});

/** `type=` and `types=a,b` together: the types asked for (none: every type). */
function eventTypesOf(query: { type?: string | undefined; types?: string | undefined }): string[] {
  const types = [...(query.type ? [query.type] : []), ...(query.types ? query.types.split(',') : [])];
  for (const type of types) {
    if (!eventType.safeParse(type).success) throw new KessaiError('validation_failed', 'types: an unknown event type');
  }
  return types;
}

const paymentRequestsSchema = {
  summary: 'List your payment requests',
  operationId: 'listPaymentRequests',
  querystring: paymentRequestsQuery,
  response: { 200: consolePage(paymentRequestView) },
};
const refundsSchema = {
  summary: 'List your refunds',
  operationId: 'listRefunds',
  querystring: refundsQuery,
  response: { 200: consolePage(refundView) },
};
const eventsSchema = {
  summary: 'List your events (the webhook bodies)',
  operationId: 'listEvents',
  querystring: eventsQuery,
  // A payment request's event or a settlement batch's: each exactly as its webhook was signed.
  response: { 200: consolePage(z.union([webhookEvent, settlementBatchEvent])) },
};

function pageOf<T>(rows: T[], size: number): { items: T[]; limit: number; has_more: boolean } {
  return { items: rows.slice(0, size), limit: size, has_more: rows.length > size };
}

export async function merchantListRoutes(plugin: FastifyInstance, { config }: AuthContext): Promise<void> {
  const app = plugin.withTypeProvider<ZodTypeProvider>();

  app.get('/v1/payment-requests', { schema: paymentRequestsSchema }, async (request) => {
    const merchant = await authenticateMerchant(config.db, request);
    const { limit: size, starting_after } = request.query;
    const rows = await listPaymentRequests(config.db, {
      merchantId: merchant.id,
      livemode: merchant.livemode,
      limit: size,
      startingAfter: starting_after,
    });
    const now = new Date();
    return pageOf(
      rows.map((row) => merchantView(row, config.publicBaseUrl, now)),
      size,
    );
  });

  app.get('/v1/refunds', { schema: refundsSchema }, async (request) => {
    const merchant = await authenticateMerchant(config.db, request);
    const { limit: size, starting_after, payment_request_id } = request.query;
    const page = { merchantId: merchant.id, livemode: merchant.livemode, limit: size, startingAfter: starting_after };
    return pageOf(await listRefunds(config.db, page, payment_request_id), size);
  });

  app.get('/v1/events', { schema: eventsSchema }, async (request) => {
    const merchant = await authenticateMerchant(config.db, request);
    const { limit: size, starting_after } = request.query;
    const types = eventTypesOf(request.query);
    return pageOf(
      await listEvents(
        config.db,
        { merchantId: merchant.id, livemode: merchant.livemode, limit: size, startingAfter: starting_after },
        types,
      ),
      size,
    );
  });
}
