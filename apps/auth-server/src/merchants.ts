/**
 * Merchants at the broker are created by its operator, not configured: `POST /admin/v1/merchants`
 * (`kessai merchants create`) makes the merchant, its API key and its webhook secret, and answers
 * the key once — the broker keeps only its SHA-256 (callers.ts). API keys roll as Stripe's do
 * (`…/api-keys/roll`, `kessai merchants rotate-key`): the new key works at once, the old one for
 * an overlap (default apiKeyOverlapSecondsDefault, 0 retires it at once), never more than
 * merchantApiKeysMax keys at a time. Webhook secrets rotate through webhook-secrets.ts. Names are
 * unique case-insensitively: the name is all a payer sees.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { apiKeyLivemode, apiKeyRolled, apiKeyRollRequest, apiKeysRetired, brokerMerchantCreate, brokerMerchantCreated, brokerMerchantList, brokerMerchantView, KessaiError, limits, merchantId, merchantNameProblem, newId, sha256Base64url } from '@kessai/protocol';
import { auditActorOf, recordDomainEvent, requireOperator, type Db, type Queryable } from '@kessai/service';

export type BrokerMerchantView = z.infer<typeof brokerMerchantView>;

export interface NewMerchant {
  name: string;
  webhookUrl?: string | undefined;
  /** Chosen by the caller only for `kessai start`'s demo merchant, whose secrets the demo shop reads from its file; otherwise made here. */
  id?: string;
  /** The key's mode (default test); a given apiKey's mode is its prefix. */
  livemode?: boolean | undefined;
  apiKey?: string;
  webhookSecret?: string;
}

const newApiKey = (livemode: boolean) => `sk_${livemode ? 'live' : 'test'}_${randomBytes(24).toString('base64url')}`;
const newWebhookSecret = () => `whsec_${randomBytes(24).toString('base64url')}`;
const last4 = (key: string) => key.slice(-4);

/** The checks a merchant's name and webhook URL pass, at creation and nowhere else. */
async function checkNewMerchant(db: Queryable, merchant: NewMerchant): Promise<void> {
  // A look-alike name would reach every payer's confirmation screen: refuse it at registration.
  const problem = merchantNameProblem(merchant.name);
  if (problem) throw new KessaiError('validation_failed', `the merchant name cannot be shown to payers: ${problem}`);
  if (merchant.webhookUrl !== undefined && new URL(merchant.webhookUrl).protocol !== 'https:') throw new KessaiError('validation_failed', 'the webhook URL must be https:');
  const [twin] = await db.query('select 1 from merchants where lower(name) = lower($1) limit 1', [merchant.name]);
  if (twin) throw new KessaiError('merchant_name_taken');
}

/** Creates a merchant with its API key and webhook secret; answers them (the only time the key is seen). */
export async function createMerchant(db: Db, merchant: NewMerchant): Promise<{ merchant: BrokerMerchantView; apiKey: string; webhookSecret: string }> {
  const id = merchant.id ?? newId('mer');
  const apiKey = merchant.apiKey ?? newApiKey(merchant.livemode ?? false);
  const livemode = apiKeyLivemode(apiKey);
  const webhookSecret = merchant.webhookSecret ?? newWebhookSecret();
  await db.transaction(async (tx) => {
    // One creation at a time, so two merchants cannot take one name.
    await tx.query("select pg_advisory_xact_lock(hashtext('kessai.merchants.create'))");
    await checkNewMerchant(tx, merchant);
    await tx.query(
      `insert into merchants (id, name, api_key_hash, api_key_last4, webhook_url, webhook_secret, api_key_livemode)
       values ($1, $2, $3, $4, $5, $6, $7)`,
      [id, merchant.name, await sha256Base64url(apiKey), last4(apiKey), merchant.webhookUrl ?? null, webhookSecret, livemode],
    );
  });
  return { merchant: await showMerchant(db, id), apiKey, webhookSecret };
}

export async function merchantExists(db: Queryable, id: string): Promise<boolean> {
  return (await db.query('select 1 from merchants where id = $1', [id])).length > 0;
}

interface MerchantRow {
  id: string;
  name: string;
  webhook_url: string | null;
  api_key_last4: string | null;
  api_key_livemode: boolean;
  created_at: Date | string;
}

async function viewOf(db: Queryable, row: MerchantRow, now: Date): Promise<BrokerMerchantView> {
  const previous = await db.query<{ last4: string | null; expires_at: Date | string; livemode: boolean }>('select last4, expires_at, livemode from merchant_previous_api_keys where merchant_id = $1 and expires_at > $2 order by expires_at desc limit $3', [row.id, now, limits.merchantApiKeysMax - 1]);
  const [secrets] = await db.query<{ n: number | string }>("select count(*) as n from merchant_webhook_secrets where merchant_id = $1 and status = 'previous'", [row.id]);
  return {
    merchant_id: row.id,
    name: row.name,
    webhook_url: row.webhook_url,
    created_at: new Date(row.created_at).toISOString(),
    api_keys: [
      { status: 'current', last4: row.api_key_last4, expires_at: null, livemode: row.api_key_livemode },
      ...previous.map((key) => ({ status: 'previous' as const, last4: key.last4, expires_at: new Date(key.expires_at).toISOString(), livemode: key.livemode })),
    ],
    previous_webhook_secrets: Number(secrets?.n ?? 0),
  };
}

export async function showMerchant(db: Queryable, id: string, now = new Date()): Promise<BrokerMerchantView> {
  const [row] = await db.query<MerchantRow>('select id, name, webhook_url, api_key_last4, api_key_livemode, created_at from merchants where id = $1', [id]);
  if (!row) throw new KessaiError('not_found', 'no such merchant');
  return viewOf(db, row, now);
}

export async function listMerchants(db: Queryable, now = new Date()): Promise<BrokerMerchantView[]> {
  const rows = await db.query<MerchantRow>('select id, name, webhook_url, api_key_last4, api_key_livemode, created_at from merchants order by created_at desc, id limit $1', [limits.listPageMax]);
  return Promise.all(rows.map((row) => viewOf(db, row, now)));
}

/**
 * Stripe's roll: a new current key; the old one keeps working for `overlapSeconds` (0: refused at
 * once). Refused with api_key_limit_reached while merchantApiKeysMax keys already work.
 */
export async function rollApiKey(db: Db, id: string, overlapSeconds: number = limits.apiKeyOverlapSecondsDefault, now = new Date(), livemode?: boolean): Promise<{ apiKey: string; previousExpiresAt: Date | null }> {
  if (!Number.isInteger(overlapSeconds) || overlapSeconds < 0 || overlapSeconds > limits.apiKeyOverlapSecondsMax) throw new TypeError('overlapSeconds must be an integer 0..apiKeyOverlapSecondsMax');
  const previousExpiresAt = overlapSeconds > 0 ? new Date(now.getTime() + overlapSeconds * 1000) : null;
  let apiKey = '';
  await db.transaction(async (tx) => {
    const [row] = await tx.query<{ api_key_hash: string; api_key_last4: string | null; api_key_livemode: boolean }>('select api_key_hash, api_key_last4, api_key_livemode from merchants where id = $1 for update', [id]);
    if (!row) throw new KessaiError('not_found', 'no such merchant');
    const [working] = await tx.query<{ n: number | string }>('select count(*) as n from merchant_previous_api_keys where merchant_id = $1 and expires_at > $2', [id, now]);
    if (previousExpiresAt && 1 + Number(working?.n ?? 0) >= limits.merchantApiKeysMax) throw new KessaiError('api_key_limit_reached');
    // The old key's hash stays either way (expired at once with no overlap): a configuration naming it cannot bring it back.
    await tx.query(
      'insert into merchant_previous_api_keys (merchant_id, key_hash, last4, rolled_at, expires_at, livemode) values ($1, $2, $3, $4, $5, $6)',
      [id, row.api_key_hash, row.api_key_last4, now, previousExpiresAt ?? now, row.api_key_livemode],
    );
    // The new key keeps the current key's mode unless the operator names one.
    apiKey = newApiKey(livemode ?? row.api_key_livemode);
    await tx.query('update merchants set api_key_hash = $2, api_key_last4 = $3, api_key_livemode = $4 where id = $1', [id, await sha256Base64url(apiKey), last4(apiKey), apiKeyLivemode(apiKey)]);
  });
  return { apiKey, previousExpiresAt };
}

/** Ends the overlap: every previous key of the merchant is refused from now on. */
export async function retirePreviousApiKeys(db: Db, id: string, now = new Date()): Promise<number> {
  if (!(await merchantExists(db, id))) throw new KessaiError('not_found', 'no such merchant');
  const retired = await db.query('update merchant_previous_api_keys set expires_at = $2 where merchant_id = $1 and expires_at > $2 returning key_hash', [id, now]);
  return retired.length;
}

export async function brokerMerchantRoutes(plugin: FastifyInstance, db: Db, operatorToken: string | undefined): Promise<void> {
  if (!operatorToken) return;
  const app = plugin.withTypeProvider<ZodTypeProvider>();
  app.addHook('onRequest', requireOperator(operatorToken));
  const byId = z.strictObject({ id: merchantId });
  app.post('/admin/v1/merchants', { schema: { summary: 'Create a merchant: its API key and webhook secret', operationId: 'createMerchant', body: brokerMerchantCreate, response: { 200: brokerMerchantCreated } } }, async (request) => {
    const created = await createMerchant(db, { name: request.body.name, webhookUrl: request.body.webhook_url, livemode: request.body.livemode });
    request.log.info({ merchant: created.merchant.merchant_id }, 'merchant created');
    void recordDomainEvent(db, { actor: auditActorOf(request) ?? 'operator', action: 'merchant.created', resource: created.merchant.merchant_id, outcome: 'created' });
    return { merchant: created.merchant, api_key: created.apiKey, webhook_secret: created.webhookSecret };
  });
  app.get('/admin/v1/merchants', { schema: { summary: 'List merchants', operationId: 'listMerchants', response: { 200: brokerMerchantList } } }, async () => ({ items: await listMerchants(db) }));
  app.get('/admin/v1/merchants/:id', { schema: { summary: 'Retrieve a merchant', operationId: 'getMerchant', params: byId, response: { 200: brokerMerchantView } } }, async (request) => showMerchant(db, request.params.id));
  app.post('/admin/v1/merchants/:id/api-keys/roll', { schema: { summary: "Roll a merchant's API key", operationId: 'rollMerchantApiKey', params: byId, body: apiKeyRollRequest.optional(), response: { 200: apiKeyRolled } } }, async (request) => {
    const rolled = await rollApiKey(db, request.params.id, request.body?.overlap_seconds ?? limits.apiKeyOverlapSecondsDefault, new Date(), request.body?.livemode);
    const outcome = rolled.previousExpiresAt ? `rolled; previous key works until ${rolled.previousExpiresAt.toISOString()}` : 'rolled; previous key retired at once';
    request.log.info({ merchant: request.params.id, previousExpiresAt: rolled.previousExpiresAt }, 'merchant API key rolled');
    void recordDomainEvent(db, { actor: auditActorOf(request) ?? 'operator', action: 'api_key.rolled', resource: request.params.id, outcome });
    return { merchant: await showMerchant(db, request.params.id), api_key: rolled.apiKey, previous_expires_at: rolled.previousExpiresAt?.toISOString() ?? null };
  });
  app.post('/admin/v1/merchants/:id/api-keys/retire-previous', { schema: { summary: "Retire a merchant's previous API keys", operationId: 'retirePreviousApiKeys', params: byId, response: { 200: apiKeysRetired } } }, async (request) => {
    const retired = await retirePreviousApiKeys(db, request.params.id);
    void recordDomainEvent(db, { actor: auditActorOf(request) ?? 'operator', action: 'api_key.retired', resource: request.params.id, outcome: `retired ${retired}` });
    return { merchant_id: request.params.id, retired };
  });
}
