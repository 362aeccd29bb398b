/**
 * The ledger's rules as pure functions (no I/O, no clock, no randomness), after TigerBeetle's
 * create_transfers: what a transfer's result is against the accounts and transfers it names, and
 * how an accepted one changes them. The SQL store (store.ts) loads what a batch touches, runs
 * these rules over an in-memory copy and writes the changes back in one transaction.
 * Every function asserts what it relies on and what it promises (TIGER_STYLE): a failed assertion
 * is a bug in Kessai, never a caller's input, and its message names only ids and columns.
 */
import { assert, limits } from '@kessai/protocol';

/** Every result of creating a transfer, in order of precedence: the first that applies wins. */
export const transferResults = [
  'ok',
  'id_must_not_be_empty',
  'amount_must_not_be_negative',
  'amount_exceeds_maximum',
  'exists_with_different_kind',
  'exists_with_different_pending_id',
  'exists_with_different_timeout',
  'exists_with_different_debit_account_id',
  'exists_with_different_credit_account_id',
  'exists_with_different_amount',
  'exists_with_different_currency',
  'exists',
  'pending_id_must_be_empty',
  'timeout_reserved_for_pending_transfer',
  'accounts_must_be_different',
  'debit_account_not_found',
  'credit_account_not_found',
  'accounts_must_have_the_same_currency',
  'transfer_must_have_the_same_currency_as_accounts',
  'pending_id_must_not_be_empty',
  'pending_id_must_be_different',
  'void_amount_must_be_zero',
  'pending_transfer_not_found',
  'pending_transfer_not_pending',
  'pending_transfer_has_different_debit_account_id',
  'pending_transfer_has_different_credit_account_id',
  'pending_transfer_has_different_currency',
  'exceeds_pending_transfer_amount',
  'pending_transfer_already_posted',
  'pending_transfer_already_voided',
  'pending_transfer_expired',
  'overflows_debits_pending',
  'overflows_credits_pending',
  'overflows_debits_posted',
  'overflows_credits_posted',
  'overflows_debits',
  'overflows_credits',
  'exceeds_credits',
  'exceeds_debits',
] as const;

export type TransferResult = (typeof transferResults)[number];

export const transferKinds = ['single', 'pending', 'post_pending', 'void_pending'] as const;
export type TransferKind = (typeof transferKinds)[number];
export type PendingState = 'pending' | 'posted' | 'voided' | 'expired';

export interface Account {
  id: string;
  currency: string;
  debitsPending: bigint;
  debitsPosted: bigint;
  creditsPending: bigint;
  creditsPosted: bigint;
  /** Debits (pending + posted) may never exceed posted credits: a cardholder's own money. */
  debitsMustNotExceedCredits: boolean;
  /** Credits (pending + posted) may never exceed posted debits. */
  creditsMustNotExceedDebits: boolean;
}

/** What a caller submits. Post and void may leave the accounts out (they inherit the pending transfer's). */
export interface TransferInput {
  id: string;
  kind: TransferKind;
  debitAccountId?: string;
  creditAccountId?: string;
  /** Minor units. Post: the amount to post (≤ pending; the rest is released). Void: 0. */
  amount: bigint;
  currency: string;
  pendingId?: string;
  /** Pending transfers only: expire this many seconds after creation; 0 = never. */
  timeoutSeconds?: number;
}

/** A stored transfer. */
export interface Transfer {
  id: string;
  kind: TransferKind;
  debitAccountId: string;
  creditAccountId: string;
  amount: bigint;
  currency: string;
  pendingId: string | null;
  timeoutSeconds: number;
  /** Pending transfers only. */
  state: PendingState | null;
  expiresAtMs: number | null;
}

/** The in-memory state the rules read and change: only what one batch touches. */
export interface LedgerState {
  accounts: Map<string, Account>;
  transfers: Map<string, Transfer>;
}

/** What the payer can still spend: posted credits less every debit, pending or posted. */
export function available(account: Account): bigint {
  assertColumns(account);
  const result = account.creditsPosted - account.debitsPosted - account.debitsPending;
  assert(result <= account.creditsPosted, `available(${account.id}) is at most its posted credits`);
  return result;
}

const columns = ['debitsPending', 'debitsPosted', 'creditsPending', 'creditsPosted'] as const;

/** Every balance column of `account` lies in [0, ledgerBalanceMax]. */
function assertColumns(account: Account): void {
  for (const column of columns) {
    const value = account[column];
    assert(value >= 0n && value <= limits.ledgerBalanceMax, `${account.id}.${column} within [0, ledgerBalanceMax]`);
  }
}

/** The result of creating `t` at `nowMs`, without changing anything. */
export function checkTransfer(state: LedgerState, t: TransferInput, nowMs: number): TransferResult {
  assert(Number.isSafeInteger(nowMs) && nowMs >= 0, 'checkTransfer: nowMs is a non-negative integer');
  const result = checkTransferFields(state, t, nowMs);
  assert(transferResults.includes(result), `checkTransfer(${t.id}): a known result`);
  const inRange = t.amount >= 0n && t.amount <= limits.ledgerAmountMax;
  assert(result !== 'ok' || inRange, `checkTransfer(${t.id}): ok only within the amount range`);
  return result;
}

function checkTransferFields(state: LedgerState, t: TransferInput, nowMs: number): TransferResult {
  assert(transferKinds.includes(t.kind), `checkTransfer(${t.id}): a known kind`);
  if (t.id === '') return 'id_must_not_be_empty';
  if (t.amount < 0n) return 'amount_must_not_be_negative';
  if (t.amount > limits.ledgerAmountMax) return 'amount_exceeds_maximum';
  const existing = state.transfers.get(t.id);
  if (existing) return existsResult(t, existing);
  if (t.kind === 'post_pending' || t.kind === 'void_pending') return checkResolve(state, t, nowMs);
  if (t.pendingId !== undefined) return 'pending_id_must_be_empty';
  if (t.kind === 'single' && (t.timeoutSeconds ?? 0) !== 0) return 'timeout_reserved_for_pending_transfer';
  assert(t.debitAccountId !== undefined && t.creditAccountId !== undefined, `transfer ${t.id} names its accounts`);
  if (t.debitAccountId === t.creditAccountId) return 'accounts_must_be_different';
  const debit = state.accounts.get(t.debitAccountId);
  if (!debit) return 'debit_account_not_found';
  const credit = state.accounts.get(t.creditAccountId);
  if (!credit) return 'credit_account_not_found';
  if (debit.currency !== credit.currency) return 'accounts_must_have_the_same_currency';
  if (t.currency !== debit.currency) return 'transfer_must_have_the_same_currency_as_accounts';
  const overflow = overflowResult(debit, credit, t.amount, t.kind === 'pending' ? 'Pending' : 'Posted');
  if (overflow) return overflow;
  if (debit.debitsMustNotExceedCredits && debit.debitsPending + debit.debitsPosted + t.amount > debit.creditsPosted) return 'exceeds_credits';
  if (credit.creditsMustNotExceedDebits && credit.creditsPending + credit.creditsPosted + t.amount > credit.debitsPosted) return 'exceeds_debits';
  return 'ok';
}

/** Same id again: `exists` only if every field the caller gave matches the stored transfer. */
function existsResult(t: TransferInput, e: Transfer): TransferResult {
  assert(t.id === e.id, `existsResult: ${t.id} compared with itself`);
  const result = existsFields(t, e);
  assert(result === 'exists' || result.startsWith('exists_with_different_'), `existsResult(${t.id}): an exists result`);
  return result;
}

function existsFields(t: TransferInput, e: Transfer): TransferResult {
  assert(transferKinds.includes(e.kind), `existsResult(${e.id}): a stored transfer of a known kind`);
  assert(e.amount >= 0n, `existsResult(${e.id}): a stored transfer has a non-negative amount`);
  if (t.kind !== e.kind) return 'exists_with_different_kind';
  if ((t.pendingId ?? null) !== e.pendingId) return 'exists_with_different_pending_id';
  if ((t.timeoutSeconds ?? 0) !== e.timeoutSeconds) return 'exists_with_different_timeout';
  if (t.debitAccountId !== undefined && t.debitAccountId !== e.debitAccountId) return 'exists_with_different_debit_account_id';
  if (t.creditAccountId !== undefined && t.creditAccountId !== e.creditAccountId) return 'exists_with_different_credit_account_id';
  if (t.amount !== e.amount) return 'exists_with_different_amount';
  if (t.currency !== e.currency) return 'exists_with_different_currency';
  return 'exists';
}

/** Post or void of a pending transfer. */
function checkResolve(state: LedgerState, t: TransferInput, nowMs: number): TransferResult {
  assert(t.kind === 'post_pending' || t.kind === 'void_pending', `checkResolve(${t.id}): a post or a void`);
  const result = checkResolveFields(state, t, nowMs);
  const holdPending = state.transfers.get(t.pendingId ?? '')?.state === 'pending';
  assert(result !== 'ok' || holdPending, `checkResolve(${t.id}): ok only for a pending hold`);
  return result;
}

function checkResolveFields(state: LedgerState, t: TransferInput, nowMs: number): TransferResult {
  assert(t.amount >= 0n, `checkResolve(${t.id}): a non-negative amount`);
  assert(!state.transfers.has(t.id), `checkResolve(${t.id}): a new id (a repeat is answered exists…)`);
  if ((t.timeoutSeconds ?? 0) !== 0) return 'timeout_reserved_for_pending_transfer';
  if (t.pendingId === undefined || t.pendingId === '') return 'pending_id_must_not_be_empty';
  if (t.pendingId === t.id) return 'pending_id_must_be_different';
  if (t.kind === 'void_pending' && t.amount !== 0n) return 'void_amount_must_be_zero';
  const p = state.transfers.get(t.pendingId);
  if (!p) return 'pending_transfer_not_found';
  if (p.kind !== 'pending') return 'pending_transfer_not_pending';
  if (t.debitAccountId !== undefined && t.debitAccountId !== p.debitAccountId) return 'pending_transfer_has_different_debit_account_id';
  if (t.creditAccountId !== undefined && t.creditAccountId !== p.creditAccountId) return 'pending_transfer_has_different_credit_account_id';
  if (t.currency !== p.currency) return 'pending_transfer_has_different_currency';
  if (t.kind === 'post_pending' && t.amount > p.amount) return 'exceeds_pending_transfer_amount';
  if (p.state === 'posted') return 'pending_transfer_already_posted';
  if (p.state === 'voided') return 'pending_transfer_already_voided';
  if (p.state === 'expired' || isDue(p, nowMs)) return 'pending_transfer_expired';
  if (t.kind === 'void_pending') return 'ok';
  // A post moves at most the held amount from pending to posted: only the posted columns can grow.
  const max = limits.ledgerBalanceMax;
  if (accountOf(state, p.debitAccountId).debitsPosted + t.amount > max) return 'overflows_debits_posted';
  if (accountOf(state, p.creditAccountId).creditsPosted + t.amount > max) return 'overflows_credits_posted';
  return 'ok';
}

/**
 * TigerBeetle's overflows_*: a column, or an account's pending and posted together, that would
 * pass ledgerBalanceMax (PostgreSQL bigint) with `amount` added to the `phase` columns.
 */
function overflowResult(
  debit: Account, credit: Account, amount: bigint, phase: 'Pending' | 'Posted',
): TransferResult | undefined {
  assert(amount >= 0n && amount <= limits.ledgerAmountMax, 'overflowResult: amount within range');
  assertColumns(debit);
  assertColumns(credit);
  const max = limits.ledgerBalanceMax;
  if (phase === 'Pending' && debit.debitsPending + amount > max) return 'overflows_debits_pending';
  if (phase === 'Pending' && credit.creditsPending + amount > max) return 'overflows_credits_pending';
  if (phase === 'Posted' && debit.debitsPosted + amount > max) return 'overflows_debits_posted';
  if (phase === 'Posted' && credit.creditsPosted + amount > max) return 'overflows_credits_posted';
  if (debit.debitsPending + debit.debitsPosted + amount > max) return 'overflows_debits';
  if (credit.creditsPending + credit.creditsPosted + amount > max) return 'overflows_credits';
  return undefined;
}

function accountOf(state: LedgerState, id: string): Account {
  const account = state.accounts.get(id);
  assert(account !== undefined, `account ${id} loaded`);
  assert(account.id === id, `account ${id} stored under its own id`);
  return account;
}

/** Whether a pending transfer's timeout has passed at `nowMs`. */
export function isDue(p: Transfer, nowMs: number): boolean {
  assert(Number.isFinite(nowMs), 'isDue: nowMs is a number');
  assert((p.kind === 'pending') === (p.state !== null), `isDue(${p.id}): only pending transfers have a state`);
  return p.state === 'pending' && p.expiresAtMs !== null && nowMs >= p.expiresAtMs;
}

/** Checks `t` and, if the result is `ok`, applies it to `state`. */
export function applyTransfer(state: LedgerState, t: TransferInput, nowMs: number): TransferResult {
  const result = checkTransfer(state, t, nowMs);
  if (result !== 'ok') return result;
  assert(!state.transfers.has(t.id), `applyTransfer(${t.id}): a new id`);
  applyChecked(state, t, nowMs);
  assert(state.transfers.get(t.id)?.amount === t.amount, `applyTransfer(${t.id}): stored with its amount`);
  return 'ok';
}

function applyChecked(state: LedgerState, t: TransferInput, nowMs: number): void {
  assert(t.amount >= 0n && t.amount <= limits.ledgerAmountMax, `applyTransfer(${t.id}): amount within range`);
  const resolving = t.kind === 'post_pending' || t.kind === 'void_pending';
  assert(!resolving || t.pendingId !== undefined, `applyTransfer(${t.id}): a post or void names its hold`);
  if (t.kind === 'single' || t.kind === 'pending') {
    const phase = t.kind === 'pending' ? 'Pending' : 'Posted';
    const timeoutSeconds = t.timeoutSeconds ?? 0;
    const transfer: Transfer = {
      id: t.id, kind: t.kind, debitAccountId: t.debitAccountId!, creditAccountId: t.creditAccountId!, amount: t.amount, currency: t.currency,
      pendingId: null, timeoutSeconds,
      state: t.kind === 'pending' ? 'pending' : null,
      expiresAtMs: t.kind === 'pending' && timeoutSeconds > 0 ? nowMs + timeoutSeconds * 1000 : null,
    };
    move(state, transfer.debitAccountId, `debits${phase}`, t.amount);
    move(state, transfer.creditAccountId, `credits${phase}`, t.amount);
    state.transfers.set(t.id, transfer);
    return;
  }
  const p = state.transfers.get(t.pendingId!)!;
  release(state, p, t.kind === 'post_pending' ? 'posted' : 'voided');
  if (t.kind === 'post_pending') {
    move(state, p.debitAccountId, 'debitsPosted', t.amount);
    move(state, p.creditAccountId, 'creditsPosted', t.amount);
  }
  state.transfers.set(t.id, {
    id: t.id, kind: t.kind, debitAccountId: p.debitAccountId, creditAccountId: p.creditAccountId, amount: t.amount, currency: p.currency,
    pendingId: p.id, timeoutSeconds: 0, state: null, expiresAtMs: null,
  });
}

/** The expiry pass for one pending transfer: releases it if its timeout has passed. Returns whether it did. */
export function expirePending(state: LedgerState, pendingId: string, nowMs: number): boolean {
  assert(pendingId !== '', 'expirePending: a pending id');
  const p = state.transfers.get(pendingId);
  if (!p || !isDue(p, nowMs)) return false;
  release(state, p, 'expired');
  assert(state.transfers.get(pendingId)?.state === 'expired', `expirePending(${pendingId}): expired`);
  return true;
}

/** Takes a pending transfer's whole amount off both accounts' pending columns and ends its state. */
function release(state: LedgerState, p: Transfer, end: Exclude<PendingState, 'pending'>): void {
  assert(p.state === 'pending', `release(${p.id}): still pending`);
  assert(p.kind === 'pending', `release(${p.id}): a pending transfer`);
  move(state, p.debitAccountId, 'debitsPending', -p.amount);
  move(state, p.creditAccountId, 'creditsPending', -p.amount);
  state.transfers.set(p.id, { ...p, state: end });
}

type Column = (typeof columns)[number];

function move(state: LedgerState, accountId: string, column: Column, amount: bigint): void {
  const account = accountOf(state, accountId);
  const next = account[column] + amount;
  assert(next >= 0n, `${accountId}.${column} stays non-negative`);
  assert(next <= limits.ledgerBalanceMax, `${accountId}.${column} stays within ledgerBalanceMax (see overflows_*)`);
  state.accounts.set(accountId, { ...account, [column]: next });
}

/** Debits minus credits (pending and posted, separately) per currency: both must be zero. */
export function imbalance(accounts: Iterable<Account>): Map<string, { pending: bigint; posted: bigint }> {
  const sums = new Map<string, { pending: bigint; posted: bigint }>();
  for (const a of accounts) {
    assertColumns(a);
    assert(a.currency !== '', `imbalance: ${a.id} has a currency`);
    const s = sums.get(a.currency) ?? { pending: 0n, posted: 0n };
    sums.set(a.currency, { pending: s.pending + a.debitsPending - a.creditsPending, posted: s.posted + a.debitsPosted - a.creditsPosted });
  }
  return sums;
}
