/**
 * Step 406: authorize a payment. The checks run in this order, each one small:
 *   1. open the credential (cipher 2) and check its header binding;
 *   2. verify the approval with the device key *inside* the credential and check it names exactly
 *      this request, merchant, amount, currency and items — so a compromised authentication
 *      server cannot charge more than the payer approved;
 *   3. open the PIN (encrypted by the terminal to this server, bound to the request id);
 *   4. check the PIN against the card's verifier (argon2 is slow: outside the ledger batch);
 *   5. as one job of the ledger's group commit (ledger/group-commit.ts): answer a retry with the
 *      stored decision, spend the approval nonce, find the card, check status, the credential's
 *      PIN lock and expiry, count a wrong PIN per account and per credential (pin.ts; each locks
 *      at its limit), check funds and place the hold — a pending transfer that
 *      expires after holdTimeoutSeconds;
 *   6. step 407: sign the decision.
 */
import {
  approvalPayload,
  isExpired,
  KessaiError,
  limits,
  newId,
  openJson,
  parseAmount,
  pinPlaintext,
  Secret,
  signJson,
  typ,
  verifyJson,
  type ApprovalPayload,
  type AuthorizationPayload,
  type AuthorizeRequest,
  type Currency,
  type DeclineCode,
  type JWK,
} from '@kessai/protocol';
import { importJWK } from 'jose';
import { sqlState, type Queryable } from '@kessai/service';
import type { SettlementConfig } from './config.ts';
import { findCard, openCredential } from './credential.ts';
import type { GroupCommit } from './ledger/group-commit.ts';
import { createAccount, createTransfers } from './ledger/store.ts';
import { countWrongPin, credentialPinLocked, pinHolderOf, pinMatches, resetPinFailures, type PinHolder } from './pin.ts';

export async function authorize(config: SettlementConfig, ledger: GroupCommit, body: AuthorizeRequest, now: Date): Promise<string> {
  const credential = await openCredential(body.sealed_credential, config.keys, config.issuerId);
  const approval = await checkApproval(body, credential.deviceJwk, now);
  const pin = await openPin(config, body.pin, body.request.rid);
  const unlocked = await findCard(config.db, config.cardKeys, credential, false);
  const pinChecked = unlocked ? { verifier: unlocked.pin_verifier, ok: await pinMatches(unlocked.pin_verifier, pin) } : undefined;
  const holder = await pinHolderOf(credential);
  return ledger.run(async (tx) => {
    const existing = await storedDecision(tx, body.request.rid);
    if (existing) return existing;
    await spendNonce(tx, approval.nonce, body.request.rid);
    const card = await findCard(tx, config.cardKeys, credential, true);
    if (!card) throw new KessaiError('account_not_found');
    // The verifier cannot change today; if it ever does between the two reads, check again.
    const pinOk = pinChecked?.verifier === card.pin_verifier ? pinChecked.ok : await pinMatches(card.pin_verifier, pin);
    const decline = await declineReason(config, tx, card, holder, credential.expiry.expose(), pinOk, body.request.cur as Currency, now);
    if (decline) return record(config, tx, body, card.account_id, { decision: 'declined', code: decline }, now);
    const hold = await placeHold(config, tx, card.account_id, body, now);
    if (hold.result !== 'ok') return record(config, tx, body, card.account_id, { decision: 'declined', code: 'insufficient_funds' }, now);
    return record(config, tx, body, card.account_id, { decision: 'approved', code: null, holdTransferId: hold.id }, now);
  });
}

async function checkApproval(body: AuthorizeRequest, deviceJwk: JWK, now: Date): Promise<ApprovalPayload> {
  const deviceKey = (await importJWK(deviceJwk, 'ES256')) as CryptoKey;
  const { value } = await verifyJson(body.approval, deviceKey, typ.approval, 'approval_invalid');
  const parsed = approvalPayload.safeParse(value);
  if (!parsed.success) throw new KessaiError('approval_invalid');
  const approval = parsed.data;
  const { request } = body;
  if (approval.rid !== request.rid || approval.mid !== request.mid || approval.amt !== request.amt || approval.cur !== request.cur || approval.ih !== request.ih) {
    throw new KessaiError('approval_mismatch');
  }
  const ageMs = now.getTime() - approval.iat * 1000;
  if (ageMs > limits.approvalAgeMsMax || ageMs < -limits.clockSkewMs) throw new KessaiError('approval_stale');
  return approval;
}

async function openPin(config: SettlementConfig, jwe: string, rid: string): Promise<Secret<string>> {
  const { header, value } = await openJson(jwe, config.keys, typ.pin, 'pin_invalid');
  const parsed = pinPlaintext.safeParse(value);
  if (!parsed.success || parsed.data.rid !== rid || header.rid !== rid) throw new KessaiError('pin_invalid');
  return new Secret(parsed.data.pin);
}

async function storedDecision(tx: Queryable, rid: string): Promise<string | undefined> {
  const [row] = await tx.query<{ jws: string }>('select jws from authorizations where request_id = $1', [rid]);
  return row?.jws;
}

async function spendNonce(tx: Queryable, nonce: string, rid: string): Promise<void> {
  try {
    await tx.query('insert into approval_nonces (nonce, request_id) values ($1, $2)', [nonce, rid]);
  } catch (err) {
    if (sqlState(err) === '23505') throw new KessaiError('approval_replayed');
    throw err;
  }
}

async function declineReason(config: SettlementConfig, tx: Queryable, card: { pan_lookup: string; account_id: string; status: string; pin_verifier: string; pin_failures: number }, holder: PinHolder, expiry: string, pinOk: boolean, currency: Currency, now: Date): Promise<DeclineCode | undefined> {
  if (card.status === 'blocked') return 'card_blocked';
  if (card.status === 'locked') return 'pin_locked';
  if (await credentialPinLocked(tx, holder)) return 'credential_locked';
  if (isExpired(expiry, now)) return 'card_expired';
  if (!pinOk) return countWrongPin(config.logger, tx, card, holder);
  await resetPinFailures(tx, card, holder);
  const [account] = await tx.query<{ currency: string }>('select currency from ledger_accounts where id = $1', [card.account_id]);
  if (account?.currency !== currency) return 'currency_mismatch';
  return undefined;
}

async function merchantAccount(tx: Queryable, merchantId: string, currency: Currency): Promise<string> {
  const [row] = await tx.query<{ account_id: string }>('select account_id from merchant_accounts where merchant_id = $1 and currency = $2', [merchantId, currency]);
  if (row) return row.account_id;
  const accountId = await createAccount(tx, 'merchant', currency);
  await tx.query('insert into merchant_accounts (merchant_id, currency, account_id) values ($1, $2, $3)', [merchantId, currency, accountId]);
  return accountId;
}

/** The hold: a pending transfer from the cardholder to the merchant, refused if it would overdraw. */
async function placeHold(config: SettlementConfig, tx: Queryable, cardAccountId: string, body: AuthorizeRequest, now: Date): Promise<{ result: 'ok'; id: string } | { result: 'exceeds_credits' }> {
  const currency = body.request.cur as Currency;
  const creditAccountId = await merchantAccount(tx, body.request.mid, currency);
  const id = newId('xfer');
  const timeoutSeconds = config.holdTimeoutSeconds ?? limits.holdTimeoutSecondsDefault;
  const [result] = await createTransfers(tx, [{ id, kind: 'pending', debitAccountId: cardAccountId, creditAccountId, amount: parseAmount(body.request.amt), currency, timeoutSeconds }], now);
  if (result === 'ok') return { result, id };
  if (result === 'exceeds_credits') return { result };
  throw new Error(`ledger refused a hold: ${result}`);
}

type Outcome = { decision: 'approved'; code: null; holdTransferId: string } | { decision: 'declined'; code: DeclineCode };

/** Step 407: sign the decision and keep it, so a retry gets the same answer. */
async function record(config: SettlementConfig, tx: Queryable, body: AuthorizeRequest, accountId: string, outcome: Outcome, now: Date): Promise<string> {
  const payload: AuthorizationPayload = {
    iss: config.issuerId,
    aid: newId('auth'),
    rid: body.request.rid,
    mid: body.request.mid,
    amt: body.request.amt,
    cur: body.request.cur,
    decision: outcome.decision,
    code: outcome.code,
    iat: Math.floor(now.getTime() / 1000),
  };
  const key = config.keys.current('sig');
  if (!key.privateKey) throw new Error('settlement signing key has no private part');
  const jws = await signJson(payload, key.privateKey, { typ: typ.authorization, kid: key.kid });
  await tx.query(
    `insert into authorizations (id, request_id, merchant_id, account_id, amount, currency, decision, decline_code, status, hold_transfer_id, jws)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
    [payload.aid, payload.rid, payload.mid, accountId, parseAmount(payload.amt), payload.cur, payload.decision, payload.code, outcome.decision === 'approved' ? 'held' : 'declined', outcome.decision === 'approved' ? outcome.holdTransferId : null, jws],
  );
  config.logger.info({ authorization: payload.aid, request: payload.rid, decision: payload.decision, code: payload.code }, 'step 407: authorization signed');
  return jws;
}
