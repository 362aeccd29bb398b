/**
 * Merchant fees, in minor units of the transaction's currency (whatever its exponent: yen for JPY,
 * cents for USD, fils for KWD). The fee of one captured transaction is
 *
 *   fee = min(amount, round_half_up(amount × basis_points / 10000) + fixed_minor)
 *
 * computed in integers (bigint): round_half_up(x / 10000) = floor((x + 5000) / 10000), so an exact
 * half minor unit rounds up and anything below it rounds down. A fee never exceeds the amount it
 * is charged on. Refunds return no fee: the capture's fee stays charged.
 */
import type { Queryable } from '@kessai/service';
import { limits } from '@kessai/protocol';

export interface FeeSchedule {
  /** Percentage part in basis points (1 bp = 0.01 %), 0–10000. */
  basisPoints: number;
  /** Fixed part in minor units of the currency. */
  fixedMinor: bigint;
}

/** The default when neither the merchant nor the server's config names one: 2.5 %, no fixed part. */
export const defaultFeeSchedule: FeeSchedule = Object.freeze({ basisPoints: 250, fixedMinor: 0n });

export function checkFeeSchedule(schedule: FeeSchedule): void {
  if (!Number.isInteger(schedule.basisPoints) || schedule.basisPoints < 0 || schedule.basisPoints > limits.feeBasisPointsMax) throw new TypeError('fee basis points must be an integer 0..10000');
  if (schedule.fixedMinor < 0n) throw new TypeError('fixed fee must not be negative');
}

/** The fee of one captured transaction of `amount` minor units (see the rule above). */
export function feeOf(amount: bigint, schedule: FeeSchedule): bigint {
  if (amount < 0n) throw new RangeError('amount must not be negative');
  const percentage = (amount * BigInt(schedule.basisPoints) + 5_000n) / 10_000n;
  const fee = percentage + schedule.fixedMinor;
  return fee > amount ? amount : fee;
}

/** The merchant's schedule for `currency`: its own row, else the configured default for the currency, else `fallback`. */
export async function feeScheduleFor(db: Queryable, merchantId: string, currency: string, configured: Readonly<Record<string, FeeSchedule>> | undefined, fallback: FeeSchedule = defaultFeeSchedule): Promise<FeeSchedule> {
  const [row] = await db.query<{ basis_points: number; fixed_minor: bigint }>('select basis_points, fixed_minor from merchant_fee_schedules where merchant_id = $1 and currency = $2', [merchantId, currency]);
  if (row) return { basisPoints: Number(row.basis_points), fixedMinor: BigInt(row.fixed_minor) };
  return configured?.[currency] ?? fallback;
}

export async function setFeeSchedule(db: Queryable, merchantId: string, currency: string, schedule: FeeSchedule): Promise<void> {
  checkFeeSchedule(schedule);
  await db.query(
    `insert into merchant_fee_schedules (merchant_id, currency, basis_points, fixed_minor) values ($1, $2, $3, $4)
     on conflict (merchant_id, currency) do update set basis_points = excluded.basis_points, fixed_minor = excluded.fixed_minor, updated_at = now()`,
    [merchantId, currency, schedule.basisPoints, schedule.fixedMinor],
  );
}
