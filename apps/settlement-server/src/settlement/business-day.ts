/**
 * Business days: a capture or refund belongs to the calendar day, in the settlement time zone
 * (IANA name, default UTC), of the moment its transfer was posted. A day is written `YYYY-MM-DD`;
 * it starts at local midnight and ends at the next local midnight (23 or 25 hours long on a
 * daylight-saving change).
 */
import { KessaiError } from '@kessai/protocol';

export const businessDayPattern = /^\d{4}-\d{2}-\d{2}$/;

const formats = new Map<string, Intl.DateTimeFormat>();

function formatOf(timeZone: string): Intl.DateTimeFormat {
  let format = formats.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });
    formats.set(timeZone, format);
  }
  return format;
}

/** Throws a TypeError for a time zone the runtime does not know (checked when the server starts). */
export function checkTimeZone(timeZone: string): void {
  try {
    formatOf(timeZone);
  } catch {
    throw new TypeError(`unknown settlement time zone ${JSON.stringify(timeZone)}`);
  }
}

/** The wall-clock time of `instant` in `timeZone`, read as if it were UTC, in ms. */
function wallClockMs(instantMs: number, timeZone: string): number {
  const parts = Object.fromEntries(formatOf(timeZone).formatToParts(new Date(instantMs)).map((p) => [p.type, p.value]));
  return Date.UTC(Number(parts.year), Number(parts.month) - 1, Number(parts.day), Number(parts.hour), Number(parts.minute), Number(parts.second));
}

/** The business day `instant` falls on in `timeZone`. */
export function businessDayOf(instant: Date, timeZone: string): string {
  return new Date(wallClockMs(instant.getTime(), timeZone)).toISOString().slice(0, 10);
}

/** Parses `YYYY-MM-DD` (a real calendar date) or raises validation_failed. */
export function parseBusinessDay(text: string): { y: number; m: number; d: number } {
  const match = businessDayPattern.exec(text);
  const [y, m, d] = text.split('-').map(Number) as [number, number, number];
  const probe = new Date(Date.UTC(y, m - 1, d));
  if (!match || probe.getUTCFullYear() !== y || probe.getUTCMonth() !== m - 1 || probe.getUTCDate() !== d || y < 2000) {
    throw new KessaiError('validation_failed', 'date must be a calendar day YYYY-MM-DD');
  }
  return { y, m, d };
}

/** The day after (or `delta` days from) `day`. */
export function addDays(day: string, delta: number): string {
  const { y, m, d } = parseBusinessDay(day);
  return new Date(Date.UTC(y, m - 1, d + delta)).toISOString().slice(0, 10);
}

/** The instant local midnight starts `day` in `timeZone`. */
export function startOfDay(day: string, timeZone: string): Date {
  const { y, m, d } = parseBusinessDay(day);
  const target = Date.UTC(y, m - 1, d);
  // Guess with the offset at the target, correct with the offset at the guess (daylight saving).
  let guess = target - (wallClockMs(target, timeZone) - target);
  guess = target - (wallClockMs(guess, timeZone) - guess);
  return new Date(guess);
}

/** The instant `day` ends in `timeZone` (the start of the next day, exclusive). */
export function endOfDay(day: string, timeZone: string): Date {
  return startOfDay(addDays(day, 1), timeZone);
}
