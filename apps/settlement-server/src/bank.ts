/**
 * A bank is data: its id, the name payers are shown, the card ranges it issues, its conversion mode
 * and cipher-2 algorithm, how long its authorization holds last, its fees and the time zone of its
 * business day. `bankDescription` validates one (KESSAI_BANK_FILE of `kessai serve settlement`, the
 * demo banks of fixtures/); `settlementConfigOfBank` turns it into the parts of a SettlementConfig.
 * Accounts and cards are not part of it: they are imported (accounts-import.ts).
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { amountString, conversionMode, currencies, keyManagementAlgorithms, limits } from '@kessai/protocol';
import type { SettlementConfig } from './config.ts';
import { checkTimeZone } from './settlement/business-day.ts';
import type { FeeSchedule } from './settlement/fees.ts';
import type { SettlementOptions } from './settlement/options.ts';

const feeSchedule = z.strictObject({
  /** Percentage part in basis points (1 bp = 0.01 %). */
  basisPoints: z.number().int().min(0).max(limits.feeBasisPointsMax),
  /** Fixed part in minor units of the currency, as an integer string. */
  fixedMinor: amountString,
});

const timeZone = z.string().min(1).max(64).refine((zone) => {
  try {
    checkTimeZone(zone);
    return true;
  } catch {
    return false;
  }
}, 'an IANA time zone such as Asia/Tokyo');

export const bankDescription = z.strictObject({
  /** The issuer id brokers and the directory know it by. */
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/, 'issuer id: lower-case letters, digits and -'),
  /** The name payers are shown. */
  name: z.string().min(1).max(limits.stringLengthMax),
  /** Card-number prefixes (BIN ranges) this bank issues; brokers route by the longest match. */
  cardRanges: z.array(z.string().regex(/^[0-9]{1,11}$/, 'digits only')).min(1).max(limits.directoryCardRangesMax),
  /** reseal (embodiment 1) or pass_through (embodiment 2, patent claim 3). */
  conversionMode,
  /** The cipher-2 key algorithm this bank publishes (RSA-OAEP-256 for a legacy HSM). */
  cipher2: z.enum(keyManagementAlgorithms),
  /** How long an authorization hold lasts before it expires on its own (default limits.holdTimeoutSecondsDefault). */
  holdTimeoutSeconds: z.number().int().min(limits.holdTimeoutSecondsMin).max(limits.holdTimeoutSecondsMax).optional(),
  /** Fees of merchants without a schedule of their own: `default`, and per currency. */
  fees: z.strictObject({ default: feeSchedule.optional(), perCurrency: z.partialRecord(z.enum(currencies), feeSchedule).optional() }).optional(),
  /** IANA time zone the business day is counted in (default UTC). */
  businessDayTimeZone: timeZone.optional(),
});

export type BankDescription = z.infer<typeof bankDescription>;

function feeOf(schedule: z.infer<typeof feeSchedule>): FeeSchedule {
  return { basisPoints: schedule.basisPoints, fixedMinor: BigInt(schedule.fixedMinor) };
}

/** The settlement options the description sets (time zone, fees), over `base` (the worker's schedule, a test's clock). */
export function settlementOptionsOfBank(bank: BankDescription, base: SettlementOptions = {}): SettlementOptions {
  const perCurrency = Object.entries(bank.fees?.perCurrency ?? {}).map(([currency, schedule]) => [currency, feeOf(schedule)] as const);
  return {
    ...base,
    ...(bank.businessDayTimeZone ? { timeZone: bank.businessDayTimeZone } : {}),
    ...(perCurrency.length > 0 ? { defaultFees: Object.fromEntries(perCurrency) } : {}),
    ...(bank.fees?.default ? { defaultFee: feeOf(bank.fees.default) } : {}),
  };
}

/** What a SettlementConfig takes from the bank's description. */
export function settlementConfigOfBank(bank: BankDescription, base: SettlementOptions = {}): Pick<SettlementConfig, 'issuerId' | 'name' | 'conversionMode' | 'holdTimeoutSeconds' | 'settlement'> {
  return {
    issuerId: bank.id,
    name: bank.name,
    conversionMode: bank.conversionMode,
    ...(bank.holdTimeoutSeconds !== undefined ? { holdTimeoutSeconds: bank.holdTimeoutSeconds } : {}),
    settlement: settlementOptionsOfBank(bank, base),
  };
}

/** The key ring a bank's settlement server holds: cipher 2 in the bank's algorithm, and the authorization-signing key. */
export function bankKeySpecs(bank: Pick<BankDescription, 'cipher2'>) {
  return [
    { name: 'cipher2', use: 'enc' as const, alg: bank.cipher2 },
    { name: 'authorization-signing', use: 'sig' as const },
  ];
}

/** Reads and validates a bank description file (JSON). Errors name the file and the field, never a value. */
export async function readBankFile(file: string): Promise<BankDescription> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new TypeError(`cannot read the bank description ${file}: ${(err as NodeJS.ErrnoException).code ?? 'not JSON'}`, { cause: err });
  }
  const parsed = bankDescription.safeParse(json);
  if (!parsed.success) throw new TypeError(`invalid bank description ${file}: ${z.prettifyError(parsed.error).replace(/\n/g, '; ')}`);
  return parsed.data;
}
