/**
 * An authorization as this issuer keeps it, for the authentication server (mutual TLS): its
 * status, amounts and when its hold is due. This is how the broker learns that the expiry pass
 * released a hold (expiry.ts) and can tell the merchant.
 */
import { KessaiError, type SettlementAuthorizationStatus } from '@kessai/protocol';
import type { Queryable } from '@kessai/service';

export async function authorizationStatus(db: Queryable, rid: string, now: Date): Promise<SettlementAuthorizationStatus> {
  const [row] = await db.query<{ id: string; status: SettlementAuthorizationStatus['status']; amount: bigint; captured_amount: bigint; refunded_amount: bigint; hold_state: string | null; expires_at: Date | null; jws: string }>(
    `select a.id, a.status, a.jws, a.amount, a.captured_amount, a.refunded_amount, t.state as hold_state, t.expires_at
       from authorizations a left join transfers t on t.id = a.hold_transfer_id
      where a.request_id = $1`,
    [rid],
  );
  if (!row) throw new KessaiError('authorization_not_found');
  // A hold that is due is expired for every caller already (a capture is refused); the expiry
  // pass releases it at its next run.
  const due = row.status === 'held' && row.hold_state === 'pending' && row.expires_at !== null && new Date(row.expires_at).getTime() <= now.getTime();
  return {
    authorization_id: row.id,
    status: due ? 'expired' : row.status,
    amount_minor: BigInt(row.amount).toString(),
    captured_minor: BigInt(row.captured_amount).toString(),
    refunded_minor: BigInt(row.refunded_amount).toString(),
    hold_expires_at: !due && row.status === 'held' && row.hold_state === 'pending' && row.expires_at ? new Date(row.expires_at).toISOString() : null,
    authorization: row.jws,
  };
}
