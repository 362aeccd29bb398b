/**
 * Revocation reaches the issuer: a credential revoked here (the payer's recovery code, or this
 * server's operator) is revoked in its issuer's registry too, which refuses it from then on even
 * if this server's own record were changed back. Relayed at once, and again by the worker until
 * the issuer acknowledges it (credentials.issuer_revoked_at), at most every holdSyncRetryMs.
 */
import { issuerRevocation, limits } from '@kessai/protocol';
import type { AuthContext } from './context.ts';

/** Relays one revocation; false when the issuer could not be told (the worker tries again). */
export async function relayRevocation(context: AuthContext, credentialId: string, by: 'payer' | 'operator'): Promise<boolean> {
  const { config } = context;
  const [row] = await config.db.query<{ issuer_id: string }>("select issuer_id from credentials where id = $1 and status = 'revoked'", [credentialId]);
  if (!row) return false;
  try {
    const issuer = await context.issuers.byId(row.issuer_id);
    await context.http.call('POST', `${issuer.route.baseUrl}/internal/v1/credentials/${credentialId}/revoke`, { body: { revoked_by: by }, schema: issuerRevocation, unavailable: 'issuer_unavailable' });
  } catch (err) {
    await config.db.query('update credentials set issuer_revoke_tried_at = now() where id = $1', [credentialId]);
    config.logger.warn({ credential: credentialId, err }, 'revocation not yet relayed to the issuer; the worker tries again');
    return false;
  }
  await config.db.query('update credentials set issuer_revoked_at = now() where id = $1', [credentialId]);
  return true;
}

/** A revocation last tried before this is tried again (holdSyncRetryMs apart). */
export const revocationRetryBefore = (): Date => new Date(Date.now() - limits.holdSyncRetryMs);

/** The worker's pass: revocations the issuers have not acknowledged yet. */
export async function relayPendingRevocations(context: AuthContext): Promise<void> {
  const rows = await context.config.db.query<{ id: string; revoked_by: 'payer' | 'operator' | null }>(
    `select c.id, r.revoked_by from credentials c left join credential_recovery r on r.credential_id = c.id
      where c.status = 'revoked' and c.issuer_revoked_at is null and (c.issuer_revoke_tried_at is null or c.issuer_revoke_tried_at < $2)
      order by c.id limit $1`,
    [limits.holdSyncBatchMax, revocationRetryBefore()],
  );
  for (const row of rows) await relayRevocation(context, row.id, row.revoked_by ?? 'operator');
}
