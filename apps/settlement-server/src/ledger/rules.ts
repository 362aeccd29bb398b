/**
 * The ledger's rules as pure functions (no I/O, no clock): whether a transfer may be applied to
 * the balances it touches. The SQL store beside them applies what these allow. A minimal subset of
 * TigerBeetle's model; the full ledger (result codes, expiry, refunds) is its own issue.
 */
export interface Balances {
  debitsPending: bigint;
  debitsPosted: bigint;
  creditsPending: bigint;
  creditsPosted: bigint;
  debitsMustNotExceedCredits: boolean;
}

export type TransferResult = 'ok' | 'exceeds_credits' | 'amount_exceeds_pending' | 'currency_mismatch';

/** What the cardholder can still spend: posted credits less every debit, pending or posted. */
export function available(account: Balances): bigint {
  return account.creditsPosted - account.debitsPosted - account.debitsPending;
}

/** A pending (hold) or single-phase transfer from `debit`. */
export function checkDebit(debit: Balances, amount: bigint): TransferResult {
  if (debit.debitsMustNotExceedCredits && debit.debitsPending + debit.debitsPosted + amount > debit.creditsPosted) return 'exceeds_credits';
  return 'ok';
}

/** Posting a pending transfer for `amount` (≤ the pending amount; the rest is released). */
export function checkPost(pendingAmount: bigint, amount: bigint): TransferResult {
  return amount > pendingAmount ? 'amount_exceeds_pending' : 'ok';
}
