/**
 * One row per ledger result code, in the documented order of precedence (rules.ts
 * transferResults, docs/ledger.md), shared by the pure-rules test and the SQL-store test.
 * Fixture: a cardholder `A` (debits must not exceed credits) funded with 1000 by `F`, a merchant
 * `B`, a USD account `U`, an account `C` whose credits must not exceed its debits, and a pending
 * transfer `hold` A→B of 500 that expires 60 s after t0. Rows may add setup transfers first.
 * Three more accounts start near ledgerBalanceMax (each with equal debits and credits, so the
 * ledger stays balanced) for the overflows_* rows, each in a currency of its own so no currency's
 * total passes 64 bits: `P` (EUR, beside an empty `E`) in its pending columns, `Q` (GBP, beside an
 * empty `G`) in its posted columns, and `S` (USD, beside `U`) with pending and posted each half full
 * but together nearly full.
 */
import { limits } from '@kessai/protocol';
import type { TransferInput, TransferResult } from '../src/ledger/rules.ts';

export interface FixtureAccount {
  id: string;
  currency: string;
  debitsMustNotExceedCredits?: boolean;
  creditsMustNotExceedDebits?: boolean;
  /** Opening balances (default 0): debits equal credits, pending and posted alike. */
  pending?: bigint;
  posted?: bigint;
}

const max = limits.ledgerBalanceMax;
const half = 2n ** 62n;

export const t0 = Date.UTC(2026, 0, 1);

export const fixtureAccounts: FixtureAccount[] = [
  { id: 'acct_A', currency: 'JPY', debitsMustNotExceedCredits: true },
  { id: 'acct_B', currency: 'JPY' },
  { id: 'acct_C', currency: 'JPY', creditsMustNotExceedDebits: true },
  { id: 'acct_F', currency: 'JPY' },
  { id: 'acct_U', currency: 'USD' },
  { id: 'acct_P', currency: 'EUR', pending: max - 5n },
  { id: 'acct_E', currency: 'EUR' },
  { id: 'acct_Q', currency: 'GBP', posted: max - 5n },
  { id: 'acct_G', currency: 'GBP' },
  { id: 'acct_S', currency: 'USD', pending: half, posted: half - 10n },
];

const jpy = (id: string, debit: string, credit: string, amount: bigint, more: Partial<TransferInput> = {}): TransferInput => ({ id, kind: 'single', debitAccountId: debit, creditAccountId: credit, amount, currency: 'JPY', ...more });

export const fund = jpy('xfer_fund', 'acct_F', 'acct_A', 1000n);
export const hold = jpy('xfer_hold', 'acct_A', 'acct_B', 500n, { kind: 'pending', timeoutSeconds: 60 });
const post = (id: string, amount: bigint, more: Partial<TransferInput> = {}): TransferInput => ({ id, kind: 'post_pending', pendingId: 'xfer_hold', amount, currency: 'JPY', ...more });
const voidHold = (id: string): TransferInput => ({ id, kind: 'void_pending', pendingId: 'xfer_hold', amount: 0n, currency: 'JPY' });

export interface LedgerCase {
  result: TransferResult;
  name: string;
  setup?: TransferInput[];
  transfer: TransferInput;
  /** Seconds after t0 at which the transfer is submitted (setup runs at t0). */
  atSeconds?: number;
}

export const resultCases: LedgerCase[] = [
  { result: 'ok', name: 'a single transfer within the balance', transfer: jpy('xfer_new', 'acct_A', 'acct_B', 100n) },
  { result: 'id_must_not_be_empty', name: 'an empty id, even with a negative amount', transfer: jpy('', 'acct_A', 'acct_B', -1n) },
  { result: 'amount_must_not_be_negative', name: 'a negative amount, even for an existing id', transfer: { ...fund, amount: -1n } },
  { result: 'amount_exceeds_maximum', name: 'an amount past ledgerAmountMax, even for an existing id', transfer: { ...fund, amount: limits.ledgerAmountMax + 1n } },
  { result: 'exists_with_different_kind', name: 'the funding id again as a pending transfer', transfer: { ...fund, kind: 'pending' } },
  { result: 'exists_with_different_pending_id', name: 'the funding id again naming a pending transfer', transfer: { ...fund, pendingId: 'xfer_hold' } },
  { result: 'exists_with_different_timeout', name: 'the funding id again with a timeout', transfer: { ...fund, timeoutSeconds: 5 } },
  { result: 'exists_with_different_debit_account_id', name: 'the funding id again from another account', transfer: { ...fund, debitAccountId: 'acct_B' } },
  { result: 'exists_with_different_credit_account_id', name: 'the funding id again to another account', transfer: { ...fund, creditAccountId: 'acct_B' } },
  { result: 'exists_with_different_amount', name: 'the funding id again with another amount (which would also exceed credits)', transfer: { ...fund, amount: 99_999n } },
  { result: 'exists_with_different_currency', name: 'the funding id again in another currency', transfer: { ...fund, currency: 'USD' } },
  { result: 'exists', name: 'the funding transfer again, field for field', transfer: fund },
  { result: 'pending_id_must_be_empty', name: 'a single transfer naming a pending transfer', transfer: jpy('xfer_new', 'acct_A', 'acct_B', 1n, { pendingId: 'xfer_hold' }) },
  { result: 'timeout_reserved_for_pending_transfer', name: 'a single transfer with a timeout', transfer: jpy('xfer_new', 'acct_A', 'acct_B', 1n, { timeoutSeconds: 5 }) },
  { result: 'accounts_must_be_different', name: 'a transfer from an account to itself (that is also missing)', transfer: jpy('xfer_new', 'acct_X', 'acct_X', 1n) },
  { result: 'debit_account_not_found', name: 'an unknown debit account (and an unknown credit account)', transfer: jpy('xfer_new', 'acct_X', 'acct_Y', 1n) },
  { result: 'credit_account_not_found', name: 'an unknown credit account', transfer: jpy('xfer_new', 'acct_A', 'acct_Y', 1n) },
  { result: 'accounts_must_have_the_same_currency', name: 'a transfer between a JPY and a USD account', transfer: jpy('xfer_new', 'acct_A', 'acct_U', 1n) },
  { result: 'transfer_must_have_the_same_currency_as_accounts', name: 'a USD transfer between JPY accounts', transfer: jpy('xfer_new', 'acct_A', 'acct_B', 1n, { currency: 'USD' }) },
  { result: 'pending_id_must_not_be_empty', name: 'a post that names no pending transfer', transfer: { ...post('xfer_post', 1n), pendingId: undefined } },
  { result: 'pending_id_must_be_different', name: 'a post that names itself', transfer: post('xfer_post', 1n, { pendingId: 'xfer_post' }) },
  { result: 'void_amount_must_be_zero', name: 'a void with an amount', transfer: { ...voidHold('xfer_void'), amount: 5n } },
  { result: 'pending_transfer_not_found', name: 'a post of an unknown pending transfer', transfer: post('xfer_post', 1n, { pendingId: 'xfer_nope' }) },
  { result: 'pending_transfer_not_pending', name: 'a post of a single-phase transfer', transfer: post('xfer_post', 1n, { pendingId: 'xfer_fund' }) },
  { result: 'pending_transfer_has_different_debit_account_id', name: 'a post that names another debit account', transfer: post('xfer_post', 1n, { debitAccountId: 'acct_F' }) },
  { result: 'pending_transfer_has_different_credit_account_id', name: 'a post that names another credit account', transfer: post('xfer_post', 1n, { creditAccountId: 'acct_F' }) },
  { result: 'pending_transfer_has_different_currency', name: 'a post in another currency', transfer: post('xfer_post', 1n, { currency: 'USD' }) },
  { result: 'exceeds_pending_transfer_amount', name: 'a post of more than the hold, even after it was posted', setup: [post('xfer_post1', 200n)], transfer: post('xfer_post2', 501n) },
  { result: 'pending_transfer_already_posted', name: 'a second post of a hold', setup: [post('xfer_post1', 200n)], transfer: post('xfer_post2', 100n) },
  { result: 'pending_transfer_already_voided', name: 'a post of a voided hold', setup: [voidHold('xfer_void1')], transfer: post('xfer_post2', 100n) },
  { result: 'pending_transfer_expired', name: 'a post of a hold whose timeout has passed', atSeconds: 60, transfer: post('xfer_post', 100n) },
  { result: 'overflows_debits_pending', name: 'a hold past 64 bits of pending debits', transfer: jpy('xfer_new', 'acct_P', 'acct_E', 6n, { kind: 'pending', currency: 'EUR' }) },
  { result: 'overflows_credits_pending', name: 'a hold past 64 bits of pending credits', transfer: jpy('xfer_new', 'acct_E', 'acct_P', 6n, { kind: 'pending', currency: 'EUR' }) },
  { result: 'overflows_debits_posted', name: 'a transfer past 64 bits of posted debits', transfer: jpy('xfer_new', 'acct_Q', 'acct_G', 6n, { currency: 'GBP' }) },
  { result: 'overflows_credits_posted', name: 'a transfer past 64 bits of posted credits', transfer: jpy('xfer_new', 'acct_G', 'acct_Q', 6n, { currency: 'GBP' }) },
  { result: 'overflows_debits', name: 'a transfer past 64 bits of pending and posted debits together', transfer: jpy('xfer_new', 'acct_S', 'acct_U', 10n, { currency: 'USD' }) },
  { result: 'overflows_credits', name: 'a transfer past 64 bits of pending and posted credits together', transfer: jpy('xfer_new', 'acct_U', 'acct_S', 10n, { currency: 'USD' }) },
  { result: 'exceeds_credits', name: 'a debit beyond what the cardholder has (1000 funded, 500 held)', transfer: jpy('xfer_new', 'acct_A', 'acct_C', 501n) },
  { result: 'exceeds_debits', name: 'a credit beyond what the capped account has been debited', transfer: jpy('xfer_new', 'acct_F', 'acct_C', 1n) },
];
