/**
 * The merchant API's view of its own webhook events (step 407): a list, filtered by status (`dead`
 * for the dead letters), and resend — the same event, id and body, queued again for a fresh
 * schedule once the merchant's receiver is fixed. Another merchant's event does not exist here.
 * Resend is a POST of the merchant API, so it takes an Idempotency-Key like every other.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { idPattern, KessaiError, limits } from '@kessai/protocol';
import { deliveryViewOf, webhookDeliveryView } from '../admin-console.ts';
import { authenticateMerchant, idempotencyScope } from '../callers.ts';
import type { AuthContext } from '../context.ts';
import { idempotencyKeyOf, idempotent, requestHash } from '../idempotency.ts';
import { cursorOf } from '../merchant-lists.ts';
import { listWebhookEvents, resendWebhookEvent, webhookEventStatuses } from '../webhooks.ts';

const listQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(limits.webhookEventsListMax).default(limits.webhookEventsListMax),
  status: z.enum(webhookEventStatuses).optional(),
  starting_after: z.string().regex(idPattern('evt'), 'evt_ id').optional(),
});
const listAnswer = z.strictObject({ items: z.array(webhookDeliveryView), limit: z.number().int(), has_more: z.boolean() });
const byId = z.strictObject({ id: z.string().regex(idPattern('evt'), 'evt_ id') });

export async function webhookEventRoutes(plugin: FastifyInstance, { config }: AuthContext): Promise<void> {
  const app = plugin.withTypeProvider<ZodTypeProvider>();

  app.get('/v1/webhook-events', { schema: { summary: 'List your webhook events (dead letters with status=dead)', operationId: 'listWebhookEvents', querystring: listQuery, response: { 200: listAnswer } } }, async (request) => {
    const merchant = await authenticateMerchant(config.db, request);
    const { limit, status, starting_after } = request.query;
    // The cursor is one of this merchant's events in this mode (any status), else starting_after_not_found.
    const mine = { merchantId: merchant.id, livemode: merchant.livemode };
    const cursor = await cursorOf(config.db, 'webhook_outbox', { ...mine, limit, startingAfter: starting_after });
    const rows = await listWebhookEvents(config.db, { ...mine, cursor, ...(status ? { status } : {}) }, limit);
    return { items: rows.slice(0, limit).map(deliveryViewOf), limit, has_more: rows.length > limit };
  });

  app.post('/v1/webhook-events/:id/resend', { schema: { summary: 'Resend a webhook event', operationId: 'resendWebhookEvent', params: byId, body: z.strictObject({}), response: { 200: webhookDeliveryView } } }, async (request, reply) => {
    const merchant = await authenticateMerchant(config.db, request);
    const key = idempotencyKeyOf(request.headers);
    const response = await idempotent(config.db, idempotencyScope(merchant), key, await requestHash(request.method, request.url, request.body), async () => {
      const row = await resendWebhookEvent(config.db, request.params.id, merchant, new Date());
      if (!row) throw new KessaiError('webhook_event_not_found');
      request.log.info({ event: row.id, merchant: merchant.id, type: row.event_type }, 'webhook event resent by the merchant');
      return { status: 200, body: deliveryViewOf(row) };
    });
    // A stored answer, replayed as it was (a problem or the delivery view): not typed by the schema.
    const replay = reply as FastifyReply;
    const problemJson = 'application/problem+json';
    if (response.status >= 400) return replay.code(response.status).type(problemJson).send(response.body);
    return replay.code(response.status).send(response.body);
  });
}
