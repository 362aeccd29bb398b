/**
 * Steps 404–407 at the authentication server. The checks run in this order, one rule each:
 *   1. the request is this terminal's to answer, still pending and not expired;
 *   2. the approval is signed by the credential record's device key and names exactly this
 *      request, merchant (id and name), amount, currency, items and mode (`lm`: the mode of the key
 *      that created the request), and is fresh (the approval rule);
 *   3. the sealed credential's header is bound to this credential and device key (credential-binding rule);
 *   4. the nonce is spent and the intent saved (status `authorizing`, the attempt's nonce kept)
 *      before calling out;
 *   5. step 405: convert the credential (re-seal in memory, or pass through untouched);
 *   6. step 406: forward to the issuer over mutual TLS, with the deadline (Kessai-Deadline-Ms,
 *      limits.authorizationDeadlineMs) past which it holds nothing;
 *   7. step 407: verify the issuer's signed decision, record it and tell the merchant.
 * A failure before the call, or a refusal the issuer answered (4xx: nothing held), returns the
 * request to `pending`. Any other failure — no answer, a 5xx, an answer that does not verify — may
 * have left a hold: the request stays `authorizing` (in doubt), the terminal is answered so, and
 * the in-doubt worker (in-doubt.ts) resolves it by asking the issuer, or reverses it.
 */
import {
  approvalPayload,
  authorizationPayload,
  authorizeResponse,
  checkApproval,
  checkCredentialBinding,
  KessaiError,
  limits,
  readHeader,
  itemsHash,
  typ,
  verifyJson,
  type ApprovalPayload,
  type ApproveRequest,
  type AuthorizationPayload,
  type TerminalOutcome,
  importPublicKey,
} from '@kessai/protocol';
import { deadlineHeaders, sqlState } from '@kessai/service';
import type { TerminalCaller } from './callers.ts';
import type { AuthContext } from './context.ts';
import { passThrough } from './conversion/pass-through.ts';
import { renewedForTerminal } from './conversion/renew.ts';
import { reseal } from './conversion/reseal.ts';
import type { Issuer } from './issuers.ts';
import {
  loadPaymentRequest,
  loadWithMerchantName,
  statusAt,
  type PaymentRequestRow,
  type PaymentRequestWithMerchant,
} from './payment-requests.ts';
import { ruleFor, transition } from './payment-state.ts';
import { timed } from './server-timing.ts';
import { workDueAt } from './work-signals.ts';

/** The request as a terminal may see it (with its merchant's name, read in the same statement). */
export async function requestForTerminal(
  context: AuthContext,
  terminal: TerminalCaller,
  id: string,
): Promise<PaymentRequestWithMerchant> {
  const { config } = context;
  const row = await loadWithMerchantName(config.db, id);
  if (row.wallet_handle !== null && row.wallet_handle !== terminal.credentialId) throw new KessaiError('payment_request_not_found');
  if (row.credential_id !== null && row.credential_id !== terminal.credentialId) throw new KessaiError('payment_request_not_found');
  return row;
}

function requireAnswerable(row: PaymentRequestRow, now: Date): void {
  if (statusAt(row, now) === 'expired') throw new KessaiError('payment_request_expired');
  if (row.status !== 'pending') throw new KessaiError('payment_request_not_pending', `payment request is ${row.status}`);
}

/** The approval rule (packages/protocol/src/checks/approval.ts) against this server's record of the request and merchant. */
async function verifiedApproval(
  terminal: TerminalCaller,
  row: PaymentRequestWithMerchant,
  approval: string,
  now: Date,
): Promise<ApprovalPayload> {
  const deviceKey = await importPublicKey(terminal.deviceJwk, 'ES256');
  const { value } = await verifyJson(approval, deviceKey, typ.approval, 'approval_invalid');
  const parsed = approvalPayload.safeParse(value);
  if (!parsed.success) throw new KessaiError('approval_invalid');
  const expected = {
    rid: row.id,
    mid: row.merchant_id,
    mnm: row.merchant_name ?? '',
    amt: BigInt(row.amount_minor).toString(),
    cur: row.currency,
    ih: await itemsHash(row.line_items),
    lm: row.livemode,
  };
  return checkApproval(parsed.data, expected, now.getTime());
}

/**
 * Spends the approval's nonce and marks the request `authorizing` (and the credential used), in one
 * statement: the nonce is inserted only if the request was still pending, and a duplicate nonce
 * aborts the whole statement (23505). The attempt's nonce is kept for a reversal, and the in-doubt
 * worker will look at the request after the deadline unless its answer is recorded first.
 */
async function saveIntent(context: AuthContext, terminal: TerminalCaller, row: PaymentRequestRow, approval: ApprovalPayload, deadlineAt: number): Promise<PaymentRequestRow> {
  const { db } = context.config;
  const rule = ruleFor(row.status, 'approval_saved');
  if (!rule) throw new KessaiError('payment_request_not_pending');
  // The in-doubt worker looks after the call's deadline has passed, never while it may still be answered.
  const resolveAt = new Date(deadlineAt + limits.inDoubtFirstCheckMs);
  let saved: PaymentRequestRow[];
  try {
    saved = await db.query<PaymentRequestRow>(
      `with intent as (update payment_requests set status = $6, credential_id = $2, issuer_id = $3, attempt_nonce = $4, resolve_at = $5, resolve_attempts = 0, decline_code = null, updated_at = now()
                        where id = $1 and status = $7 and expires_at > $8 returning *),
       used as (update credentials set last_used_at = now() where id = $2 and exists (select 1 from intent)),
       spent as (insert into approval_nonces (nonce, request_id) select $4, id from intent)
       select * from intent`,
      [row.id, terminal.credentialId, terminal.issuerId, approval.nonce, resolveAt, rule.to, rule.from, new Date()],
    );
  } catch (err) {
    if (sqlState(err) === '23505') throw new KessaiError('approval_replayed');
    throw err;
  }
  const [authorizing] = saved;
  if (!authorizing) {
    const spent = await db.query('select 1 from approval_nonces where nonce = $1', [approval.nonce]);
    if (spent.length > 0) throw new KessaiError('approval_replayed');
    // Expired meanwhile (the statement's own time is what counts, not the time the checks began).
    const [now] = await db.query<PaymentRequestRow>('select * from payment_requests where id = $1', [row.id]);
    throw new KessaiError(now && statusAt(now, new Date()) === 'expired' ? 'payment_request_expired' : 'payment_request_not_pending');
  }
  return authorizing;
}

const deadlineMs = (context: AuthContext) => context.config.authorizationDeadlineMs ?? limits.authorizationDeadlineMs;

/**
 * Whether a failed call to the issuer is an answer that nothing was held: no connection was ever
 * made (refused: the request never left), a refusal it answered
 * (4xx, but not request_timeout: its handler may still run), its ledger queue full, its load
 * shedding (`overloaded`, refused before any work), or its refusal to start past the deadline. Anything else — no answer, a 5xx, an answer that does not verify —
 * leaves the authorization in doubt.
 */
function nothingHeld(err: unknown): boolean {
  if (!(err instanceof KessaiError)) return false;
  if (err.notSent) return true;
  if (err.code === 'ledger_busy' || err.code === 'deadline_exceeded' || err.code === 'rate_limited' || err.code === 'overloaded') return true;
  return err.status >= 400 && err.status < 500 && err.code !== 'request_timeout';
}

/** Step 405: the conversion the issuer asked for in its metadata. */
async function convert(context: AuthContext, issuer: Issuer, sealedCredential: string): Promise<string> {
  if (issuer.metadata.conversion_mode === 'pass_through') return passThrough(sealedCredential);
  return reseal(sealedCredential, context.config.keys, issuer.keys.current('enc'));
}

/** Step 407's check of the issuer's signed decision: its key, and exactly this request, amount, currency and merchant. */
export async function verifyDecision(issuer: Issuer, jws: string, row: PaymentRequestRow): Promise<AuthorizationPayload> {
  const { value } = await verifyJson(jws, (kid) => issuer.keys.byKid(kid)?.publicKey, typ.authorization, 'issuer_refused');
  const parsed = authorizationPayload.safeParse(value);
  if (!parsed.success) throw new KessaiError('issuer_refused', 'unreadable authorization');
  const decision = parsed.data;
  if (decision.iss !== issuer.route.id || decision.rid !== row.id || decision.amt !== BigInt(row.amount_minor).toString() || decision.cur !== row.currency || decision.mid !== row.merchant_id) {
    throw new KessaiError('issuer_refused', 'authorization does not match the request');
  }
  return decision;
}

export async function approve(context: AuthContext, terminal: TerminalCaller, id: string, body: ApproveRequest, now: Date, arrivedAtMs?: number): Promise<TerminalOutcome> {
  const { config } = context;
  const row = await requestForTerminal(context, terminal, id);
  requireAnswerable(row, now);
  const approval = await verifiedApproval(terminal, row, body.approval, now);
  checkCredentialBinding(readHeader(body.sealed_credential, 'credential_invalid'), terminal);
  const issuer = await context.issuers.byId(terminal.issuerId);
  // An approval that waited here too long is not started: its terminal may have given up and told
  // the payer "not paid" (it counts on nothing being saved after limits.approvalSaveWindowMs).
  if (arrivedAtMs !== undefined && Date.now() - arrivedAtMs > limits.approvalSaveWindowMs) throw new KessaiError('deadline_exceeded', 'the approval waited too long at the authentication server; nothing was done');
  // The call's deadline is fixed when the intent is saved; what is left of it is sent along and waited for.
  const deadlineAt = Date.now() + deadlineMs(context);
  const authorizing = await saveIntent(context, terminal, row, approval, deadlineAt);
  const transitionContext = { publicBaseUrl: config.publicBaseUrl, now };
  let decision: AuthorizationPayload;
  let jws: string;
  let renewed: string | undefined;
  let sent = false;
  try {
    const converted = await timed('conversion', () => convert(context, issuer, body.sealed_credential));
    config.logger.info({ request: row.id, mode: issuer.metadata.conversion_mode }, 'step 405: credential converted');
    const forwarded = { request: { rid: row.id, mid: row.merchant_id, amt: approval.amt, cur: approval.cur, line_items: row.line_items }, sealed_credential: converted, approval: body.approval, pin: body.pin };
    const budgetMs = deadlineAt - Date.now();
    if (budgetMs <= 0) throw new KessaiError('deadline_exceeded', 'the deadline passed before the call to the issuer');
    sent = true;
    ({ authorization: jws, sealed_credential: renewed } = await timed('authorization', () =>
      context.http.call('POST', `${issuer.route.baseUrl}/internal/v1/authorizations`, {
        body: forwarded,
        schema: authorizeResponse,
        unavailable: 'issuer_unavailable',
        headers: deadlineHeaders(budgetMs),
        timeoutMs: budgetMs,
      }),
    ));
    decision = await verifyDecision(await context.issuers.withKid(issuer, readHeader(jws, 'issuer_refused').kid), jws, row);
  } catch (err) {
    if (!sent || nothingHeld(err)) {
      await transition(config.db, authorizing, 'issuer_refused', { credential_id: null, issuer_id: null, attempt_nonce: null, resolve_at: null }, transitionContext);
      // The issuer retired the cipher 2 key this server still had cached: fetch its keys again for the next attempt.
      if (err instanceof KessaiError && err.code === 'key_retired') context.issuers.forget(issuer.route.id);
      throw err;
    }
    // In doubt: the issuer may hold the funds. The in-doubt worker asks it shortly (in-doubt.ts);
    // the terminal is told `authorizing` and asks for the outcome (never "not paid").
    const resolveAt = new Date(now.getTime() + limits.inDoubtFirstCheckMs);
    await config.db.query("update payment_requests set resolve_at = $2 where id = $1 and status = 'authorizing'", [
      row.id,
      resolveAt,
    ]);
    workDueAt(config.db, resolveAt); // the worker asks then, not at its next slow poll (worker.ts)
    config.logger.warn({ request: row.id, code: err instanceof KessaiError ? err.code : 'internal_error' }, 'step 406: the issuer\'s answer was lost; the authorization is in doubt');
    return outcomeOf(authorizing);
  }
  // Step 407: record the outcome and tell the merchant, in one statement. A wrong PIN with tries
  // left is no outcome: the request is pending again and the payer may answer once more.
  const approved = decision.decision === 'approved';
  const retry = decision.code === 'pin_incorrect' && decision.pin_tries_left !== undefined;
  let recorded: PaymentRequestRow | undefined;
  try {
    recorded = await timed('record', () =>
      retry
        ? transition(config.db, authorizing, 'pin_retry', { credential_id: null, issuer_id: null, attempt_nonce: null, resolve_at: null, decline_code: decision.code }, transitionContext)
        : transition(config.db, authorizing, approved ? 'issuer_approved' : 'issuer_declined', { authorization_jws: jws, decline_code: decision.code, resolve_at: null }, transitionContext),
    );
  } catch (err) {
    // The issuer decided but this server could not record it (its database failed): still in doubt,
    // and the in-doubt worker adopts the issuer's stored decision once the database is back.
    if (!(err instanceof KessaiError)) throw err;
    config.logger.warn({ request: row.id, code: err.code }, 'step 407: the decision could not be recorded; the authorization is in doubt');
    return outcomeOf(authorizing);
  }
  // The in-doubt worker resolved it meanwhile (this answer came after the deadline): answer what it recorded.
  if (!recorded) return outcomeOf(await loadPaymentRequest(config.db, row.id));
  config.logger.info({ request: row.id, decision: decision.decision, code: decision.code }, 'step 407: outcome recorded');
  if (retry) return { ...outcomeOf(recorded), pin_tries_left: decision.pin_tries_left };
  return { ...outcomeOf(recorded), ...(await renewedForTerminal(context, terminal, issuer, body.sealed_credential, renewed)) };
}

export function outcomeOf(row: PaymentRequestRow, now: Date = new Date()): TerminalOutcome {
  return { id: row.id, status: statusAt(row, now), decline_code: row.decline_code, authorization: row.authorization_jws };
}

/** The payer says no (step 403's other answer). */
export async function decline(context: AuthContext, terminal: TerminalCaller, id: string, now: Date): Promise<TerminalOutcome> {
  const { config } = context;
  const row = await requestForTerminal(context, terminal, id);
  requireAnswerable(row, now);
  const cancelled = await transition(config.db, row, 'payer_declined', { decline_code: 'payer_declined', credential_id: terminal.credentialId }, { publicBaseUrl: config.publicBaseUrl, now });
  if (!cancelled) throw new KessaiError('payment_request_not_pending');
  return outcomeOf(cancelled);
}
