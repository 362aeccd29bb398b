/**
 * What the operator consoles' list endpoints share (the broker's and the bank's admin-console.ts):
 * a page of at most `limit` items, newest first, found by reading one row more than asked, and the
 * conversions of database values to their JSON form.
 */
import { z } from 'zod';

/** A list answer: at most `limit` items, newest first, and whether older ones were left out. */
export const consolePage = <T extends z.ZodType>(item: T) =>
  z.strictObject({ items: z.array(item), limit: z.number().int(), has_more: z.boolean() });

/** One more row than asked tells whether there are more. */
export function consolePageOf<Row, View>(rows: Row[], limit: number, view: (row: Row) => View) {
  return { items: rows.slice(0, limit).map(view), limit, has_more: rows.length > limit };
}

/** A timestamp column as ISO 8601 (null stays null). */
export const isoOrNull = (value: Date | string | null): string | null => (value === null ? null : new Date(value).toISOString());

/** An int8/numeric column as a decimal string. */
export const decimalString = (value: bigint | string | number): string => BigInt(value).toString();
