/**
 * Applies transfers to PostgreSQL. Every function runs inside the caller's transaction and locks
 * the accounts it touches in id order (SELECT … FOR UPDATE), so concurrent transfers on one
 * account serialize and never overdraw. Debits always equal credits: each transfer adds the same
 * amount to one account's debits and another's credits.
 */
import { newId, type Currency } from '@kessai/protocol';
import type { Queryable } from '@kessai/service';
import { checkDebit, checkPost, type Balances, type TransferResult } from './rules.ts';

interface AccountRow {
  id: string;
  currency: string;
  debits_pending: bigint;
  debits_posted: bigint;
  credits_pending: bigint;
  credits_posted: bigint;
  debits_must_not_exceed_credits: boolean;
}

export function toBalances(row: AccountRow): Balances {
  return {
    debitsPending: BigInt(row.debits_pending),
    debitsPosted: BigInt(row.debits_posted),
    creditsPending: BigInt(row.credits_pending),
    creditsPosted: BigInt(row.credits_posted),
    debitsMustNotExceedCredits: row.debits_must_not_exceed_credits,
  };
}

export async function createAccount(tx: Queryable, kind: 'cardholder' | 'merchant' | 'issuer_funding', currency: Currency, debitsMustNotExceedCredits: boolean): Promise<string> {
  const id = newId('acct');
  await tx.query('insert into ledger_accounts (id, kind, currency, debits_must_not_exceed_credits) values ($1, $2, $3, $4)', [id, kind, currency, debitsMustNotExceedCredits]);
  return id;
}

async function lockAccounts(tx: Queryable, ids: string[]): Promise<Map<string, AccountRow>> {
  const rows = await tx.query<AccountRow>('select * from ledger_accounts where id = any($1::text[]) order by id for update', [ids]);
  return new Map(rows.map((row) => [row.id, row]));
}

export async function readAccount(tx: Queryable, id: string): Promise<Balances & { currency: string }> {
  const [row] = await tx.query<AccountRow>('select * from ledger_accounts where id = $1', [id]);
  if (!row) throw new Error(`ledger account ${id} missing`);
  return { ...toBalances(row), currency: row.currency };
}

interface TransferSpec {
  debitAccountId: string;
  creditAccountId: string;
  amount: bigint;
  currency: Currency;
}

/** A single-phase (posted at once) or pending (hold) transfer. Returns its id, or why it was refused. */
export async function createTransfer(tx: Queryable, spec: TransferSpec, phase: 'single' | 'pending'): Promise<{ result: 'ok'; id: string } | { result: Exclude<TransferResult, 'ok'> }> {
  const accounts = await lockAccounts(tx, [spec.debitAccountId, spec.creditAccountId]);
  const debit = accounts.get(spec.debitAccountId);
  const credit = accounts.get(spec.creditAccountId);
  if (!debit || !credit) throw new Error('transfer names a missing account');
  if (debit.currency !== spec.currency || credit.currency !== spec.currency) return { result: 'currency_mismatch' };
  const result = checkDebit(toBalances(debit), spec.amount);
  if (result !== 'ok') return { result };
  const id = newId('xfer');
  const column = phase === 'pending' ? 'pending' : 'posted';
  await tx.query('insert into transfers (id, debit_account_id, credit_account_id, amount, kind, currency) values ($1, $2, $3, $4, $5, $6)', [id, spec.debitAccountId, spec.creditAccountId, spec.amount, phase, spec.currency]);
  await tx.query(`update ledger_accounts set debits_${column} = debits_${column} + $2 where id = $1`, [spec.debitAccountId, spec.amount]);
  await tx.query(`update ledger_accounts set credits_${column} = credits_${column} + $2 where id = $1`, [spec.creditAccountId, spec.amount]);
  return { result: 'ok', id };
}

/** Posts a pending transfer for `amount` (≤ pending; the remainder is released) or voids it (amount 0n and `void`). */
export async function resolvePending(tx: Queryable, pendingId: string, action: 'post' | 'void', amount: bigint): Promise<TransferResult> {
  const [pending] = await tx.query<{ debit_account_id: string; credit_account_id: string; amount: bigint; currency: string }>("select debit_account_id, credit_account_id, amount, currency from transfers where id = $1 and kind = 'pending'", [pendingId]);
  if (!pending) throw new Error(`pending transfer ${pendingId} missing`);
  const held = BigInt(pending.amount);
  const posted = action === 'post' ? amount : 0n;
  const result = checkPost(held, posted);
  if (result !== 'ok') return result;
  await lockAccounts(tx, [pending.debit_account_id, pending.credit_account_id]);
  await tx.query('insert into transfers (id, debit_account_id, credit_account_id, amount, kind, pending_id, currency) values ($1, $2, $3, $4, $5, $6, $7)', [newId('xfer'), pending.debit_account_id, pending.credit_account_id, posted, action === 'post' ? 'post_pending' : 'void_pending', pendingId, pending.currency]);
  await tx.query('update ledger_accounts set debits_pending = debits_pending - $2, debits_posted = debits_posted + $3 where id = $1', [pending.debit_account_id, held, posted]);
  await tx.query('update ledger_accounts set credits_pending = credits_pending - $2, credits_posted = credits_posted + $3 where id = $1', [pending.credit_account_id, held, posted]);
  return 'ok';
}
