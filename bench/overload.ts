/**
 * Overload (`npm run bench -- --overload`): what load shedding does beyond capacity, as ratios to a
 * baseline of the same run. Capacity: after a warm-up, a closed loop at a concurrency where nothing
 * is shed (3: below the broker's inFlightMax.intake) gives a first rate and its latency; open
 * loops of `stepSeconds` at rising multiples of it follow while latency is still fine (flow p99 at
 * most twice the closed loop's) and at most 1 % is shed — the last such rate is the capacity. The
 * baseline is an open loop at half of it; the overload an open loop at `factor` × capacity
 * (default 3) for as long. Reported: admitted (completed) payments' latency against the
 * baseline's, the share of payments shed with 503 `overloaded` (or refused `deadline_exceeded`),
 * and split outcomes — a wallet told "not paid" for a payment the broker recorded approved once
 * every authorization in doubt was resolved — which must be 0.
 */
import { limits } from '@kessai/protocol';
import type { MerchantClient } from '@kessai/sdk';
import type { Driver, Payment, PhaseResult } from './e2e.ts';
import type { Summary } from './stats.ts';

export interface OverloadReport {
  /** The closed loop at `concurrency`, then each open-loop step of the search; the capacity is the last step still fine. */
  capacity: { concurrency: number; paymentsPerSecond: number; flow: Summary; errors: Record<string, number>; steps: Array<{ rate: number; flowP99Ms: number; shedShare: number; fine: boolean }> };
  baseline: PhaseResult;
  overload: PhaseResult;
  factor: number;
  seconds: number;
  /** Payments started in the overload phase, and the share refused 503 (overloaded, deadline_exceeded), by step. */
  started: number;
  shedShare: number;
  shedByStep: Record<string, number>;
  /** Overload phase over baseline, admitted payments only. */
  ratios: { approveP50: number; approveP99: number; flowP50: number; flowP99: number };
  /** Wallets told "not paid" whose payment the broker recorded approved (must be 0), and still in doubt after convergenceMs. */
  splitOutcomes: number;
  stillInDoubt: number;
  /** The servers' in-flight limits (limits.ts; the benchmark's servers keep the defaults). */
  inFlightMax: Record<string, number>;
}

const shedCodes = new Set(['overloaded', 'deadline_exceeded']);
const approve = '404-407 approve';

/** What the wallet concluded: approved, "not known yet" (authorizing), or not paid. */
function walletSaid(payment: Payment): 'paid' | 'unknown' | 'not paid' | 'not asked' {
  if (payment.ok || payment.step === 'capture') return 'paid';
  if (payment.step !== 'approve') return 'not asked';
  return payment.error === 'authorizing' ? 'unknown' : 'not paid';
}

/** Asks the broker for every payment the wallet was told "not paid", once nothing is in doubt any more. */
async function splitOutcomes(merchant: MerchantClient, payments: Payment[]): Promise<{ split: number; inDoubt: number }> {
  const asked = payments.filter((p) => p.id && walletSaid(p) !== 'not asked');
  const until = Date.now() + limits.convergenceMs;
  for (;;) {
    // One at a time: a burst of reads would be shed too.
    const statuses: Array<{ p: Payment; status: string | undefined }> = [];
    for (const p of asked) statuses.push({ p, status: (await merchant.getPaymentRequest(p.id).catch(() => undefined))?.status });
    const inDoubt = statuses.filter(({ status }) => status === undefined || status === 'authorizing').length;
    if (inDoubt === 0 || Date.now() > until) {
      const split = statuses.filter(({ p, status }) => walletSaid(p) === 'not paid' && (status === 'approved' || status === 'captured')).length;
      return { split, inDoubt };
    }
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
}

export async function measureOverload(driver: Driver, options: { concurrency: number; capacityPayments: number; stepSeconds: number; seconds: number; factor: number }, progress: (label: string, done: number, total: number) => void): Promise<{ report: OverloadReport; payments: Record<'baseline' | 'overload', Payment[]> }> {
  // Not judged: JIT, connections, the databases' caches.
  await driver.closed(options.concurrency, options.capacityPayments, (done, total) => progress('warm-up (not judged)', done, total));
  const closed = await driver.closed(options.concurrency, options.capacityPayments, (done, total) => progress(`capacity: closed loop c=${options.concurrency}`, done, total));
  let capacity = closed.result.paymentsPerSecond;
  const steps: OverloadReport['capacity']['steps'] = [];
  for (const multiple of [1.25, 1.5, 2, 2.5, 3, 4]) {
    const stepRate = Math.round(closed.result.paymentsPerSecond * multiple * 10) / 10;
    const step = await driver.open(stepRate, options.stepSeconds, (done, total) => progress(`capacity: open loop ${stepRate}/s`, done, total), 2_000);
    const shedShare = step.payments.filter((p) => shedCodes.has(p.error ?? '')).length / Math.max(step.payments.length, 1);
    const fine = shedShare <= 0.01 && step.result.flow.p99 <= 2 * closed.result.flow.p99;
    steps.push({ rate: stepRate, flowP99Ms: step.result.flow.p99, shedShare, fine });
    if (!fine) break;
    capacity = stepRate;
  }
  const baselineRate = Math.max(Math.round(capacity * 5) / 10, 0.5);
  const overloadRate = Math.round(capacity * options.factor * 10) / 10;
  const baseline = await driver.open(baselineRate, options.seconds, (done, total) => progress(`baseline: open loop ${baselineRate}/s`, done, total), 2_000);
  const overload = await driver.open(overloadRate, options.seconds, (done, total) => progress(`overload: open loop ${overloadRate}/s`, done, total), 2_000);
  const shed = overload.payments.filter((p) => !p.ok && shedCodes.has(p.error ?? ''));
  const shedByStep: Record<string, number> = {};
  for (const p of shed) shedByStep[p.step!] = (shedByStep[p.step!] ?? 0) + 1;
  const { split, inDoubt } = await splitOutcomes(driver.merchant, [...baseline.payments, ...overload.payments]);
  const ratio = (pick: (r: PhaseResult) => number) => (pick(baseline.result) > 0 ? pick(overload.result) / pick(baseline.result) : Number.NaN);
  const report: OverloadReport = {
    capacity: { concurrency: options.concurrency, paymentsPerSecond: capacity, flow: closed.result.flow, errors: closed.result.errors, steps },
    baseline: baseline.result,
    overload: overload.result,
    factor: options.factor,
    seconds: options.seconds,
    started: overload.payments.length,
    shedShare: overload.payments.length > 0 ? shed.length / overload.payments.length : 0,
    shedByStep,
    ratios: {
      approveP50: ratio((r) => r.client[approve]?.p50 ?? 0),
      approveP99: ratio((r) => r.client[approve]?.p99 ?? 0),
      flowP50: ratio((r) => r.flow.p50),
      flowP99: ratio((r) => r.flow.p99),
    },
    splitOutcomes: split,
    stillInDoubt: inDoubt,
    inFlightMax: { ...limits.inFlightMax },
  };
  return { report, payments: { baseline: baseline.payments, overload: overload.payments } };
}
