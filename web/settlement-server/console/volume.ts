/**
 * The periods of the volume chart: the last 24 UTC hours or 30 UTC days up to now, each with the
 * captured total of one currency from `GET /admin/v1/volume` (empty periods are zero). Pure, so
 * the chart draws what this returns and a test checks it without a browser.
 */
export interface VolumeBucket {
  bucket_start: string;
  currency: string;
  captured: string;
  captures: number;
}

export type BucketSize = 'hour' | 'day';

const periodMs: Record<BucketSize, number> = { hour: 3_600_000, day: 86_400_000 };
/** How many periods the chart shows, ending with the current one. */
export const periodsShown: Record<BucketSize, number> = { hour: 24, day: 30 };

export interface Bar {
  start: Date;
  captured: bigint;
  captures: number;
}

/** The last periodsShown[size] periods up to `now`, each with its captured total in `currency`. */
export function barsOf(buckets: readonly VolumeBucket[], currency: string, size: BucketSize, now: Date): Bar[] {
  const step = periodMs[size];
  const last = Math.floor(now.getTime() / step) * step;
  const byStart = new Map(buckets.filter((b) => b.currency === currency).map((b) => [new Date(b.bucket_start).getTime(), b]));
  const bars: Bar[] = [];
  for (let i = periodsShown[size] - 1; i >= 0; i--) {
    const start = last - i * step;
    const bucket = byStart.get(start);
    bars.push({ start: new Date(start), captured: bucket ? BigInt(bucket.captured) : 0n, captures: bucket?.captures ?? 0 });
  }
  return bars;
}
