/**
 * Step 409 at the issuer: capture (post the hold, fully or partly; the rest is released) or void
 * (release it). Keyed by the payment request id and idempotent: repeating a finished capture with
 * the same amount, or a finished void, answers the same result. The post or void transfer's id is
 * derived from the hold's, so the ledger itself refuses a second resolution.
 */
import { KessaiError, parseAmount } from '@kessai/protocol';
import { recordDomainEvent, type Queryable } from '@kessai/service';
import type { SettlementConfig } from './config.ts';
import { expireHolds, recordExpired } from './expiry.ts';
import type { GroupCommit } from './ledger/group-commit.ts';
import { applyTransfer, type TransferInput, type TransferResult } from './ledger/rules.ts';
import {
  createTransfers,
  ledgerLoadSql,
  ledgerWrites,
  loadedState,
  runWrites,
  type LoadedRow,
  type SqlPart,
} from './ledger/store.ts';

export interface AuthorizationRow {
  id: string;
  status: 'held' | 'captured' | 'voided' | 'expired' | 'declined';
  amount: bigint;
  currency: string;
  captured_amount: bigint;
  refunded_amount: bigint;
  hold_transfer_id: string | null;
}

export interface CaptureResult {
  authorization_id: string;
  status: 'captured' | 'voided';
  captured_minor: string;
}

export async function lockAuthorization(tx: Queryable, rid: string): Promise<AuthorizationRow> {
  const [row] = await tx.query<AuthorizationRow>(
    `select id, status, amount, currency, captured_amount, refunded_amount, hold_transfer_id from authorizations
      where request_id = $1 for update`,
    [rid],
  );
  if (!row) throw new KessaiError('authorization_not_found');
  return row;
}

/** The ledger state a hold's resolution works on, loaded with its authorization (ledgerLoadSql). */
export type HoldLedger = ReturnType<typeof loadedState>;

/**
 * lockAuthorization and the ledger load of its hold's resolution (`<hold>.<action>`, the hold, their
 * accounts) in one statement: the authorization locked first, then the transfers, then the accounts.
 */
export async function lockAuthorizationAndHold(
  tx: Queryable,
  rid: string,
  action: 'capture' | 'void',
): Promise<{ row: AuthorizationRow & { approval_nonce: string | null; capture_method: string }; ledger: HoldLedger }> {
  const columns =
    'id, status, amount::text, currency, captured_amount::text, refunded_amount::text, hold_transfer_id, ' +
    'approval_nonce, capture_method';
  const held = `array[(select hold_transfer_id from auth), (select hold_transfer_id || '.' || $2 from auth)]`;
  const { ctes, rows } = ledgerLoadSql(held, 'array[]::text[]', '(select row_to_json(auth) from auth)');
  const loaded = await tx.query<LoadedRow>(
    `with auth as materialized (select ${columns} from authorizations where request_id = $1 for update),
     ${ctes} ${rows}`,
    [rid, action],
  );
  const row = loaded.find((r) => r.k === 'x')!.info as
    (Record<keyof AuthorizationRow, string> & { approval_nonce: string | null; capture_method: string }) | null;
  if (!row) throw new KessaiError('authorization_not_found');
  const amounts = {
    amount: BigInt(row.amount),
    captured_amount: BigInt(row.captured_amount),
    refunded_amount: BigInt(row.refunded_amount),
  };
  return {
    row: {
      ...row,
      ...amounts,
      status: row.status as AuthorizationRow['status'],
      hold_transfer_id: row.hold_transfer_id || null,
    },
    ledger: loadedState(loaded),
  };
}

/**
 * A hold resolved inside a ledger job: the capture's or void's answer, `resolved` when this job
 * changed it (not a repeat), or the holds found due.
 */
export type HoldOutcome = { result: CaptureResult; resolved?: { currency: string } } | { expired: string[] };

/** What to resolve: the locked authorization (and its hold's ledger state, when loaded with it), how, and when. */
export interface HoldResolution {
  row: AuthorizationRow;
  rid: string;
  action: 'capture' | 'void';
  /** Capture only: the amount to post (the whole hold when left out). */
  amountText?: string | undefined;
  now: Date;
  ledger?: HoldLedger;
}

/** Captures (amount) or voids (amount 0) a locked authorization's hold in a ledger job; a finished one answers as it was. */
export async function resolveHold(
  config: SettlementConfig,
  tx: Queryable,
  resolution: HoldResolution,
): Promise<HoldOutcome> {
  const { row, rid, action, amountText, now } = resolution;
  const amount = action === 'capture' ? (amountText === undefined ? BigInt(row.amount) : parseAmount(amountText)) : 0n;
  const finished = action === 'capture' ? 'captured' : 'voided';
  if (row.status === finished && (action === 'void' || BigInt(row.captured_amount) === amount)) {
    return {
      result: { authorization_id: row.id, status: finished, captured_minor: BigInt(row.captured_amount).toString() },
    };
  }
  if (row.status !== 'held' || !row.hold_transfer_id)
    throw new KessaiError('authorization_not_capturable', `authorization is ${row.status}`);
  if (amount > BigInt(row.amount)) throw new KessaiError('capture_exceeds_authorization');
  // step 409 capture: a capture posts the hold (all of it or less, the rest released)
  // step 409 void: a void releases the whole hold
  const kind = action === 'capture' ? 'post_pending' : 'void_pending';
  const transfer = {
    id: `${row.hold_transfer_id}.${action}`,
    kind,
    pendingId: row.hold_transfer_id,
    amount,
    currency: row.currency,
  } as const;
  const update: SqlPart = {
    sql: 'update authorizations set status = $2, captured_amount = $3 where id = $1',
    params: [row.id, finished, amount],
  };
  const result = resolution.ledger
    ? await postWith(tx, resolution.ledger, transfer, now, update)
    : await postAlone(tx, transfer, now, update);
  // The hold is due but the expiry pass has not run yet: run it now, inside this job, and refuse.
  if (result === 'pending_transfer_expired') return { expired: await expireHolds(tx, now) };
  if (result !== 'ok') throw new Error(`ledger refused resolving hold ${row.hold_transfer_id}: ${result}`);
  config.logger.info(
    { authorization: row.id, request: rid, action, amount: amount.toString() },
    'step 409: hold resolved',
  );
  return {
    result: { authorization_id: row.id, status: finished, captured_minor: amount.toString() },
    resolved: { currency: row.currency },
  };
}

/** The transfer applied to the loaded state; when accepted, written with `update` in one statement. */
async function postWith(
  tx: Queryable,
  ledger: HoldLedger,
  transfer: TransferInput,
  now: Date,
  update: SqlPart,
): Promise<TransferResult> {
  const result = applyTransfer(ledger.state, transfer, now.getTime());
  if (result === 'ok') await runWrites(tx, [...ledgerWrites(ledger.state, ledger.before), update]);
  return result;
}

/** postWith, loading the ledger state itself (createTransfers), then `update`. */
async function postAlone(tx: Queryable, transfer: TransferInput, now: Date, update: SqlPart): Promise<TransferResult> {
  const [result] = await createTransfers(tx, [transfer], now);
  if (result === 'ok') await runWrites(tx, [update]);
  return result!;
}

/** One audit event for a capture or void this job made (a repeat changed nothing: only the first is a domain event). */
export function recordResolved(
  config: SettlementConfig,
  rid: string,
  outcome: { result: CaptureResult; resolved?: { currency: string } },
): void {
  const { result, resolved } = outcome;
  if (!resolved) return;
  const event =
    result.status === 'captured'
      ? { action: 'authorization.captured', outcome: `captured ${result.captured_minor} ${resolved.currency}` }
      : { action: 'authorization.voided', outcome: 'voided' };
  void recordDomainEvent(config.db, { actor: 'system', resource: `${rid} ${result.authorization_id}`, ...event });
}

export async function settleHold(
  config: SettlementConfig,
  ledger: GroupCommit,
  rid: string,
  action: 'capture' | 'void',
  amountText: string | undefined,
  now: Date,
): Promise<CaptureResult> {
  const outcome = await ledger.run(async (tx) => {
    const { row, ledger: held } = await lockAuthorizationAndHold(tx, rid, action);
    return resolveHold(config, tx, { row, rid, action, amountText, now, ledger: held });
  });
  if ('expired' in outcome) {
    recordExpired(config.db, outcome.expired);
    throw new KessaiError('authorization_not_capturable', 'authorization is expired');
  }
  recordResolved(config, rid, outcome);
  return outcome.result;
}
