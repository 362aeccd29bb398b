/**
 * How a settlement server closes its business days (docs/ledger.md, "Settlement"): the time zone
 * days are counted in, the default fees, the schedule of the closing worker, and a clock tests may
 * move forward instead of waiting for a day to end.
 */
import { limits } from '@kessai/protocol';
import { checkTimeZone } from './business-day.ts';
import { checkFeeSchedule, defaultFeeSchedule, type FeeSchedule } from './fees.ts';

export interface SettlementOptions {
  /** IANA time zone of the business day (default `UTC`). */
  timeZone?: string;
  /** Fees of merchants without a schedule of their own, per currency (default 250 bp + 0 for every currency). */
  defaultFees?: Readonly<Record<string, FeeSchedule>>;
  /** Fallback for a currency `defaultFees` does not name (default 250 bp + 0). */
  defaultFee?: FeeSchedule;
  /** How often the worker checks for a day to close (default limits.settlementWorkerIntervalMsDefault); 0 turns it off. */
  workerIntervalMs?: number;
  /** The worker closes a day this long after it ended (default limits.settlementCloseDelayMsDefault). */
  closeDelayMs?: number;
  /** The settlement clock: decides which days have ended. Default: the system clock. */
  clock?: () => Date;
}

export interface ResolvedSettlementOptions {
  timeZone: string;
  defaultFees: Readonly<Record<string, FeeSchedule>>;
  defaultFee: FeeSchedule;
  workerIntervalMs: number;
  closeDelayMs: number;
  clock: () => Date;
}

export function resolveSettlementOptions(options: SettlementOptions = {}): ResolvedSettlementOptions {
  const timeZone = options.timeZone ?? 'UTC';
  checkTimeZone(timeZone);
  const defaultFees = options.defaultFees ?? {};
  for (const schedule of Object.values(defaultFees)) checkFeeSchedule(schedule);
  const defaultFee = options.defaultFee ?? defaultFeeSchedule;
  checkFeeSchedule(defaultFee);
  const workerIntervalMs = options.workerIntervalMs ?? limits.settlementWorkerIntervalMsDefault;
  const closeDelayMs = options.closeDelayMs ?? limits.settlementCloseDelayMsDefault;
  if (workerIntervalMs < 0 || closeDelayMs < 0) throw new TypeError('settlement workerIntervalMs and closeDelayMs must not be negative');
  return { timeZone, defaultFees, defaultFee, workerIntervalMs, closeDelayMs, clock: options.clock ?? (() => new Date()) };
}
