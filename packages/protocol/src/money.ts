/**
 * Money is an integer count of minor units (bigint) beside an ISO 4217 code; on the wire it is a
 * decimal string. Floats never touch an amount.
 */
import { assert } from './assert.ts';
import { limits } from './limits.ts';

/** ISO 4217 minor-unit exponents of the currencies Kessai accepts. */
export const currencyExponents = {
  JPY: 0,
  USD: 2,
  EUR: 2,
  GBP: 2,
  KWD: 3,
  BHD: 3,
} as const;

export type Currency = keyof typeof currencyExponents;
/** The accepted codes as a non-empty tuple (typed, so `z.enum(currencies)` infers `Currency`). */
export const currencies = ['JPY', 'USD', 'EUR', 'GBP', 'KWD', 'BHD'] as const satisfies readonly [
  Currency,
  ...Currency[],
];
assert(
  currencies.length === Object.keys(currencyExponents).length
    && currencies.every((c) => Object.hasOwn(currencyExponents, c)),
  'currencies lists exactly the keys of currencyExponents',
);

export function isCurrency(code: string): code is Currency {
  return Object.hasOwn(currencyExponents, code);
}

/** A non-negative integer without leading zeros, at most 19 digits. */
export const amountPattern = /^(0|[1-9][0-9]{0,18})$/;

/** Parses a wire amount; throws TypeError on anything that is not a plain non-negative integer string. */
export function parseAmount(text: string): bigint {
  if (!amountPattern.test(text)) throw new TypeError('amount must be a non-negative integer string');
  const value = BigInt(text);
  if (value > limits.amountMinorMax) throw new TypeError('amount exceeds amountMinorMax');
  return value;
}

/**
 * Parses an amount written in the currency's units (`"1000"`, `"12.50"`, `"1000.000"` for KWD) into
 * minor units, exactly: digits only, at most the currency's exponent of decimals, no sign, no
 * grouping, never a float. Throws TypeError on anything else or above amountMinorMax.
 */
export function parseDecimalAmount(text: string, currency: Currency): bigint {
  const exponent = currencyExponents[currency];
  const match = /^(0|[1-9][0-9]{0,18})(?:\.([0-9]+))?$/.exec(text);
  if (!match) throw new TypeError('amount must be a non-negative decimal number like 1000 or 12.50');
  const fraction = match[2] ?? '';
  if (fraction.length > exponent) throw new TypeError(`amount has more than ${exponent} decimals for ${currency}`);
  const value = BigInt(match[1]!) * 10n ** BigInt(exponent) + BigInt(fraction.padEnd(exponent, '0') || '0');
  if (value > limits.amountMinorMax) throw new TypeError('amount exceeds amountMinorMax');
  return value;
}

/** Minor units as a plain decimal in the currency's units (`"12.50"`): what parseDecimalAmount reads back. */
export function formatDecimalAmount(amountMinor: bigint, currency: Currency): string {
  if (amountMinor < 0n) throw new RangeError('amount must not be negative');
  const exponent = currencyExponents[currency];
  const digits = amountMinor.toString().padStart(exponent + 1, '0');
  return exponent > 0 ? `${digits.slice(0, digits.length - exponent)}.${digits.slice(digits.length - exponent)}` : digits;
}

export function formatAmount(amountMinor: bigint, currency: Currency): string {
  const exponent = currencyExponents[currency];
  const negative = amountMinor < 0n;
  const digits = (negative ? -amountMinor : amountMinor).toString().padStart(exponent + 1, '0');
  const whole = digits.slice(0, digits.length - exponent).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const fraction = exponent > 0 ? `.${digits.slice(digits.length - exponent)}` : '';
  return `${negative ? '-' : ''}${currency} ${whole}${fraction}`;
}

export interface PricedLine {
  quantity: number;
  unit_price_minor: string;
}

/** Sum of quantity × unit price over the lines, exact. */
export function lineItemsTotal(lines: readonly PricedLine[]): bigint {
  let total = 0n;
  for (const line of lines) total += BigInt(line.quantity) * parseAmount(line.unit_price_minor);
  return total;
}
