/**
 * The demo world `kessai start` runs, as data (fixtures/): two bank descriptions — one re-seals
 * (embodiment 1), one takes credentials straight through (embodiment 2, patent claim 3) — and
 * their test cards as account-import files, whose numbers, PINs and outcomes README.md documents as
 * card networks document theirs. Every row says `"test": "true"`: they pay test-mode requests only.
 * Accounts are in JPY but one in KWD, a currency with three decimals. The cards reach a bank
 * through the operator's import (accounts-import.ts), nothing else.
 */
import { z } from 'zod';
import { accountImportRow, formatDecimalAmount, limits, parseDecimalAmount, type AccountImportRow, type ConversionMode, type Currency, type KeyManagementAlgorithm } from '@kessai/protocol';
import { bankDescription, type BankDescription } from './bank.ts';
import { checkAccountRow, importAccounts } from './accounts-import.ts';
import type { CardKeys } from './card-vault.ts';
import type { Db } from '@kessai/service';
import sakuraBank from '../fixtures/banks/sakura-bank.json' with { type: 'json' };
import fujiBank from '../fixtures/banks/fuji-bank.json' with { type: 'json' };
import sakuraCards from '../fixtures/cards/sakura-bank.json' with { type: 'json' };
import fujiCards from '../fixtures/cards/fuji-bank.json' with { type: 'json' };

/** A demo card as tests and the printed list read it (the import row parsed). */
export interface DemoCard {
  cardNumber: string;
  holderName: string;
  expiry: string;
  pin: string;
  status: 'active' | 'blocked';
  balanceMinor: bigint;
  /** A credit card: its account draws on a credit line of this limit (docs/ledger.md, "Credit lines"). */
  creditLimitMinor?: bigint;
  currency: Currency;
  /** A test card (every demo card is): only test-mode requests pay with it. */
  test: boolean;
  /** What the card demonstrates, for the printed list of test cards. */
  purpose: string;
}

export interface DemoIssuer {
  id: string;
  name: string;
  conversionMode: ConversionMode;
  cipher2: KeyManagementAlgorithm;
  cardPrefixes: string[];
  cards: DemoCard[];
}

/** A demo card file: account-import rows, each with a note of what it demonstrates (not imported). */
const demoCardFile = z.array(accountImportRow.extend({ note: z.string().min(1).max(200) }));

function demoCardOf(row: AccountImportRow & { note: string }): DemoCard {
  const checked = checkAccountRow(row);
  if ('fields' in checked) throw new Error(`a demo card row is invalid: ${checked.fields.join(', ')}`);
  const { account } = checked;
  return {
    cardNumber: account.cardNumber,
    holderName: account.holderName,
    expiry: account.expiry,
    pin: account.pin.expose(),
    status: account.status,
    balanceMinor: account.balanceMinor,
    ...(account.creditLineMinor !== undefined ? { creditLimitMinor: account.creditLineMinor } : {}),
    currency: account.currency,
    test: account.test,
    purpose: row.note,
  };
}

function demoIssuerOf(bankJson: unknown, cardsJson: unknown): DemoIssuer {
  const bank = bankDescription.parse(bankJson);
  return { id: bank.id, name: bank.name, conversionMode: bank.conversionMode, cipher2: bank.cipher2, cardPrefixes: bank.cardRanges, cards: demoCardFile.parse(cardsJson).map(demoCardOf) };
}

/** The demo banks' descriptions, as KESSAI_BANK_FILE would give them. */
export const demoBanks: readonly BankDescription[] = [bankDescription.parse(sakuraBank), bankDescription.parse(fujiBank)];

export const demoIssuers: DemoIssuer[] = [demoIssuerOf(sakuraBank, sakuraCards), demoIssuerOf(fujiBank, fujiCards)];

export const demoMerchantName = 'Kessai Tea House';

/** The account-import rows of a demo issuer's cards (what `kessai start` imports through importAccounts). */
export function demoCardRows(cards: readonly DemoCard[]): AccountImportRow[] {
  return cards.map((card) => ({
    card_number: card.cardNumber,
    holder_name: card.holderName,
    expiry: card.expiry,
    pin: card.pin,
    balance: formatUnits(card.balanceMinor, card.currency),
    currency: card.currency,
    kind: card.creditLimitMinor === undefined ? 'debit' : 'credit',
    ...(card.creditLimitMinor !== undefined ? { credit_line: formatUnits(card.creditLimitMinor, card.currency) } : {}),
    status: card.status,
    test: card.test ? 'true' : 'false',
  }));
}

/**
 * Imports demo cards into a bank's account store as `kessai accounts import` would, a batch of
 * accountsImportRowsMax at a time (a second start finds them unchanged); any refused row is a bug
 * in the fixtures. Answers how many were created.
 */
export async function importDemoCards(db: Db, cardKeys: CardKeys, cards: readonly DemoCard[]): Promise<number> {
  const rows = demoCardRows(cards);
  let created = 0;
  for (let start = 0; start < rows.length; start += limits.accountsImportRowsMax) {
    const imported = await importAccounts(db, cardKeys, rows.slice(start, start + limits.accountsImportRowsMax), start + 1);
    if (imported.rejected + imported.conflicts > 0) throw new Error(`demo cards: ${imported.rejected} rejected, ${imported.conflicts} in conflict`);
    created += imported.created;
  }
  return created;
}

function formatUnits(amountMinor: bigint, currency: Currency): string {
  const text = formatDecimalAmount(amountMinor, currency);
  if (parseDecimalAmount(text, currency) !== amountMinor) throw new Error('formatDecimalAmount does not round-trip');
  return text;
}
