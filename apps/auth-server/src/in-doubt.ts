/**
 * Authorizations in doubt (docs/operations.md, "Failure semantics"): a request left `authorizing`
 * — the issuer's answer was lost (a timeout, a 5xx, a broken connection), or this server died
 * while it waited — is resolved by the worker, never by the terminal:
 *   1. the status inquiry (`GET /internal/v1/authorizations/{rid}`, mutual TLS): the issuer's
 *      stored decision, verified as step 407 verifies it, is adopted — approved or declined — and
 *      the merchant is told, as if the answer had arrived;
 *   2. the issuer has none: a reversal (`POST …/{rid}/reversal` with the attempt's nonce) spends the
 *      nonce there, so the authorization can no longer arrive, and the request is pending again
 *      (the payer may answer once more; past its expiry the expiry pass ends it);
 *   3. a decision that does not verify cannot be completed: the reversal releases its hold (one
 *      under a key this server has not fetched yet is asked about again instead);
 *   4. the issuer cannot be reached: asked again with back-off (inDoubtFirstCheckMs doubling to
 *      inDoubtRetryMsMax), so a request is resolved within that long after the fault clears.
 */
import { KessaiError, limits, readHeader, settlementAuthorizationStatus, settlementReversal, type SettlementAuthorizationStatus } from '@kessai/protocol';
import { verifyDecision } from './approval.ts';
import type { AuthContext } from './context.ts';
import type { Issuer } from './issuers.ts';
import type { PaymentRequestRow } from './payment-requests.ts';
import { transition, type PaymentEvent } from './payment-state.ts';
import { workDueAt } from './work-signals.ts';

/** One pass: resolves the authorizing requests whose check is due; answers how many it settled. */
export async function resolveInDoubt(context: AuthContext, now: Date): Promise<number> {
  const { config } = context;
  // Claimed for inDoubtClaimMs (resolve_at moved on), so another process skips them meanwhile; a
  // process that dies mid-resolution leaves them to be claimed again once the claim has run out.
  const due = await config.db.query<PaymentRequestRow>(
    `update payment_requests set resolve_at = $3
      where id in (select id from payment_requests where status = 'authorizing' and resolve_at <= $1 order by resolve_at limit $2 for update skip locked)
      returning *`,
    [now, limits.inDoubtBatchMax, new Date(now.getTime() + limits.inDoubtClaimMs)],
  );
  const settled = await Promise.all(
    due.map(async (row) => {
      try {
        return await resolveOne(context, row, now);
      } catch (err) {
        if (!(err instanceof KessaiError)) throw err;
        const waitMs = Math.min(limits.inDoubtFirstCheckMs * 2 ** row.resolve_attempts, limits.inDoubtRetryMsMax);
        config.logger.warn({ request: row.id, code: err.code, attempts: row.resolve_attempts + 1 }, 'in doubt: the issuer did not answer; asking again');
        const resolveAt = new Date(now.getTime() + waitMs);
        await config.db.query(
          "update payment_requests set resolve_at = $2, resolve_attempts = resolve_attempts + 1 where id = $1 and status = 'authorizing'",
          [row.id, resolveAt],
        );
        workDueAt(config.db, resolveAt); // asked again then, not at a later slow poll (worker.ts)
        return false;
      }
    }),
  );
  return settled.filter(Boolean).length;
}

/** The attempt's nonce stays with an adopted outcome: a later reversal of its hold names it. */
const cleared = { resolve_at: null, resolve_attempts: 0 } as const;

async function resolveOne(context: AuthContext, row: PaymentRequestRow, now: Date): Promise<boolean> {
  const { config } = context;
  if (!row.issuer_id || !row.attempt_nonce) throw new Error(`authorizing request ${row.id} names no issuer or nonce`);
  const issuer = await context.issuers.byId(row.issuer_id);
  const base = `${issuer.route.baseUrl}/internal/v1/authorizations/${row.id}`;
  let status: SettlementAuthorizationStatus | null;
  try {
    status = await context.http.call('GET', base, { schema: settlementAuthorizationStatus, unavailable: 'issuer_unavailable' });
  } catch (err) {
    if (!(err instanceof KessaiError && err.code === 'authorization_not_found')) throw err;
    status = await reverse(context, issuer, row);
  }
  const at = { publicBaseUrl: config.publicBaseUrl, now };
  if (status === null) {
    const next = await transition(config.db, row, 'reversed', { ...cleared, attempt_nonce: null, credential_id: null, issuer_id: null }, at);
    config.logger.info({ request: row.id, settled: next !== undefined }, 'in doubt: the issuer had no authorization; reversed, the request is pending again');
    return next !== undefined;
  }
  const { event, change } = await adoption(context, issuer, row, status);
  const next = await transition(config.db, row, event, { ...cleared, ...change }, at);
  config.logger.info({ request: row.id, event, settled: next !== undefined }, 'in doubt: resolved by the issuer\'s answer');
  return next !== undefined;
}

/** The reversal: null when the issuer had no authorization (its nonce is spent now), else the authorization as the reversal left it. */
async function reverse(context: AuthContext, issuer: Issuer, row: PaymentRequestRow): Promise<SettlementAuthorizationStatus | null> {
  const answer = await context.http.call('POST', `${issuer.route.baseUrl}/internal/v1/authorizations/${row.id}/reversal`, { body: { nonce: row.attempt_nonce }, schema: settlementReversal, unavailable: 'issuer_unavailable' });
  if (answer.status === 'reversed') return null;
  if (!answer.authorization) throw new KessaiError('issuer_unavailable', 'a reversal answered no authorization');
  return answer.authorization;
}

/** What the issuer's authorization makes of an authorizing request: its decision adopted, or — when that cannot be completed — reversed. */
async function adoption(context: AuthContext, issuer: Issuer, row: PaymentRequestRow, status: SettlementAuthorizationStatus): Promise<{ event: PaymentEvent; change: Partial<PaymentRequestRow> }> {
  if (status.status === 'held' || status.status === 'declined') {
    // A key this server does not have yet (the issuer rotated it; its key set may not be fetched
    // again so soon) is no reason to void the payer's payment: ask again later.
    const kid = readHeader(status.authorization, 'issuer_refused').kid;
    const keyed = await context.issuers.withKid(issuer, kid);
    if (typeof kid !== 'string' || !keyed.keys.byKid(kid)) throw new KessaiError('issuer_unavailable', 'the issuer signed with a key this server has not fetched yet');
    try {
      const decision = await verifyDecision(keyed, status.authorization, row);
      if (decision.decision === 'approved' && status.status === 'held') return { event: 'inquiry_approved', change: { authorization_jws: status.authorization, decline_code: null } };
      if (decision.decision === 'declined') return { event: 'inquiry_declined', change: { authorization_jws: status.authorization, decline_code: decision.code } };
    } catch (err) {
      if (!(err instanceof KessaiError) || err.code === 'issuer_unavailable') throw err;
    }
    // A decision this server cannot verify (or that contradicts its status) is not completed: release its hold.
    context.config.logger.warn({ request: row.id }, 'in doubt: the issuer\'s decision does not verify; reversing it');
    const after = await reverse(context, issuer, row);
    if (after?.status === 'held') throw new KessaiError('issuer_unavailable', 'the reversal left the hold in place');
    // A decline holds nothing: the request is declined (without a decision this server could verify).
    if (after?.status === 'declined') return { event: 'inquiry_declined', change: { authorization_jws: null, decline_code: null } };
    return { event: after?.status === 'expired' ? 'inquiry_expired' : 'inquiry_voided', change: {} };
  }
  if (status.status === 'voided') return { event: 'inquiry_voided', change: {} };
  if (status.status === 'expired') return { event: 'inquiry_expired', change: {} };
  // Captured: only a capture through this server could do that, and it never saw the approval.
  throw new KessaiError('issuer_unavailable', `the issuer answered ${status.status} for a request still authorizing here`);
}
