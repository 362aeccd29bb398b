/**
 * The bank's account store is loaded by its operator: `POST /admin/v1/accounts/import`
 * (`kessai accounts import FILE`), and `kessai start`'s demo cards through the same function. Each
 * row is checked on its own and answered by its row number — created, unchanged, conflict or
 * rejected — naming fields, never values: at most a card's last four digits come back. A card
 * already in the store is never overwritten: the same data again is `unchanged`, other data a
 * `conflict`. The rows that pass are written in one transaction: a new cardholder account funded
 * from the issuer's funding account by an ordinary ledger transfer, a credit line for a credit card
 * (credit-line.ts), and the card sealed as the card vault keeps it (card-vault.ts, pin.ts), with
 * its mode: a test card (`test` true) is paid only by test-mode requests, a live one (the default)
 * only by live ones (authorize.ts, `livemode_mismatch`).
 */
import { isCurrency, isValidCardNumber, expiryPattern, limits, newId, normalizeCardNumber, parseDecimalAmount, Secret, type AccountImportResult, type AccountImportRow, type AccountsImportResponse, type Currency } from '@kessai/protocol';
import type { Db, Queryable } from '@kessai/service';
import { openCard, panLookup, sameText, insertCard, type CardKeys } from './card-vault.ts';
import { openCreditLine } from './credit-line.ts';
import { isLegacyVerifier } from './pin.ts';
import { createAccount, createTransfers } from './ledger/store.ts';

/** A row that passed every check: the values the store takes, the PIN wrapped. */
export interface AccountToImport {
  cardNumber: string;
  holderName: string;
  expiry: string;
  pin: Secret<string>;
  balanceMinor: bigint;
  currency: Currency;
  kind: 'debit' | 'credit';
  creditLineMinor: bigint | undefined;
  status: 'active' | 'blocked';
  /** A test card: only a test-mode approval (`lm` false) pays with it. */
  test: boolean;
}

const required = ['card_number', 'holder_name', 'expiry', 'pin', 'balance', 'currency', 'kind'] as const;

/**
 * One protocol rule per field, in the row's order; returns the parsed account or the names of the
 * fields that fail. Pure: no I/O, no clock (an expired card may be imported: the bank declines it).
 */
export function checkAccountRow(row: AccountImportRow): { account: AccountToImport } | { fields: string[] } {
  const fields: string[] = required.filter((name) => row[name] === undefined || row[name].trim() === '');
  const cardNumber = normalizeCardNumber(row.card_number ?? '');
  if (!fields.includes('card_number') && !isValidCardNumber(cardNumber)) fields.push('card_number');
  const holderName = (row.holder_name ?? '').trim();
  if (!fields.includes('holder_name') && (holderName.length > limits.holderNameLengthMax || /[\p{Cc}]/u.test(holderName))) fields.push('holder_name');
  const expiry = (row.expiry ?? '').trim();
  if (!fields.includes('expiry') && !expiryPattern.test(expiry)) fields.push('expiry');
  const pin = (row.pin ?? '').trim();
  if (!fields.includes('pin') && !/^[0-9]{4,12}$/.test(pin)) fields.push('pin');
  const currency = (row.currency ?? '').trim().toUpperCase();
  if (!fields.includes('currency') && !isCurrency(currency)) fields.push('currency');
  const kind = (row.kind ?? '').trim().toLowerCase();
  if (!fields.includes('kind') && kind !== 'debit' && kind !== 'credit') fields.push('kind');
  const amount = (name: 'balance' | 'credit_line'): bigint | undefined => {
    const text = row[name]?.trim();
    if (text === undefined || text === '' || !isCurrency(currency)) return undefined;
    try {
      return parseDecimalAmount(text, currency);
    } catch {
      if (!fields.includes(name)) fields.push(name);
      return undefined;
    }
  };
  const balanceMinor = amount('balance');
  const creditLineMinor = amount('credit_line');
  // A credit card names its line; a debit card has none.
  if (kind === 'credit' && (row.credit_line === undefined || row.credit_line.trim() === '') && !fields.includes('credit_line')) fields.push('credit_line');
  if (kind === 'debit' && row.credit_line !== undefined && row.credit_line.trim() !== '' && !fields.includes('credit_line')) fields.push('credit_line');
  const status = (row.status ?? 'active').trim().toLowerCase() || 'active';
  if (status !== 'active' && status !== 'blocked') fields.push('status');
  const test = (row.test ?? '').trim().toLowerCase() || 'false';
  if (test !== 'true' && test !== 'false') fields.push('test');
  if (fields.length > 0 || balanceMinor === undefined || !isCurrency(currency)) return { fields: fields.length > 0 ? fields : ['balance'] };
  return {
    account: { cardNumber, holderName, expiry, pin: new Secret(pin), balanceMinor, currency, kind: kind as 'debit' | 'credit', creditLineMinor: kind === 'credit' ? creditLineMinor : undefined, status: status as 'active' | 'blocked',
      test: test === 'true',
    },
  };
}

/** The last four digits, when the number is long enough to be a card's: all an answer or a log may show. */
function last4Of(cardNumber: string | undefined): string | undefined {
  const digits = normalizeCardNumber(cardNumber ?? '');
  return /^[0-9]{12,19}$/.test(digits) ? digits.slice(-4) : undefined;
}

interface StoredCard {
  pan_lookup: string;
  card_record: string;
  card_key_id: string;
  account_id: string;
  pin_verifier: string;
  credit_line_account_id: string | null;
  opening_balance_minor: bigint | string | null;
  opening_credit_line_minor: bigint | string | null;
  currency: string;
  /** Null: imported before the flag existed (migration 0012); the same data again sets it. */
  test: boolean | null;
}

/** Which fields of an existing card differ from the row (names only); empty: the same card. */
function differences(keys: CardKeys, stored: StoredCard, account: AccountToImport): string[] {
  const data = openCard(keys, stored.pan_lookup, stored.card_record, stored.card_key_id);
  const fields: string[] = [];
  if (!sameText(data.holderName.expose(), account.holderName)) fields.push('holder_name');
  if (!sameText(data.expiry.expose(), account.expiry)) fields.push('expiry');
  // A verifier of an earlier version (argon2id) cannot be compared: the import re-derives it (below).
  if (!isLegacyVerifier(stored.pin_verifier) && !keys.pin.matches(stored.pin_verifier, stored.pan_lookup, account.pin)) fields.push('pin');
  if (stored.currency !== account.currency) fields.push('currency');
  if ((stored.credit_line_account_id !== null) !== (account.kind === 'credit')) fields.push('kind');
  if (stored.opening_balance_minor !== null && BigInt(stored.opening_balance_minor) !== account.balanceMinor) fields.push('balance');
  if (stored.opening_credit_line_minor !== null && account.creditLineMinor !== undefined && BigInt(stored.opening_credit_line_minor) !== account.creditLineMinor) fields.push('credit_line');
  if (stored.test !== null && stored.test !== account.test) fields.push('test');
  return fields;
}

/** The issuer's funding account in `currency`: the oldest, or a new one. */
async function fundingAccount(tx: Queryable, currency: Currency): Promise<string> {
  const [row] = await tx.query<{ id: string }>("select id from ledger_accounts where kind = 'issuer_funding' and currency = $1 order by created_at, id limit 1", [currency]);
  return row?.id ?? createAccount(tx, 'issuer_funding', currency);
}

/** Opens the account, funds it, grants a credit card its line, and stores the card sealed. */
async function createCardAccount(tx: Queryable, keys: CardKeys, account: AccountToImport, now: Date): Promise<string> {
  const accountId = await createAccount(tx, 'cardholder', account.currency, { debitsMustNotExceedCredits: true });
  if (account.balanceMinor > 0n) {
    const funding = await fundingAccount(tx, account.currency);
    const [funded] = await createTransfers(tx, [{ id: newId('xfer'), kind: 'single', debitAccountId: funding, creditAccountId: accountId, amount: account.balanceMinor, currency: account.currency }], now);
    if (funded !== 'ok') throw new Error(`funding an imported account failed: ${funded}`);
  }
  const lineAccountId = account.creditLineMinor === undefined ? null : await openCreditLine(tx, accountId, account.currency, account.creditLineMinor, now);
  await insertCard(tx, keys, { cardNumber: account.cardNumber, holderName: account.holderName, expiry: account.expiry, accountId, status: account.status, pin: account.pin, creditLineAccountId: lineAccountId });
  await tx.query('update cards set opening_balance_minor = $2, opening_credit_line_minor = $3, test = $4 where pan_lookup = $1', [
    panLookup(keys, account.cardNumber),
    account.balanceMinor,
    account.creditLineMinor ?? null,
    account.test,
  ]);
  return accountId;
}

/**
 * Imports up to accountsImportRowsMax rows whose first is the file's row `firstRow`. Invalid rows
 * are rejected and the others imported, in one transaction: a database failure imports none.
 */
export async function importAccounts(db: Db, keys: CardKeys, rows: readonly AccountImportRow[], firstRow = 1, now = new Date()): Promise<AccountsImportResponse> {
  if (rows.length > limits.accountsImportRowsMax) throw new TypeError(`importAccounts takes at most ${limits.accountsImportRowsMax} rows`);
  const checked = rows.map((row, index) => ({ row: firstRow + index, last4: last4Of(row.card_number), check: checkAccountRow(row) }));
  const results = await db.transaction(async (tx) => {
    const out: AccountImportResult[] = [];
    for (const { row, last4, check } of checked) {
      const shown = last4 ? { card_last4: last4 } : {};
      if ('fields' in check) {
        out.push({ row, result: 'rejected', code: 'account_row_invalid', fields: check.fields, ...shown });
        continue;
      }
      const lookup = panLookup(keys, check.account.cardNumber);
      // Two imports of one card serialize on its row; a card new to both is caught by the primary key.
      const [stored] = await tx.query<StoredCard>(
        'select c.pan_lookup, c.card_record, c.card_key_id, c.account_id, c.pin_verifier, c.credit_line_account_id, c.opening_balance_minor, c.opening_credit_line_minor, c.test, a.currency from cards c join ledger_accounts a on a.id = c.account_id where c.pan_lookup = $1 for update of c',
        [lookup],
      );
      if (stored) {
        const fields = differences(keys, stored, check.account);
        // A PIN that differs is a wrong PIN for the card's velocity record (pin.ts): the import is no way around the online limits to test PINs.
        if (fields.includes('pin')) await tx.query('insert into pin_failures (pan_lookup, at) values ($1, $2)', [lookup, now]);
        // Migration 0008's other half: a card still holding an argon2id verifier takes the keyed value of the imported PIN.
        if (fields.length === 0 && isLegacyVerifier(stored.pin_verifier)) await tx.query('update cards set pin_verifier = $2 where pan_lookup = $1', [lookup, keys.pin.derive(lookup, check.account.pin)]);
        // Migration 0012's other half: a card imported before modes takes the mode the same data names now.
        if (fields.length === 0 && stored.test === null) {
          await tx.query('update cards set test = $2 where pan_lookup = $1', [lookup, check.account.test]);
        }
        out.push(fields.length === 0 ? { row, result: 'unchanged', account_id: stored.account_id, ...shown } : { row, result: 'conflict', code: 'account_conflict', fields, ...shown });
        continue;
      }
      out.push({ row, result: 'created', account_id: await createCardAccount(tx, keys, check.account, now), ...shown });
    }
    return out;
  });
  const count = (result: AccountImportResult['result']) => results.filter((r) => r.result === result).length;
  return { created: count('created'), unchanged: count('unchanged'), conflicts: count('conflict'), rejected: count('rejected'), results };
}
