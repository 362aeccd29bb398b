/**
 * Step 409, the broker follows each approved request's hold at its issuer. On each worker pass
 * this module asks the issuer (the status inquiry, `GET /internal/v1/authorizations/{rid}`, mutual
 * TLS) about approved requests whose next check is due: one approved more than
 * holdSyncFirstCheckMs ago and never asked about (most are captured before that), or one whose
 * hold is due by what the issuer said last time. The issuer's state is adopted:
 *   - held: asked again when the hold is due;
 *   - expired (due): a reversal makes sure the hold is released now, not at the issuer's next
 *     expiry pass, and the request turns `expired` (payment_request.expired);
 *   - captured or voided: a capture or void the issuer committed but whose answer this server
 *     lost (a crash, a timeout) — the request turns `captured` or `voided` and the merchant is told.
 * The hold's timeout is the issuer's (SettlementConfig.holdTimeoutSeconds, per bank).
 */
import { randomBytes } from 'node:crypto';
import { KessaiError, limits, settlementAuthorizationStatus, settlementReversal } from '@kessai/protocol';
import type { AuthContext } from './context.ts';
import type { PaymentRequestRow } from './payment-requests.ts';
import { transition } from './payment-state.ts';

/** One pass; returns the ids of the requests whose state it changed. */
export async function syncHolds(context: AuthContext, now: Date): Promise<string[]> {
  const { config } = context;
  // step 409 expiry: the broker asks the issuer about holds that are due
  const due = await config.db.query<PaymentRequestRow>(
    `select * from payment_requests
      where status = 'approved' and issuer_id is not null
        and (hold_check_at <= $1 or (hold_check_at is null and updated_at <= $2))
      order by hold_check_at nulls first limit $3`,
    [now, new Date(now.getTime() - limits.holdSyncFirstCheckMs), limits.holdSyncBatchMax],
  );
  const changed: string[] = [];
  const checkAgainAt = (id: string, at: Date) => config.db.query("update payment_requests set hold_check_at = $2 where id = $1 and status = 'approved'", [id, at]);
  const at = { publicBaseUrl: config.publicBaseUrl, now };
  await Promise.all(
    due.map(async (row) => {
      try {
        const issuer = await context.issuers.byId(row.issuer_id!);
        const base = `${issuer.route.baseUrl}/internal/v1/authorizations/${row.id}`;
        const status = await context.http.call('GET', base, { schema: settlementAuthorizationStatus, unavailable: 'issuer_unavailable' });
        let next: PaymentRequestRow | undefined;
        if (status.status === 'held' && status.hold_expires_at) {
          await checkAgainAt(row.id, new Date(Math.max(new Date(status.hold_expires_at).getTime(), now.getTime() + 1)));
          return;
        } else if (status.status === 'expired') {
          // Released now, by a reversal (idempotent): the payer's funds do not wait for the issuer's expiry pass.
          const reversal = await context.http.call('POST', `${base}/reversal`, { body: { nonce: row.attempt_nonce ?? randomBytes(16).toString('base64url') }, schema: settlementReversal, unavailable: 'issuer_unavailable' });
          if (reversal.status !== 'expired' && reversal.status !== 'voided') throw new KessaiError('issuer_unavailable', `a reversal of an expired hold answered ${reversal.status}`);
          next = await transition(config.db, row, 'hold_expired', { hold_check_at: null }, at);
        } else if (status.status === 'captured') {
          next = await transition(config.db, row, 'captured', { captured_minor: BigInt(status.captured_minor), hold_check_at: null }, at);
          if (next) config.logger.warn({ request: row.id }, 'hold sync: the issuer captured this authorization; adopted (the capture\'s answer was lost)');
        } else if (status.status === 'voided') {
          next = await transition(config.db, row, 'voided', { hold_check_at: null }, at);
          if (next) config.logger.warn({ request: row.id }, 'hold sync: the issuer voided this authorization; adopted (the void\'s answer was lost)');
        } else {
          config.logger.error({ request: row.id, issuerStatus: status.status }, 'hold sync: the issuer answered a state an approved request cannot have');
          await checkAgainAt(row.id, new Date(now.getTime() + limits.holdSyncMismatchRecheckMs));
          return;
        }
        if (next) changed.push(row.id);
      } catch (err) {
        if (!(err instanceof KessaiError)) throw err;
        config.logger.warn({ request: row.id, code: err.code }, 'hold sync: issuer did not answer; asking again later');
        await checkAgainAt(row.id, new Date(now.getTime() + limits.holdSyncRetryMs));
      }
    }),
  );
  if (changed.length > 0) config.logger.info({ requests: changed }, 'step 409: adopted the issuer\'s state of these holds');
  return changed;
}
