/**
 * Key rotation for webhook secrets (Stripe's scheme): the operator rotates a merchant's secret; the
 * new one signs every delivery, and each previous one signs it too (several `v1=` in
 * Kessai-Signature) until the operator retires them, so the shop can add the new secret to its
 * configuration without missing an event. `POST /admin/v1/merchants/:id/webhook-secret/rotate`
 * answers the new secret once; `…/retire-previous` ends the overlap.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { KessaiError, merchantId, sha256Base64url, signStandardWebhook, signWebhook, webhookSecretRetirement, webhookSecretRotation, type WebhookSecretRetirement, type WebhookSecretRotation } from '@kessai/protocol';
import { recordDomainEvent, requireOperator, type Db } from '@kessai/service';

/** The Kessai-Signature header: `t=…,v1=<current>` and one more `v1=` per previous secret. */
export async function webhookSignature(current: string, previous: readonly string[], body: string, timestampSeconds: number): Promise<string> {
  const header = await signWebhook(current, body, timestampSeconds);
  const extra = await Promise.all(previous.map(async (secret) => (await signWebhook(secret, body, timestampSeconds)).split(',')[1]));
  return [header, ...extra].join(',');
}

/** The Standard Webhooks headers of one delivery: the event id, the time, and a v1 signature per secret. */
export async function standardWebhookHeaders(
  row: { id: string; body: string; webhook_secret: string; previous_secrets: string[] | null },
  timestampSeconds: number,
): Promise<Record<'webhook-id' | 'webhook-timestamp' | 'webhook-signature', string>> {
  const secrets = [row.webhook_secret, ...(row.previous_secrets ?? [])];
  return {
    'webhook-id': row.id,
    'webhook-timestamp': String(timestampSeconds),
    'webhook-signature': await signStandardWebhook(secrets, row.id, row.body, timestampSeconds),
  };
}

export async function rotateWebhookSecret(db: Db, merchant: string): Promise<WebhookSecretRotation> {
  const fresh = `whsec_${randomBytes(24).toString('base64url')}`;
  const rotated = await db.transaction(async (tx) => {
    const [row] = await tx.query<{ webhook_secret: string }>('select webhook_secret from merchants where id = $1 for update', [merchant]);
    if (!row) throw new KessaiError('not_found', 'no such merchant');
    await tx.query("insert into merchant_webhook_secrets (merchant_id, secret_hash, secret, status) values ($1, $2, $3, 'previous') on conflict do nothing", [merchant, await sha256Base64url(row.webhook_secret), row.webhook_secret]);
    await tx.query('update merchants set webhook_secret = $2 where id = $1', [merchant, fresh]);
    const [count] = await tx.query<{ n: number | string }>("select count(*) as n from merchant_webhook_secrets where merchant_id = $1 and status = 'previous'", [merchant]);
    return { merchant_id: merchant, webhook_secret: fresh, previous_secrets: Number(count?.n ?? 0) };
  });
  // The event names the merchant and how many secrets still sign, never a secret.
  void recordDomainEvent(db, { actor: 'operator', action: 'webhook_secret.rotated', resource: merchant, outcome: `rotated, ${rotated.previous_secrets} previous` });
  return rotated;
}

export async function retirePreviousWebhookSecrets(db: Db, merchant: string): Promise<WebhookSecretRetirement> {
  const [exists] = await db.query('select 1 from merchants where id = $1', [merchant]);
  if (!exists) throw new KessaiError('not_found', 'no such merchant');
  const retired = await db.query("update merchant_webhook_secrets set status = 'retired', secret = null where merchant_id = $1 and status = 'previous' returning secret_hash", [merchant]);
  void recordDomainEvent(db, { actor: 'operator', action: 'webhook_secret.retired', resource: merchant, outcome: `retired ${retired.length}` });
  return { merchant_id: merchant, retired: retired.length };
}

export async function webhookSecretRoutes(plugin: FastifyInstance, db: Db, operatorToken: string | undefined): Promise<void> {
  if (!operatorToken) return;
  const app = plugin.withTypeProvider<ZodTypeProvider>();
  app.addHook('onRequest', requireOperator(operatorToken));
  const byId = z.strictObject({ id: merchantId });
  app.post('/admin/v1/merchants/:id/webhook-secret/rotate', { schema: { summary: "Rotate a merchant's webhook secret", operationId: 'rotateWebhookSecret', params: byId, response: { 200: webhookSecretRotation } } }, async (request) => {
    const rotated = await rotateWebhookSecret(db, request.params.id);
    request.log.info({ merchant: rotated.merchant_id, previous: rotated.previous_secrets }, 'webhook secret rotated');
    return rotated;
  });
  app.post('/admin/v1/merchants/:id/webhook-secret/retire-previous', { schema: { summary: "Retire a merchant's previous webhook secrets", operationId: 'retirePreviousWebhookSecrets', params: byId, response: { 200: webhookSecretRetirement } } }, async (request) => {
    const retired = await retirePreviousWebhookSecrets(db, request.params.id);
    request.log.info({ merchant: retired.merchant_id, retired: retired.retired }, 'previous webhook secrets retired');
    return retired;
  });
}
