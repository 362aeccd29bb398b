/**
 * Formatting shared by the pages. Amounts are integer minor units (bigint, or the wire's decimal
 * string) and never pass through a float: the integer is split into whole and fraction by the
 * currency's minor-unit digits (the protocol's ISO 4217 table), and the resulting decimal string is
 * given to `Intl.NumberFormat.format`, which formats a numeric string exactly (Node 20, Chromium),
 * so an amount past 2^53 keeps every digit.
 */
import { currencyExponents, isCurrency } from '../../packages/protocol/src/money.ts';

/** The decimal string of `amountMinor` minor units with `exponent` fraction digits: 570050n, 2 → "5700.50". */
export function minorToDecimal(amountMinor: bigint, exponent: number): string {
  const negative = amountMinor < 0n;
  const digits = (negative ? -amountMinor : amountMinor).toString().padStart(exponent + 1, '0');
  const whole = digits.slice(0, digits.length - exponent);
  const fraction = exponent > 0 ? `.${digits.slice(digits.length - exponent)}` : '';
  return `${negative ? '-' : ''}${whole}${fraction}`;
}

const formatters = new Map<string, Intl.NumberFormat>();

/**
 * The formatter of a locale and currency. English shows the ISO code ("JPY 8,900", "KWD 12.345"):
 * a bare "¥" would not tell yen from yuan. Japanese shows the locale's own symbol ("￥5,700").
 */
function formatter(locale: string, currency: string, exponent: number): Intl.NumberFormat {
  const key = `${locale}|${currency}`;
  let found = formatters.get(key);
  if (!found) {
    found = new Intl.NumberFormat(locale, {
      style: 'currency',
      currency,
      currencyDisplay: locale.startsWith('ja') ? 'symbol' : 'code',
      minimumFractionDigits: exponent,
      maximumFractionDigits: exponent,
    });
    formatters.set(key, found);
  }
  return found;
}

/**
 * An amount for people: `money("5700", "JPY", "ja-JP")` → "￥5,700", `money("12345", "KWD", "en")` →
 * "KWD 12.345" (the space is the locale's no-break space). A currency Kessai does not know is shown
 * as its code and the plain integer of minor units.
 */
export function money(amountMinor: string | bigint, currency: string, locale = 'en'): string {
  const value = typeof amountMinor === 'bigint' ? amountMinor : BigInt(amountMinor);
  if (!isCurrency(currency)) return `${currency} ${value.toString()}`;
  const exponent = currencyExponents[currency];
  // The string overload formats the decimal exactly (ECMA-402 "Intl.NumberFormat v3").
  const decimal = minorToDecimal(value, exponent) as `${number}`;
  return formatter(locale, currency, exponent).format(decimal);
}

/** A line's total as a wire string: quantity × unit price, in bigint. */
export function lineTotal(quantity: number, unitPriceMinor: string): string {
  return (BigInt(unitPriceMinor) * BigInt(quantity)).toString();
}
