/**
 * Step 409, the broker learns that a hold expired: the settlement server's expiry pass releases
 * a hold nobody captured, on its own. On each worker pass this module asks the issuer
 * (`GET /internal/v1/authorizations/{rid}`, mutual TLS) about approved requests whose next check
 * is due: one approved more than holdSyncFirstCheckMs ago and never asked about (most are captured
 * before that), or one whose hold is due by what the issuer said last time. An expired hold turns the request `expired` and, in the same transaction, puts a signed
 * `payment_request.expired` event in the outbox; a capture after that answers
 * `authorization_not_capturable`. A held one is asked about again when its hold is due.
 */
import { KessaiError, limits, settlementAuthorizationStatus } from '@kessai/protocol';
import type { AuthContext } from './context.ts';
import { merchantView, type PaymentRequestRow } from './payment-requests.ts';
import { enqueueEvent } from './webhooks.ts';

/** One pass; returns the ids of the requests it turned `expired`. */
export async function syncExpiredHolds(context: AuthContext, now: Date): Promise<string[]> {
  const { config } = context;
  const due = await config.db.query<{ id: string; issuer_id: string }>(
    `select id, issuer_id from payment_requests
      where status = 'approved' and issuer_id is not null
        and (hold_check_at <= $1 or (hold_check_at is null and updated_at <= $2))
      order by hold_check_at nulls first limit $3`,
    [now, new Date(now.getTime() - limits.holdSyncFirstCheckMs), limits.holdSyncBatchMax],
  );
  const expired: string[] = [];
  const checkAgainAt = (id: string, at: Date) => config.db.query("update payment_requests set hold_check_at = $2 where id = $1 and status = 'approved'", [id, at]);
  await Promise.all(
    due.map(async (row) => {
      try {
        const issuer = await context.issuers.byId(row.issuer_id);
        const status = await context.http.call('GET', `${issuer.route.baseUrl}/internal/v1/authorizations/${row.id}`, { schema: settlementAuthorizationStatus, unavailable: 'issuer_unavailable' });
        if (status.status === 'expired') {
          const turned = await config.db.transaction(async (tx) => {
            const [next] = await tx.query<PaymentRequestRow>("update payment_requests set status = 'expired', hold_check_at = null, updated_at = now() where id = $1 and status = 'approved' returning *", [row.id]);
            if (next) await enqueueEvent(tx, 'payment_request.expired', merchantView(next, config.publicBaseUrl), now);
            return next !== undefined;
          });
          if (turned) expired.push(row.id);
        } else if (status.status === 'held' && status.hold_expires_at) {
          await checkAgainAt(row.id, new Date(Math.max(new Date(status.hold_expires_at).getTime(), now.getTime() + 1)));
        } else {
          // Captured or voided at the issuer while approved here (a capture whose answer was lost): not a hold to watch.
          config.logger.warn({ request: row.id, issuerStatus: status.status }, 'hold sync: the issuer resolved this authorization otherwise');
          await checkAgainAt(row.id, new Date(now.getTime() + limits.holdSyncMismatchRecheckMs));
        }
      } catch (err) {
        if (!(err instanceof KessaiError)) throw err;
        config.logger.warn({ request: row.id, code: err.code }, 'hold sync: issuer did not answer; asking again later');
        await checkAgainAt(row.id, new Date(now.getTime() + limits.holdSyncRetryMs));
      }
    }),
  );
  if (expired.length > 0) config.logger.info({ requests: expired }, 'step 409: authorization holds expired at the issuer');
  return expired;
}
