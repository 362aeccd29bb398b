/**
 * How the consoles write amounts and times: amounts from their decimal strings as bigint with the
 * currency's exponent (never through a float), times in UTC so every operator reads the same.
 */
import { formatAmount, isCurrency } from '../../../packages/protocol/src/money.ts';

export function amountText(minor: string, currency: string): string {
  if (!/^-?\d+$/.test(minor)) return minor;
  return isCurrency(currency) ? formatAmount(BigInt(minor), currency) : `${currency} ${minor}`;
}

/** Only the number, grouped (for a table whose currency is in its own column). */
export function amountDigits(minor: string, currency: string): string {
  const text = amountText(minor, currency);
  return text.startsWith(`${currency} `) ? text.slice(currency.length + 1) : text.replace(`${currency} `, '');
}

/** `2026-11-25 15:04:05` (UTC). */
export function timeText(iso: string | null): string {
  if (!iso) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toISOString().slice(0, 19).replace('T', ' ');
}
