/**
 * The issuer's credential registry (DESIGN.md §1): the credentials this issuer registered itself
 * at enrollment — id, device-key thumbprint, card, account, status. Every authorization names one
 * (the sealed credential's `cred`); one that is not here, is revoked, or comes with another device
 * key is refused. Revocation ends here: the payer's (recovery code) and the broker operator's,
 * relayed by the authentication server, and the issuer operator's own; once revoked, this issuer
 * refuses the credential whatever the authentication server says.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { credentialId, issuerRevocation, KessaiError, limits, type IssuerRevocation } from '@kessai/protocol';
import { auditActorOf, recordDomainEvent, requireOperator, sqlState, type Db, type Queryable } from '@kessai/service';
import type { SettlementConfig } from './config.ts';

export interface RegisteredCredential {
  id: string;
  device_jkt: string;
  pan_lookup: string;
  account_id: string;
  status: 'active' | 'revoked';
}

/** The registered credential `id` used with the device key `deviceJkt`: credential_unknown, credential_revoked, or the record. */
export async function registeredCredential(db: Queryable, id: string, deviceJkt: string): Promise<RegisteredCredential> {
  const [row] = await db.query<RegisteredCredential>('select id, device_jkt, pan_lookup, account_id, status from credentials where id = $1', [id]);
  return checkRegistered(row, deviceJkt);
}

/** The registry's row of a credential (or none), checked: credential_unknown, credential_revoked, or the record. */
export function checkRegistered(row: RegisteredCredential | undefined | null, deviceJkt: string): RegisteredCredential {
  if (!row || row.device_jkt !== deviceJkt) throw new KessaiError('credential_unknown');
  if (row.status === 'revoked') throw new KessaiError('credential_revoked');
  return row;
}

/**
 * Registers a credential for a card whose holder the issuer has just verified. A retry of the same
 * registration (same id, device key and card) is answered again; a card at credentialsPerCardMax
 * active credentials is refused. Runs inside the caller's transaction, with the card row locked.
 */
export async function registerCredential(tx: Queryable, credential: Omit<RegisteredCredential, 'status'>, credentialsMax: number = limits.credentialsPerCardMax): Promise<void> {
  const [existing] = await tx.query<RegisteredCredential>('select id, device_jkt, pan_lookup, account_id, status from credentials where id = $1 or device_jkt = $2', [credential.id, credential.device_jkt]);
  if (existing) {
    if (existing.id === credential.id && existing.device_jkt === credential.device_jkt && existing.pan_lookup === credential.pan_lookup && existing.status === 'active') return;
    // Another credential under this id or device key: the same refusal as any other mismatch.
    throw new KessaiError('enrollment_refused');
  }
  const [{ count } = { count: 0 }] = await tx.query<{ count: number }>("select count(*)::int as count from credentials where pan_lookup = $1 and status = 'active'", [credential.pan_lookup]);
  if (count >= credentialsMax) throw new KessaiError('credential_limit_reached');
  try {
    await tx.query("insert into credentials (id, device_jkt, pan_lookup, account_id, status) values ($1, $2, $3, $4, 'active')", [credential.id, credential.device_jkt, credential.pan_lookup, credential.account_id]);
  } catch (err) {
    if (sqlState(err) === '23505') throw new KessaiError('enrollment_refused');
    throw err;
  }
}

/** True when exactly this credential (id, device key, card) is registered and active: a retried enrollment. */
export async function isRegistered(tx: Queryable, credential: Pick<RegisteredCredential, 'id' | 'device_jkt' | 'pan_lookup'>): Promise<boolean> {
  const [row] = await tx.query<RegisteredCredential>("select id, device_jkt, pan_lookup, account_id, status from credentials where id = $1 and status = 'active'", [credential.id]);
  return row !== undefined && row.device_jkt === credential.device_jkt && row.pan_lookup === credential.pan_lookup;
}

export async function markCredentialUsed(tx: Queryable, id: string): Promise<void> {
  await tx.query('update credentials set last_used_at = now() where id = $1', [id]);
}

/** Revokes a registered credential; a second revocation answers the first. */
export async function revokeCredential(db: Db, id: string, by: IssuerRevocation['revoked_by']): Promise<IssuerRevocation> {
  const [row] = await db.query<{ id: string; revoked_at: Date; revoked_by: IssuerRevocation['revoked_by']; fresh: boolean }>(
    `with changed as (update credentials set status = 'revoked', revoked_at = now(), revoked_by = $2 where id = $1 and status = 'active' returning id, revoked_at, revoked_by)
     select id, revoked_at, revoked_by, true as fresh from changed
     union all select id, revoked_at, revoked_by, false as fresh from credentials where id = $1 and status = 'revoked' and not exists (select 1 from changed)`,
    [id, by],
  );
  if (!row) throw new KessaiError('credential_not_found');
  if (row.fresh) void recordDomainEvent(db, { actor: by === 'issuer_operator' ? 'operator' : `peer:${by}`, action: 'credential.revoked', resource: id, outcome: `revoked by ${by}` });
  return { credential_id: row.id, status: 'revoked', revoked_at: new Date(row.revoked_at).toISOString(), revoked_by: row.revoked_by };
}

const byId = z.strictObject({ id: credentialId });

/** The issuer operator's revocation (`POST /admin/v1/credentials/:id/revoke`), without the authentication server. */
export async function credentialAdminRoutes(plugin: FastifyInstance, config: SettlementConfig): Promise<void> {
  const operatorToken = config.operatorToken;
  if (!operatorToken) return;
  const app = plugin.withTypeProvider<ZodTypeProvider>();
  app.addHook('onRequest', requireOperator(operatorToken));
  app.post('/admin/v1/credentials/:id/revoke', { schema: { summary: 'Revoke a credential (issuer operator)', operationId: 'adminRevokeCredential', params: byId, response: { 200: issuerRevocation } } }, async (request) => {
    const revoked = await revokeCredential(config.db, request.params.id, 'issuer_operator');
    request.log.info({ credential: revoked.credential_id, by: auditActorOf(request) }, 'credential revoked by the issuer operator');
    return revoked;
  });
}
