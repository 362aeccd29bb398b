/** Formatting shared by the pages: amounts through the protocol's own formatter (bigint minor units, never floats). */
import { formatAmount, isCurrency } from '../../packages/protocol/src/money.ts';

/** "JPY 2,400" from a wire amount string and a currency code. */
export function money(amountMinor: string | bigint, currency: string): string {
  const value = typeof amountMinor === 'bigint' ? amountMinor : BigInt(amountMinor);
  return isCurrency(currency) ? formatAmount(value, currency) : `${currency} ${value.toString()}`;
}

/** A line's total as a wire string: quantity × unit price, in bigint. */
export function lineTotal(quantity: number, unitPriceMinor: string): string {
  return (BigInt(unitPriceMinor) * BigInt(quantity)).toString();
}
