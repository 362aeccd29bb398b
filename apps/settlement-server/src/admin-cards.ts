/**
 * The documented unlock path for PIN locks (operator, `POST /admin/v1/cards/unlock`): by account
 * id, the card's lock and every credential lock on that account are lifted (the issuer has checked
 * the cardholder another way); by credential id, only that credential's lock. Never by card
 * number: it would land in URLs, logs and shell history.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { cardUnlockRequest, cardUnlockResponse, KessaiError } from '@kessai/protocol';
import { auditActorOf, recordDomainEvent, requireOperator, type Db } from '@kessai/service';
import type { SettlementConfig } from './config.ts';

export async function unlockCards(db: Db, target: { account_id?: string | undefined; credential_id?: string | undefined }): Promise<{ accounts_unlocked: number; credentials_unlocked: number }> {
  return db.transaction(async (tx) => {
    if (target.account_id !== undefined) {
      const cards = await tx.query<{ status: string }>('select status from cards where account_id = $1 for update', [target.account_id]);
      if (cards.length === 0) throw new KessaiError('account_not_found');
      const accounts = await tx.query("update cards set status = 'active', pin_failures = 0 where account_id = $1 and (status = 'locked' or pin_failures > 0) returning account_id", [target.account_id]);
      const credentials = await tx.query("update credential_pin_limits set status = 'active', failures = 0, locked_at = null, updated_at = now() where account_id = $1 and (status = 'locked' or failures > 0) returning device_jkt", [target.account_id]);
      return { accounts_unlocked: accounts.length, credentials_unlocked: credentials.length };
    }
    const credentials = await tx.query("update credential_pin_limits set status = 'active', failures = 0, locked_at = null, updated_at = now() where credential_id = $1 and (status = 'locked' or failures > 0) returning device_jkt", [target.credential_id]);
    return { accounts_unlocked: 0, credentials_unlocked: credentials.length };
  });
}

export async function adminCardRoutes(plugin: FastifyInstance, config: SettlementConfig): Promise<void> {
  const operatorToken = config.operatorToken;
  if (!operatorToken) return;
  const app = plugin.withTypeProvider<ZodTypeProvider>();
  app.addHook('onRequest', requireOperator(operatorToken));
  app.post('/admin/v1/cards/unlock', { schema: { summary: 'Lift a PIN lock (account or credential)', operationId: 'unlockCards', body: cardUnlockRequest, response: { 200: cardUnlockResponse } } }, async (request) => {
    const unlocked = await unlockCards(config.db, request.body);
    const operator = auditActorOf(request) ?? 'operator';
    request.log.info({ account: request.body.account_id, credential: request.body.credential_id, operator, ...unlocked }, 'PIN lock lifted by the operator');
    void recordDomainEvent(config.db, { actor: operator, action: 'card.unlocked', resource: request.body.account_id ?? request.body.credential_id ?? null, outcome: `${unlocked.accounts_unlocked} accounts, ${unlocked.credentials_unlocked} credentials` });
    return unlocked;
  });
}
