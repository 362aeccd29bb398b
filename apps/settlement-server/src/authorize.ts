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
 *      passed, spend the approval nonce (a reversal may have spent it: approval_replayed), find the
 *      card (it must be the registered one),
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
import { checkDeadline, spendRateLimit, sqlState, type Db, type Queryable, type RateLimiters } from '@kessai/service';
import { panLookup } from './card-vault.ts';
import type { SettlementConfig } from './config.ts';
import { matchCard, openCredential, type CardRow, type OpenedCredential } from './credential.ts';
import type { GroupCommit } from './ledger/group-commit.ts';
import { applyTransfer } from './ledger/rules.ts';
import {
  createAccount,
  ledgerLoadSql,
  ledgerWrites,
  loadedState,
  runWrites,
  type LoadedRow,
  type SqlPart,
} from './ledger/store.ts';
import { onboarded, type IssuerMerchant } from './merchants.ts';
import { countWrongPin, failuresInWindow, pinResets, type PinHolder, type WrongPin } from './pin.ts';
import { checkRegistered, type RegisteredCredential } from './registry.ts';

/** The issuer's decision: the payload it signed and the signed token (compact JWS), together. */
export interface Decision {
  payload: AuthorizationPayload;
  jws: string;
}

export async function authorize(
  config: SettlementConfig,
  ledger: GroupCommit,
  limiters: RateLimiters,
  body: AuthorizeRequest,
  now: Date,
  deadline?: number,
): Promise<Decision> {
  // step 406: the issuer opens the credential and authorizes
  const credential = await openCredential(body.sealed_credential, config.keys, config.issuerId);
  const found = await partiesOf(config.db, credential.credentialId, body.request.mid, body.request.cur);
  const registered = checkRegistered(found.credential, credential.deviceJkt);
  spendRateLimit(limiters, 'internalCredential', registered.id);
  spendRateLimit(limiters, 'internalCard', registered.pan_lookup);
  const merchant = onboarded(found.merchant);
  const approval = await verifiedApproval(body, credential.deviceJwk, merchant.name, now);
  await checkPinBlockSigned(body.pin, approval.pbh);
  const pin = await openPin(config, body.pin, {
    rid: body.request.rid,
    nonce: approval.nonce,
    dkt: credential.deviceJkt,
  });
  const merchantAccountId =
    found.merchant_account_id ?? (await openMerchantAccount(config.db, body.request.mid, body.request.cur));
  const job: AuthorizationJob = {
    body,
    nonce: approval.nonce,
    lm: approval.lm,
    holdId: newId('xfer'),
    merchantAccountId,
    lookup: panLookup(config.cardKeys, credential.cardNumber.expose()),
    registered,
    now,
    credential,
    pin,
    holder: { credentialId: registered.id, deviceJkt: registered.device_jkt },
  };
  checkDeadline(deadline);
  return ledger.run((tx) => decide(config, tx, job, deadline));
}

/** Step 6 above: the authorization's ledger job. */
async function decide(
  config: SettlementConfig,
  tx: Queryable,
  job: AuthorizationJob,
  deadline?: number,
): Promise<Decision> {
  const { body, credential, registered, pin, holder, now } = job;
  const read = await readForAuthorization(tx, job);
  if (read.storedJws !== null) return storedDecision(read.storedJws);
  // Queued past the caller's deadline: it has given up (and will ask, or reverse); hold nothing.
  checkDeadline(deadline);
  if (!read.nonceFresh) throw new KessaiError('approval_replayed');
  const card = registeredCard(config, credential, registered, read.card);
  const pinOk = config.cardKeys.pin.matches(card.pin_verifier, card.pan_lookup, pin);
  const decline = await declineReason(config, tx, card, {
    holder,
    expiry: credential.expiry.expose(),
    pinOk,
    read,
    currency: body.request.cur,
    lm: job.lm,
    now,
  });
  if (decline) return record(config, tx, job, card.account_id, { decision: 'declined', ...decline });
  const hold = placeHold(config, read.ledger, card.account_id, job);
  if (hold.result !== 'ok')
    return record(config, tx, job, card.account_id, { decision: 'declined', code: 'insufficient_funds' });
  const resets = pinResets(card, read.credentialPinFailures, holder);
  return record(config, tx, job, card.account_id, {
    decision: 'approved',
    code: null,
    holdTransferId: job.holdId,
    captured: hold.captured,
    writes: [...ledgerWrites(read.ledger.state, read.ledger.before), ...resets],
  });
}

/** What one authorization's ledger job works with, decided before it is queued. */
interface AuthorizationJob {
  body: AuthorizeRequest;
  nonce: string;
  /** The approval's `lm`: the mode the payer's device signed. */
  lm: boolean;
  /** The hold's transfer id (and, with automatic capture, `<id>.capture` its posting). */
  holdId: string;
  merchantAccountId: string;
  /** The keyed hash of the credential's card number: how its card is found. */
  lookup: string;
  registered: RegisteredCredential;
  now: Date;
  credential: OpenedCredential;
  pin: Secret<string>;
  holder: PinHolder;
}

/** The registry's credential, the merchant and its ledger account in the request's currency: one statement. */
async function partiesOf(db: Queryable, credentialId: string, merchantId: string, currency: Currency) {
  const [row] = await db.query<{
    credential: RegisteredCredential | null;
    merchant: IssuerMerchant | null;
    merchant_account_id: string | null;
  }>(
    `select (select row_to_json(c) from (select id, device_jkt, pan_lookup, account_id, status from credentials
                                         where id = $1) c) as credential,
            (select row_to_json(m) from (select id, name from merchants where id = $2) m) as merchant,
            (select account_id from merchant_accounts where merchant_id = $2 and currency = $3) as merchant_account_id`,
    [credentialId, merchantId, currency],
  );
  return row!;
}

/** The onboarded merchant's ledger account in this currency, opened on its first payment in it. */
async function openMerchantAccount(db: Db, merchantId: string, currency: Currency): Promise<string> {
  try {
    return await db.transaction(async (tx) => {
      const accountId = await createAccount(tx, 'merchant', currency);
      await tx.query('insert into merchant_accounts (merchant_id, currency, account_id) values ($1, $2, $3)', [
        merchantId,
        currency,
        accountId,
      ]);
      return accountId;
    });
  } catch (err) {
    if (sqlState(err) !== '23505') throw err;
    const [row] = await db.query<{ account_id: string }>(
      'select account_id from merchant_accounts where merchant_id = $1 and currency = $2',
      [merchantId, currency],
    );
    return row!.account_id;
  }
}

interface AuthorizationRead {
  /** The request's decision (or this attempt's wrong-PIN decline), stored by an earlier call. */
  storedJws: string | null;
  /** Whether this call spent the approval nonce (false: spent before, by an attempt or a reversal). */
  nonceFresh: boolean;
  card: (CardRow & { card_record: string; card_key_id: string }) | null;
  /** Wrong PINs of the card within pinFailuresWindowMs (the velocity record). */
  windowFailures: number;
  credentialPinStatus: string | null;
  credentialPinFailures: number;
  ledger: ReturnType<typeof loadedState>;
}

/**
 * The authorization job's first statement: the stored decision, the nonce spent (`on conflict do
 * nothing`: whether it was fresh), the credential's last use, the card and the credential's PIN
 * limit locked, the velocity record counted, and the ledger's hold accounts loaded and locked
 * (ledgerLoadSql: the card's account, the merchant's) — the card locked before the accounts.
 */
async function readForAuthorization(tx: Queryable, job: AuthorizationJob): Promise<AuthorizationRead> {
  const transfers = job.body.capture_method === 'automatic' ? `array[$7::text, $7 || '.capture']` : 'array[$7::text]';
  const info = `(select json_build_object('stored', (select jws from stored), 'fresh', exists (select 1 from spent),
      'card', (select row_to_json(card) from card), 'seen', (select xmin::text from cards where pan_lookup = $3),
      'window', (select count(*)::int from pin_failures where pan_lookup = $3 and at > $6),
      'limit', (select row_to_json(pin_limit) from pin_limit)))`;
  const { ctes, rows } = ledgerLoadSql(transfers, 'array[(select account_id from card), $8]', info);
  const loaded = await tx.query<LoadedRow>(
    `with stored as (select jws from authorizations where request_id = $1
       union all select jws from pin_retry_declines where approval_nonce = $2 and request_id = $1 limit 1),
     spent as (insert into approval_nonces (nonce, request_id) values ($2, $1) on conflict do nothing returning 1),
     used as (update credentials set last_used_at = now() where id = $4),
     card as materialized (select pan_lookup, card_record, card_key_id, account_id, status, pin_verifier, pin_failures, test,
       xmin::text as version from cards where pan_lookup = $3 for update),
     pin_limit as materialized (select status, failures from credential_pin_limits where device_jkt = $5 for update),
     ${ctes}
     ${rows}`,
    [
      job.body.request.rid,
      job.nonce,
      job.lookup,
      job.registered.id,
      job.registered.device_jkt,
      new Date(job.now.getTime() - limits.pinFailuresWindowMs),
      job.holdId,
      job.merchantAccountId,
    ],
  );
  const x = loaded.find((row) => row.k === 'x')!.info as {
    stored: string | null;
    fresh: boolean;
    card: (AuthorizationRead['card'] & { version: string }) | null;
    seen: string | null;
    window: number;
    limit: { status: string; failures: number } | null;
  };
  // A wrong PIN committed by another process while this statement waited for the card's lock is
  // not in its snapshot (the locked row is the newest, a new version): count the velocity record again.
  const windowFailures =
    x.card && x.card.version !== x.seen ? await failuresInWindow(tx, job.lookup, job.now) : x.window;
  return {
    storedJws: x.stored,
    nonceFresh: x.fresh,
    card: x.card,
    windowFailures,
    credentialPinStatus: x.limit?.status ?? null,
    credentialPinFailures: x.limit?.failures ?? 0,
    ledger: loadedState(loaded),
  };
}

/** The card inside the credential, which must be the card the credential was registered for. */
function registeredCard(
  config: SettlementConfig,
  credential: OpenedCredential,
  registered: RegisteredCredential,
  row: AuthorizationRead['card'],
): CardRow {
  const card = matchCard(config.cardKeys, credential, row);
  if (!card || card.pan_lookup !== registered.pan_lookup) throw new KessaiError('credential_unknown');
  return card;
}

/** The approval rule (packages/protocol/src/checks/approval.ts) against this issuer's own view of the request. */
async function verifiedApproval(
  body: AuthorizeRequest,
  deviceJwk: JWK,
  merchantName: string,
  now: Date,
): Promise<ApprovalPayload> {
  const deviceKey = await importPublicKey(deviceJwk, 'ES256');
  const { value } = await verifyJson(body.approval, deviceKey, typ.approval, 'approval_invalid');
  const parsed = approvalPayload.safeParse(value);
  if (!parsed.success) throw new KessaiError('approval_invalid');
  const { request } = body;
  return checkApproval(
    parsed.data,
    {
      rid: request.rid,
      mid: request.mid,
      mnm: merchantName,
      amt: request.amt,
      cur: request.cur,
      ih: await itemsHash(request.line_items),
    },
    now.getTime(),
  );
}

async function openPin(
  config: SettlementConfig,
  jwe: string,
  binding: { rid: string; nonce: string; dkt: string },
): Promise<Secret<string>> {
  const { header, value } = await openJson(jwe, config.keys, typ.pin, 'pin_invalid');
  const parsed = pinPlaintext.safeParse(value);
  if (!parsed.success) throw new KessaiError('pin_invalid');
  checkPaymentPinBinding(header as Record<string, unknown>, parsed.data, binding);
  return new Secret(parsed.data.pin);
}

/** A decision stored by an earlier call: signed then (perhaps under a key since retired), read back, not re-verified. */
function storedDecision(jws: string): Decision {
  return { jws, payload: authorizationPayload.parse(readJwsPayload(jws, 'internal_error')) };
}

interface PinCheck {
  holder: PinHolder;
  /** The credential's expiry (MM/YY). */
  expiry: string;
  pinOk: boolean;
  read: AuthorizationRead;
  currency: Currency;
  /** The approval's mode: what the payer's device was shown (`lm`). */
  lm: boolean;
  now: Date;
}

async function declineReason(
  config: SettlementConfig,
  tx: Queryable,
  card: CardRow,
  check: PinCheck,
): Promise<WrongPin | undefined> {
  const { holder, expiry, pinOk, read, currency, lm, now } = check;
  if (card.status === 'blocked') return { code: 'card_blocked' };
  if (card.status === 'locked') return { code: 'pin_locked' };
  if (read.windowFailures >= limits.pinFailuresWindowMax) return { code: 'pin_locked' };
  if (read.credentialPinStatus === 'locked') return { code: 'credential_locked' };
  if (isExpired(expiry, now)) return { code: 'card_expired' };
  if (!pinOk) return countWrongPin(config.logger, tx, card, holder, now);
  // The approval's mode (what the payer's device was shown) against the card's own: null is a card from before modes, live.
  if (lm !== (card.test !== true)) return { code: 'livemode_mismatch' };
  if (read.ledger.state.accounts.get(card.account_id)?.currency !== currency) return { code: 'currency_mismatch' };
  return undefined;
}

/**
 * The hold, in the rules' state (written with the decision): a pending transfer from the
 * cardholder to the merchant, refused if it would overdraw; with automatic capture, posted whole
 * at once (`<hold>.capture`, as a capture would post it).
 */
function placeHold(
  config: SettlementConfig,
  ledger: AuthorizationRead['ledger'],
  cardAccountId: string,
  job: AuthorizationJob,
): { result: 'ok'; captured: boolean } | { result: 'exceeds_credits' } {
  const { cur: currency } = job.body.request;
  const amount = parseAmount(job.body.request.amt);
  const timeoutSeconds = config.holdTimeoutSeconds ?? limits.holdTimeoutSecondsDefault;
  const nowMs = job.now.getTime();
  const result = applyTransfer(
    ledger.state,
    {
      id: job.holdId,
      kind: 'pending',
      debitAccountId: cardAccountId,
      creditAccountId: job.merchantAccountId,
      amount,
      currency,
      timeoutSeconds,
    },
    nowMs,
  );
  if (result === 'exceeds_credits') return { result };
  if (result !== 'ok') throw new Error(`ledger refused a hold: ${result}`);
  if (job.body.capture_method !== 'automatic') return { result, captured: false };
  // step 409 capture: automatic capture posts the hold with the approval
  const posted = applyTransfer(
    ledger.state,
    { id: `${job.holdId}.capture`, kind: 'post_pending', pendingId: job.holdId, amount, currency },
    nowMs,
  );
  if (posted !== 'ok') throw new Error(`ledger refused posting a hold: ${posted}`);
  return { result, captured: true };
}

type Outcome =
  | { decision: 'approved'; code: null; holdTransferId: string; captured: boolean; writes: SqlPart[] }
  | { decision: 'declined'; code: DeclineCode; triesLeft?: number };

/** The decision's row: held, captured (automatic capture) or declined. */
function authorizationInsert(
  payload: AuthorizationPayload,
  jws: string,
  job: AuthorizationJob,
  accountId: string,
  outcome: Outcome,
): SqlPart {
  const approved = outcome.decision === 'approved';
  const captured = approved && outcome.captured;
  const amount = parseAmount(payload.amt);
  const status = approved ? (captured ? 'captured' : 'held') : 'declined';
  const hold = approved ? outcome.holdTransferId : null;
  return {
    sql: `insert into authorizations (id, request_id, merchant_id, account_id, amount, currency, decision, decline_code, status,
            hold_transfer_id, jws, approval_nonce, captured_amount, capture_method)
          values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
    params: [
      payload.aid,
      payload.rid,
      payload.mid,
      accountId,
      amount,
      payload.cur,
      payload.decision,
      payload.code,
      status,
      hold,
      jws,
      job.nonce,
      captured ? amount : 0n,
      job.body.capture_method ?? 'manual',
    ],
  };
}

/**
 * Step 407: sign the decision and keep it, so a retry gets the same answer — with an approval, in
 * one statement with its ledger writes. A wrong PIN with tries left is not the request's decision:
 * it is kept by its attempt's nonce only, and the payer may answer the request again with a new
 * approval (a new nonce).
 */
async function record(
  config: SettlementConfig,
  tx: Queryable,
  job: AuthorizationJob,
  accountId: string,
  outcome: Outcome,
): Promise<Decision> {
  const { body, nonce, now } = job;
  const captured = outcome.decision === 'approved' && outcome.captured;
  const payload: AuthorizationPayload = {
    iss: config.issuerId,
    aid: newId('auth'),
    rid: body.request.rid,
    mid: body.request.mid,
    amt: body.request.amt,
    cur: body.request.cur,
    decision: outcome.decision,
    code: outcome.code,
    ...(outcome.decision === 'declined' && outcome.triesLeft !== undefined
      ? { pin_tries_left: outcome.triesLeft }
      : {}),
    lm: job.lm,
    ...(captured ? { cap: 'automatic' as const } : {}),
    iat: Math.floor(now.getTime() / 1000),
  };
  const key = config.keys.current('sig');
  if (!key.privateKey) throw new Error('settlement signing key has no private part');
  // step 407: the decision is signed
  const jws = await signJson(payload, key.privateKey, { typ: typ.authorization, kid: key.kid });
  if (payload.pin_tries_left !== undefined) {
    await tx.query(
      'insert into pin_retry_declines (approval_nonce, request_id, account_id, jws) values ($1, $2, $3, $4)',
      [nonce, payload.rid, accountId, jws],
    );
    config.logger.info(
      {
        authorization: payload.aid,
        request: payload.rid,
        decision: payload.decision,
        code: payload.code,
        triesLeft: payload.pin_tries_left,
      },
      'step 407: wrong PIN, the request may be answered again',
    );
    return { payload, jws };
  }
  const approved = outcome.decision === 'approved';
  const insert = authorizationInsert(payload, jws, job, accountId, outcome);
  await runWrites(tx, [...(approved ? outcome.writes : []), insert]);
  config.logger.info(
    { authorization: payload.aid, request: payload.rid, decision: payload.decision, code: payload.code, captured },
    'step 407: authorization signed',
  );
  return { payload, jws };
}
