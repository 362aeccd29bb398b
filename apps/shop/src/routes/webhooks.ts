/**
 * The webhook receiver (step 407 reaching the shop). The signature is checked over the raw body
 * bytes before anything is parsed, so this route keeps the body as a string (a content-type
 * parser of its own, in its own plugin scope: every other route still parses JSON). What a
 * verified event does — once per id, never when stale — is webhook-events.ts.
 */
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { KessaiError, limits } from '@kessai/protocol';
import { verifyWebhookEvent } from '@kessai/sdk';
import type { KessaiApp } from '@kessai/service';
import type { ShopContext } from '../app.ts';
import { webhookPath } from '../config.ts';
import { receiveWebhookEvent } from '../webhook-events.ts';

export const webhookHeaders = z.looseObject({ 'kessai-signature': z.string().min(1).max(1024) });
export const webhookAck = z.strictObject({ received: z.literal(true) });

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

        await receiveWebhookEvent({ db, fulfilment, log: request.log }, event);
        return { received: true as const };
      },
    );
  });
}
