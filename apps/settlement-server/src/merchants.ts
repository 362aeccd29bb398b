/**
 * Merchants this issuer pays (DESIGN.md §1): onboarded by the issuer's own operator — `POST
 * /admin/v1/merchants`, `kessai merchants onboard` — under the name payers are shown. An
 * authorization for a merchant not onboarded here is refused (merchant_unknown), and one whose
 * approval names the merchant under another name is refused (approval_mismatch): the
 * authentication server cannot route money to a merchant of its own making. Names are unique
 * (case-insensitively): the name is all a payer sees.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { issuerMerchant, issuerMerchantList, issuerMerchantView, KessaiError, limits, merchantNameProblem } from '@kessai/protocol';
import { auditActorOf, recordDomainEvent, requireOperator, type Db, type Queryable } from '@kessai/service';
import type { SettlementConfig } from './config.ts';

export interface IssuerMerchant {
  id: string;
  name: string;
}

/** Onboards a merchant, or renames it (the operator's record is the truth). */
export async function onboardMerchant(db: Queryable, merchant: IssuerMerchant): Promise<{ merchant_id: string; name: string; created_at: string }> {
  const problem = merchantNameProblem(merchant.name);
  if (problem) throw new KessaiError('validation_failed', `the merchant name cannot be shown to payers: ${problem}`);
  // Payers tell merchants apart by name alone: two merchants under one name would let whoever builds
  // the payment view pay either with the payer's approval.
  const [twin] = await db.query<{ id: string }>('select id from merchants where lower(name) = lower($1) and id <> $2 limit 1', [merchant.name, merchant.id]);
  if (twin) throw new KessaiError('validation_failed', 'another merchant is onboarded under this name: payers could not tell them apart');
  const [row] = await db.query<{ id: string; name: string; created_at: Date }>(
    'insert into merchants (id, name) values ($1, $2) on conflict (id) do update set name = excluded.name returning id, name, created_at',
    [merchant.id, merchant.name],
  );
  return { merchant_id: row!.id, name: row!.name, created_at: new Date(row!.created_at).toISOString() };
}

/** The onboarded merchant named by an approval, or merchant_unknown. */
export async function knownMerchant(db: Queryable, merchantId: string): Promise<IssuerMerchant> {
  const [row] = await db.query<IssuerMerchant>('select id, name from merchants where id = $1', [merchantId]);
  return onboarded(row);
}

/** The merchants row of an approval's merchant (or none), checked: merchant_unknown or the merchant. */
export function onboarded(row: IssuerMerchant | undefined | null): IssuerMerchant {
  if (!row) throw new KessaiError('merchant_unknown');
  return row;
}

export async function merchantRoutes(plugin: FastifyInstance, config: SettlementConfig, db: Db): Promise<void> {
  const operatorToken = config.operatorToken;
  if (!operatorToken) return;
  const app = plugin.withTypeProvider<ZodTypeProvider>();
  app.addHook('onRequest', requireOperator(operatorToken));
  app.post('/admin/v1/merchants', { schema: { summary: 'Onboard a merchant', operationId: 'onboardMerchant', body: issuerMerchant, response: { 200: issuerMerchantView } } }, async (request) => {
    const onboarded = await onboardMerchant(db, { id: request.body.merchant_id, name: request.body.name });
    void recordDomainEvent(db, { actor: auditActorOf(request) ?? 'operator', action: 'merchant.onboarded', resource: onboarded.merchant_id, outcome: 'onboarded' });
    return onboarded;
  });
  const listSchema = { summary: 'List merchants', operationId: 'listMerchants', response: { 200: issuerMerchantList } };
  app.get('/admin/v1/merchants', { schema: listSchema }, async () => {
    const rows = await db.query<{ id: string; name: string; created_at: Date }>('select id, name, created_at from merchants order by created_at desc limit $1', [limits.listPageMax]);
    return { items: rows.map((row) => ({ merchant_id: row.id, name: row.name, created_at: new Date(row.created_at).toISOString() })) };
  });
}
