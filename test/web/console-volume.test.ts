/**
 * The settlement console's volume chart periods (web/settlement-server/console/volume.ts): the
 * last 24 hours or 30 days up to now, empty periods zero, one currency at a time, exact amounts.
 */
import { describe, expect, it } from 'vitest';
import { barsOf, periodsShown } from '../../web/settlement-server/console/volume.ts';

const now = new Date('2026-11-25T15:20:00Z');

describe('volume chart periods', () => {
  it('has one bar per hour of the last 24, ending with the current hour, zero where nothing was captured', () => {
    const bars = barsOf(
      [
        { bucket_start: '2026-11-25T15:00:00.000Z', currency: 'JPY', captured: '4000', captures: 1 },
        { bucket_start: '2026-11-25T03:00:00.000Z', currency: 'JPY', captured: '999999999999999999', captures: 7 },
        { bucket_start: '2026-11-25T15:00:00.000Z', currency: 'USD', captured: '150', captures: 1 },
        // Older than the window: left out.
        { bucket_start: '2026-11-24T15:00:00.000Z', currency: 'JPY', captured: '1', captures: 1 },
      ],
      'JPY',
      'hour',
      now,
    );
    expect(bars).toHaveLength(periodsShown.hour);
    expect(bars[0]!.start.toISOString()).toBe('2026-11-24T16:00:00.000Z');
    expect(bars.at(-1)).toEqual({ start: new Date('2026-11-25T15:00:00Z'), captured: 4000n, captures: 1 });
    expect(bars.find((bar) => bar.start.toISOString() === '2026-11-25T03:00:00.000Z')!.captured).toBe(999_999_999_999_999_999n);
    expect(bars.filter((bar) => bar.captures > 0)).toHaveLength(2);
    expect(bars.reduce((sum, bar) => sum + bar.captured, 0n)).toBe(999_999_999_999_999_999n + 4000n);
  });

  it('has one bar per UTC day of the last 30', () => {
    const bars = barsOf([{ bucket_start: '2026-10-27T00:00:00.000Z', currency: 'JPY', captured: '10', captures: 1 }], 'JPY', 'day', now);
    expect(bars).toHaveLength(periodsShown.day);
    expect(bars[0]).toEqual({ start: new Date('2026-10-27T00:00:00Z'), captured: 10n, captures: 1 });
    expect(bars.at(-1)!.start.toISOString()).toBe('2026-11-25T00:00:00.000Z');
  });
});
