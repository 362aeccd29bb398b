/**
 * Credit lines (docs/ledger.md, "Credit lines"): a credit card's cardholder account is granted its
 * limit by a transfer from a `credit_line` account of its own. The ledger's two balance flags then
 * enforce the limit without any rule of its own: the cardholder account cannot spend more than it
 * was granted (debits_must_not_exceed_credits), and the line cannot take back more than it granted
 * (credits_must_not_exceed_debits) — nor what the payer has already spent or holds, because that
 * would overdraw the cardholder account.
 */
import { newId, type Currency } from '@kessai/protocol';
import type { Queryable } from '@kessai/service';
import type { TransferResult } from './ledger/rules.ts';
import { createAccount, createTransfers, readAccount } from './ledger/store.ts';

/** Opens the line for a cardholder account and grants `limit`; returns the line's account id. */
export async function openCreditLine(tx: Queryable, cardholderAccountId: string, currency: Currency, limit: bigint, now: Date): Promise<string> {
  const lineAccountId = await createAccount(tx, 'credit_line', currency, { creditsMustNotExceedDebits: true });
  if (limit > 0n) {
    const [result] = await createTransfers(tx, [{ id: newId('xfer'), kind: 'single', debitAccountId: lineAccountId, creditAccountId: cardholderAccountId, amount: limit, currency }], now);
    if (result !== 'ok') throw new Error(`granting a credit line failed: ${result}`);
  }
  return lineAccountId;
}

/** The limit a line grants now: what it has granted minus what was handed back. */
export async function creditLimitOf(db: Queryable, lineAccountId: string): Promise<bigint> {
  const line = await readAccount(db, lineAccountId);
  return line.debitsPosted - line.creditsPosted;
}

/**
 * Moves the limit to `limit`: a raise is one more grant; a cut hands the difference back from the
 * cardholder account, which the ledger refuses (`exceeds_credits`) when the payer has already spent
 * or holds more than the new limit leaves. `id` makes the change idempotent.
 */
export async function changeCreditLimit(
  tx: Queryable,
  id: string,
  accounts: { cardholderAccountId: string; lineAccountId: string },
  limit: bigint,
  now: Date,
): Promise<TransferResult | 'unchanged'> {
  const { cardholderAccountId, lineAccountId } = accounts;
  // Two changes of one line serialize here, so each sees the limit the other left.
  await tx.query('select id from ledger_accounts where id = $1 for update', [lineAccountId]);
  const line = await readAccount(tx, lineAccountId);
  const current = line.debitsPosted - line.creditsPosted;
  if (limit === current) return 'unchanged';
  const raise = limit > current;
  const [result] = await createTransfers(tx, [{
    id,
    kind: 'single',
    debitAccountId: raise ? lineAccountId : cardholderAccountId,
    creditAccountId: raise ? cardholderAccountId : lineAccountId,
    amount: raise ? limit - current : current - limit,
    currency: line.currency,
  }], now);
  return result!;
}
