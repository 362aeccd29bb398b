/**
 * Step 406: authorize a payment. The issuer trusts only itself and the payer's device: what the
 * authentication server forwards is checked against this server's own registry, merchants and
 * keys. The checks run in this order, each one small:
 *   1. open the credential (cipher 2); its header is bound to its content (credential-binding rule);
 *   2. the credential is in this issuer's registry, active, with this device key (registry.ts),
 *      and its budget and its card's (internalCredential, internalCard) are not spent;
 *   3. the merchant is onboarded here (merchants.ts);
 *   4. the approval is signed by the registered device key and names exactly this request, the
 *      merchant under its onboarded name, the amount, currency and the hash of the line items —
 *      computed here — and is fresh (the approval rule, packages/protocol/src/checks/approval.ts);
 *      its mode (`lm`) is the payer's device's word, compared with the card's own in step 6;
 *   5. the PIN block is the one the approval signed (its hash, `pbh`), opens, and is bound to this
 *      request, the approval's nonce and the device key;
 *   6. as one job of the ledger's group commit (ledger/group-commit.ts): answer a retry with the
 *      stored decision, refuse deadline_exceeded if the broker's deadline (Kessai-Deadline-Ms) has
 *      passed, spend the approval nonce (a reversal may have spent it: approval_replayed), find the card (it must be the registered one),
 *      check status, velocity, the credential's PIN lock and expiry, verify the PIN (keyed, pin.ts),
 *      count a wrong one, check the card's mode against `lm` (a test card pays only a test request,
 *      a live card only a live one: livemode_mismatch), currency and funds, and place the hold — a
 *      pending transfer that expires after holdTimeoutSeconds;
 *   7. step 407: sign the decision.
 */
import {
  approvalPayload,
  authorizationPayload,
  checkApproval,
  checkPaymentPinBinding,
  checkPinBlockSigned,
  isExpired,
  itemsHash,
  KessaiError,
  newId,
  openJson,
  parseAmount,
  pinPlaintext,
  readJwsPayload,
  Secret,
  signJson,
  typ,
  verifyJson,
  limits,
  type ApprovalPayload,
  type AuthorizationPayload,
  type AuthorizeRequest,
  type Currency,
  type DeclineCode,
  type JWK,
  importPublicKey,
} from '@kessai/protocol';
import { checkDeadline, spendRateLimit, sqlState, type Queryable, type RateLimiters } from '@kessai/service';
import type { SettlementConfig } from './config.ts';
import { findCard, openCredential, type CardRow, type OpenedCredential } from './credential.ts';
import type { GroupCommit } from './ledger/group-commit.ts';
import { createAccount, createTransfers } from './ledger/store.ts';
import { knownMerchant } from './merchants.ts';
import { countWrongPin, credentialPinLocked, resetPinFailures, velocityExceeded, type PinHolder, type WrongPin } from './pin.ts';
import { markCredentialUsed, registeredCredential, type RegisteredCredential } from './registry.ts';

/** The issuer's decision: the payload it signed and the signed token (compact JWS), together. */
export interface Decision {
  payload: AuthorizationPayload;
  jws: string;
}

export async function authorize(config: SettlementConfig, ledger: GroupCommit, limiters: RateLimiters, body: AuthorizeRequest, now: Date, deadline?: number): Promise<Decision> {
  // step 406: the issuer opens the credential and authorizes
  const credential = await openCredential(body.sealed_credential, config.keys, config.issuerId);
  const registered = await registeredCredential(config.db, credential.credentialId, credential.deviceJkt);
  spendRateLimit(limiters, 'internalCredential', registered.id);
  spendRateLimit(limiters, 'internalCard', registered.pan_lookup);
  const merchant = await knownMerchant(config.db, body.request.mid);
  const approval = await verifiedApproval(body, credential.deviceJwk, merchant.name, now);
  await checkPinBlockSigned(body.pin, approval.pbh);
  const pin = await openPin(config, body.pin, { rid: body.request.rid, nonce: approval.nonce, dkt: credential.deviceJkt });
  const holder: PinHolder = { credentialId: registered.id, deviceJkt: registered.device_jkt };
  checkDeadline(deadline);
  return ledger.run(async (tx) => {
    const existing = await storedDecision(tx, body.request.rid, approval.nonce);
    if (existing) return existing;
    // Queued past the caller's deadline: it has given up (and will ask, or reverse); hold nothing.
    checkDeadline(deadline);
    await spendNonce(tx, approval.nonce, body.request.rid);
    const card = await registeredCard(tx, config, credential, registered);
    await markCredentialUsed(tx, registered.id);
    const pinOk = config.cardKeys.pin.matches(card.pin_verifier, card.pan_lookup, pin);
    const asked = { cur: body.request.cur, lm: approval.lm };
    const decline = await declineReason(config, tx, card, holder, credential.expiry.expose(), pinOk, asked, now);
    if (decline) return record(config, tx, body, approval, card.account_id, { decision: 'declined', ...decline }, now);
    const hold = await placeHold(config, tx, card.account_id, body, now);
    if (hold.result !== 'ok') return record(config, tx, body, approval, card.account_id, { decision: 'declined', code: 'insufficient_funds' }, now);
    return record(config, tx, body, approval, card.account_id, { decision: 'approved', code: null, holdTransferId: hold.id }, now);
  });
}

/** The card inside the credential, which must be the card the credential was registered for. */
async function registeredCard(tx: Queryable, config: SettlementConfig, credential: OpenedCredential, registered: RegisteredCredential): Promise<CardRow> {
  const card = await findCard(tx, config.cardKeys, credential, true);
  if (!card || card.pan_lookup !== registered.pan_lookup) throw new KessaiError('credential_unknown');
  return card;
}

/** The approval rule (packages/protocol/src/checks/approval.ts) against this issuer's own view of the request. */
async function verifiedApproval(body: AuthorizeRequest, deviceJwk: JWK, merchantName: string, now: Date): Promise<ApprovalPayload> {
  const deviceKey = await importPublicKey(deviceJwk, 'ES256');
  const { value } = await verifyJson(body.approval, deviceKey, typ.approval, 'approval_invalid');
  const parsed = approvalPayload.safeParse(value);
  if (!parsed.success) throw new KessaiError('approval_invalid');
  const { request } = body;
  return checkApproval(parsed.data, { rid: request.rid, mid: request.mid, mnm: merchantName, amt: request.amt, cur: request.cur, ih: await itemsHash(request.line_items) }, now.getTime());
}

async function openPin(config: SettlementConfig, jwe: string, binding: { rid: string; nonce: string; dkt: string }): Promise<Secret<string>> {
  const { header, value } = await openJson(jwe, config.keys, typ.pin, 'pin_invalid');
  const parsed = pinPlaintext.safeParse(value);
  if (!parsed.success) throw new KessaiError('pin_invalid');
  checkPaymentPinBinding(header as Record<string, unknown>, parsed.data, binding);
  return new Secret(parsed.data.pin);
}

/** The request's decision, or this attempt's wrong-PIN decline (another attempt of the request may follow one). */
async function storedDecision(tx: Queryable, rid: string, nonce: string): Promise<Decision | undefined> {
  const [row] = await tx.query<{ jws: string }>(
    `select jws from authorizations where request_id = $1
     union all select jws from pin_retry_declines where approval_nonce = $2 and request_id = $1
     limit 1`,
    [rid, nonce],
  );
  // A repeat: the token was signed by an earlier call (perhaps under a key since retired) and stored; read back, not
  // re-verified.
  return row && { jws: row.jws, payload: authorizationPayload.parse(readJwsPayload(row.jws, 'internal_error')) };
}

async function spendNonce(tx: Queryable, nonce: string, rid: string): Promise<void> {
  try {
    await tx.query('insert into approval_nonces (nonce, request_id) values ($1, $2)', [nonce, rid]);
  } catch (err) {
    if (sqlState(err) === '23505') throw new KessaiError('approval_replayed');
    throw err;
  }
}

async function declineReason(config: SettlementConfig, tx: Queryable, card: CardRow, holder: PinHolder, expiry: string, pinOk: boolean, asked: { cur: Currency; lm: boolean }, now: Date): Promise<WrongPin | undefined> {
  if (card.status === 'blocked') return { code: 'card_blocked' };
  if (card.status === 'locked') return { code: 'pin_locked' };
  if (await velocityExceeded(tx, card.pan_lookup, now)) return { code: 'pin_locked' };
  if (await credentialPinLocked(tx, holder)) return { code: 'credential_locked' };
  if (isExpired(expiry, now)) return { code: 'card_expired' };
  if (!pinOk) return countWrongPin(config.logger, tx, card, holder, now);
  await resetPinFailures(tx, card, holder);
  // The approval's mode (what the payer's device was shown) against the card's own: null is a card from before modes, live.
  if (asked.lm !== (card.test !== true)) return { code: 'livemode_mismatch' };
  const [account] = await tx.query<{ currency: string }>('select currency from ledger_accounts where id = $1', [card.account_id]);
  if (account?.currency !== asked.cur) return { code: 'currency_mismatch' };
  return undefined;
}

/** The onboarded merchant's ledger account in this currency, opened on its first payment in it. */
async function merchantAccount(tx: Queryable, merchantId: string, currency: Currency): Promise<string> {
  const [row] = await tx.query<{ account_id: string }>('select account_id from merchant_accounts where merchant_id = $1 and currency = $2', [merchantId, currency]);
  if (row) return row.account_id;
  const accountId = await createAccount(tx, 'merchant', currency);
  await tx.query('insert into merchant_accounts (merchant_id, currency, account_id) values ($1, $2, $3)', [merchantId, currency, accountId]);
  return accountId;
}

/** The hold: a pending transfer from the cardholder to the merchant, refused if it would overdraw. */
async function placeHold(config: SettlementConfig, tx: Queryable, cardAccountId: string, body: AuthorizeRequest, now: Date): Promise<{ result: 'ok'; id: string } | { result: 'exceeds_credits' }> {
  const currency = body.request.cur;
  const creditAccountId = await merchantAccount(tx, body.request.mid, currency);
  const id = newId('xfer');
  const timeoutSeconds = config.holdTimeoutSeconds ?? limits.holdTimeoutSecondsDefault;
  const [result] = await createTransfers(tx, [{ id, kind: 'pending', debitAccountId: cardAccountId, creditAccountId, amount: parseAmount(body.request.amt), currency, timeoutSeconds }], now);
  if (result === 'ok') return { result, id };
  if (result === 'exceeds_credits') return { result };
  throw new Error(`ledger refused a hold: ${result}`);
}

type Outcome = { decision: 'approved'; code: null; holdTransferId: string } | { decision: 'declined'; code: DeclineCode; triesLeft?: number };

/**
 * Step 407: sign the decision and keep it, so a retry gets the same answer. A wrong PIN with tries
 * left is not the request's decision: it is kept by its attempt's nonce only, and the payer may
 * answer the request again with a new approval (a new nonce).
 */
async function record(config: SettlementConfig, tx: Queryable, body: AuthorizeRequest, approval: Pick<ApprovalPayload, 'nonce' | 'lm'>, accountId: string, outcome: Outcome, now: Date): Promise<Decision> {
  const { nonce } = approval;
  const payload: AuthorizationPayload = {
    iss: config.issuerId,
    aid: newId('auth'),
    rid: body.request.rid,
    mid: body.request.mid,
    amt: body.request.amt,
    cur: body.request.cur,
    decision: outcome.decision,
    code: outcome.code,
    ...(outcome.decision === 'declined' && outcome.triesLeft !== undefined ? { pin_tries_left: outcome.triesLeft } : {}),
    lm: approval.lm,
    iat: Math.floor(now.getTime() / 1000),
  };
  const key = config.keys.current('sig');
  if (!key.privateKey) throw new Error('settlement signing key has no private part');
  // step 407: the decision is signed
  const jws = await signJson(payload, key.privateKey, { typ: typ.authorization, kid: key.kid });
  if (payload.pin_tries_left !== undefined) {
    await tx.query('insert into pin_retry_declines (approval_nonce, request_id, account_id, jws) values ($1, $2, $3, $4)', [nonce, payload.rid, accountId, jws]);
    config.logger.info({ authorization: payload.aid, request: payload.rid, decision: payload.decision, code: payload.code, triesLeft: payload.pin_tries_left }, 'step 407: wrong PIN, the request may be answered again');
    return { payload, jws };
  }
  await tx.query(
    `insert into authorizations (id, request_id, merchant_id, account_id, amount, currency, decision, decline_code, status, hold_transfer_id, jws, approval_nonce)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
    [payload.aid, payload.rid, payload.mid, accountId, parseAmount(payload.amt), payload.cur, payload.decision, payload.code, outcome.decision === 'approved' ? 'held' : 'declined', outcome.decision === 'approved' ? outcome.holdTransferId : null, jws, nonce],
  );
  config.logger.info({ authorization: payload.aid, request: payload.rid, decision: payload.decision, code: payload.code }, 'step 407: authorization signed');
  return { payload, jws };
}
