/**
 * Steps 404–407 at the authentication server. The checks run in this order, one rule each:
 *   1. the request is this terminal's to answer, still pending and not expired;
 *   2. the approval is signed by the credential record's device key and names exactly this
 *      request, merchant (id and name), amount, currency and items, and is fresh (the approval rule);
 *   3. the sealed credential's header is bound to this credential and device key (credential-binding rule);
 *   4. the nonce is spent and the intent saved (status `authorizing`) before calling out;
 *   5. step 405: convert the credential (re-seal in memory, or pass through untouched);
 *   6. step 406: forward to the issuer over mutual TLS;
 *   7. step 407: verify the issuer's signed decision, record it and tell the merchant.
 * On any failure after step 4 the request returns to `pending`: the issuer answers a second
 * approval for the same request with the decision it already made, so nothing is charged twice.
 */
import { importJWK } from 'jose';
import {
  approvalPayload,
  authorizationPayload,
  authorizeResponse,
  checkApproval,
  checkCredentialBinding,
  KessaiError,
  readHeader,
  itemsHash,
  typ,
  verifyJson,
  type ApprovalPayload,
  type ApproveRequest,
  type AuthorizationPayload,
  type TerminalOutcome,
} from '@kessai/protocol';
import { sqlState } from '@kessai/service';
import type { TerminalCaller } from './callers.ts';
import type { AuthContext } from './context.ts';
import { passThrough } from './conversion/pass-through.ts';
import { renewedForTerminal } from './conversion/renew.ts';
import { reseal } from './conversion/reseal.ts';
import type { Issuer } from './issuers.ts';
import { loadPaymentRequest, transitionWithEvent, type PaymentRequestRow } from './payment-requests.ts';
import { timed } from './server-timing.ts';

export async function requestForTerminal(context: AuthContext, terminal: TerminalCaller, id: string, now: Date): Promise<PaymentRequestRow> {
  const { config } = context;
  const row = await loadPaymentRequest(config.db, id, now, config.publicBaseUrl);
  if (row.wallet_handle !== null && row.wallet_handle !== terminal.credentialId) throw new KessaiError('payment_request_not_found');
  if (row.credential_id !== null && row.credential_id !== terminal.credentialId) throw new KessaiError('payment_request_not_found');
  return row;
}

function requireAnswerable(row: PaymentRequestRow): void {
  if (row.status === 'expired') throw new KessaiError('payment_request_expired');
  if (row.status !== 'pending') throw new KessaiError('payment_request_not_pending', `payment request is ${row.status}`);
}

/** The approval rule (packages/protocol/src/checks/approval.ts) against this server's record of the request and merchant. */
async function verifiedApproval(context: AuthContext, terminal: TerminalCaller, row: PaymentRequestRow, approval: string, now: Date): Promise<ApprovalPayload> {
  const deviceKey = (await importJWK(terminal.deviceJwk, 'ES256')) as CryptoKey;
  const { value } = await verifyJson(approval, deviceKey, typ.approval, 'approval_invalid');
  const parsed = approvalPayload.safeParse(value);
  if (!parsed.success) throw new KessaiError('approval_invalid');
  const [merchant] = await context.config.db.query<{ name: string }>('select name from merchants where id = $1', [row.merchant_id]);
  const expected = { rid: row.id, mid: row.merchant_id, mnm: merchant?.name ?? '', amt: BigInt(row.amount_minor).toString(), cur: row.currency, ih: await itemsHash(row.line_items) };
  return checkApproval(parsed.data, expected, now.getTime());
}

/**
 * Spends the approval's nonce and marks the request `authorizing` (and the credential used), in one
 * statement: the nonce is inserted only if the request was still pending, and a duplicate nonce
 * aborts the whole statement (23505).
 */
async function saveIntent(context: AuthContext, terminal: TerminalCaller, row: PaymentRequestRow, approval: ApprovalPayload): Promise<PaymentRequestRow> {
  const { db } = context.config;
  let saved: unknown[];
  try {
    saved = await db.query(
      `with intent as (update payment_requests set status = 'authorizing', credential_id = $2, issuer_id = $3, updated_at = now() where id = $1 and status = 'pending' returning id),
       used as (update credentials set last_used_at = now() where id = $2 and exists (select 1 from intent))
       insert into approval_nonces (nonce, request_id) select $4, id from intent returning request_id`,
      [row.id, terminal.credentialId, terminal.issuerId, approval.nonce],
    );
  } catch (err) {
    if (sqlState(err) === '23505') throw new KessaiError('approval_replayed');
    throw err;
  }
  if (saved.length === 0) {
    const spent = await db.query('select 1 from approval_nonces where nonce = $1', [approval.nonce]);
    throw new KessaiError(spent.length > 0 ? 'approval_replayed' : 'payment_request_not_pending');
  }
  return { ...row, status: 'authorizing', credential_id: terminal.credentialId, issuer_id: terminal.issuerId };
}

/** Step 405: the conversion the issuer asked for in its metadata. */
async function convert(context: AuthContext, issuer: Issuer, sealedCredential: string): Promise<string> {
  if (issuer.metadata.conversion_mode === 'pass_through') return passThrough(sealedCredential);
  return reseal(sealedCredential, context.config.keys, issuer.keys.current('enc'));
}

async function verifyDecision(issuer: Issuer, jws: string, row: PaymentRequestRow): Promise<AuthorizationPayload> {
  const { value } = await verifyJson(jws, (kid) => issuer.keys.byKid(kid)?.publicKey, typ.authorization, 'issuer_refused');
  const parsed = authorizationPayload.safeParse(value);
  if (!parsed.success) throw new KessaiError('issuer_refused', 'unreadable authorization');
  const decision = parsed.data;
  if (decision.iss !== issuer.route.id || decision.rid !== row.id || decision.amt !== BigInt(row.amount_minor).toString() || decision.cur !== row.currency || decision.mid !== row.merchant_id) {
    throw new KessaiError('issuer_refused', 'authorization does not match the request');
  }
  return decision;
}

export async function approve(context: AuthContext, terminal: TerminalCaller, id: string, body: ApproveRequest, now: Date): Promise<TerminalOutcome> {
  const { config } = context;
  const row = await requestForTerminal(context, terminal, id, now);
  requireAnswerable(row);
  const approval = await verifiedApproval(context, terminal, row, body.approval, now);
  checkCredentialBinding(readHeader(body.sealed_credential, 'credential_invalid'), terminal);
  const issuer = await context.issuers.byId(terminal.issuerId);
  const authorizing = await saveIntent(context, terminal, row, approval);
  let decision: AuthorizationPayload;
  let jws: string;
  let renewed: string | undefined;
  try {
    const converted = await timed('conversion', () => convert(context, issuer, body.sealed_credential));
    config.logger.info({ request: row.id, mode: issuer.metadata.conversion_mode }, 'step 405: credential converted');
    const forwarded = { request: { rid: row.id, mid: row.merchant_id, amt: approval.amt, cur: approval.cur, line_items: row.line_items }, sealed_credential: converted, approval: body.approval, pin: body.pin };
    ({ authorization: jws, sealed_credential: renewed } = await timed('authorization', () => context.http.call('POST', `${issuer.route.baseUrl}/internal/v1/authorizations`, { body: forwarded, schema: authorizeResponse, unavailable: 'issuer_unavailable' })));
    decision = await verifyDecision(await context.issuers.withKid(issuer, readHeader(jws, 'issuer_refused').kid), jws, row);
  } catch (err) {
    await config.db.query("update payment_requests set status = 'pending', credential_id = null, issuer_id = null, updated_at = now() where id = $1 and status = 'authorizing'", [row.id]);
    // The issuer retired the cipher 2 key this server still had cached: fetch its keys again for the next attempt.
    if (err instanceof KessaiError && err.code === 'key_retired') context.issuers.forget(issuer.route.id);
    throw err;
  }
  // Step 407: record the outcome and tell the merchant, in one statement.
  const status = decision.decision === 'approved' ? 'approved' : 'declined';
  const recorded = await timed('record', () =>
    transitionWithEvent(config.db, authorizing, { status, authorization_jws: jws, decline_code: decision.code }, status === 'approved' ? 'payment_request.approved' : 'payment_request.declined', config.publicBaseUrl, now),
  );
  if (!recorded) throw new Error(`payment request ${row.id} left authorizing while this approval ran`);
  config.logger.info({ request: row.id, decision: decision.decision, code: decision.code }, 'step 407: outcome recorded');
  return { ...outcomeOf(recorded), ...(await renewedForTerminal(context, terminal, issuer, body.sealed_credential, renewed)) };
}

export function outcomeOf(row: PaymentRequestRow): TerminalOutcome {
  return { id: row.id, status: row.status, decline_code: row.decline_code, authorization: row.authorization_jws };
}

/** The payer says no (step 403's other answer). */
export async function decline(context: AuthContext, terminal: TerminalCaller, id: string, now: Date): Promise<TerminalOutcome> {
  const { config } = context;
  const row = await requestForTerminal(context, terminal, id, now);
  requireAnswerable(row);
  const cancelled = await transitionWithEvent(config.db, row, { status: 'cancelled', decline_code: 'payer_declined', credential_id: terminal.credentialId }, 'payment_request.cancelled', config.publicBaseUrl, now);
  if (!cancelled) throw new KessaiError('payment_request_not_pending');
  return outcomeOf(cancelled);
}
