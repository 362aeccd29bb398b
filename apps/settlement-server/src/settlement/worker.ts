/**
 * The settlement schedule: every workerIntervalMs the worker asks whether the previous business
 * day ended at least closeDelayMs ago and is not closed yet, and closes it as one job of the
 * ledger's group commit. Two servers on one database may both try: the day is closed once
 * (batches.ts), the other finds it closed.
 */
import { logPassFailure, type Logger } from '@kessai/service';
import type { GroupCommit } from '../ledger/group-commit.ts';
import { addDays, businessDayOf } from './business-day.ts';
import { closeDay } from './batches.ts';
import type { ResolvedSettlementOptions } from './options.ts';

/** The latest day the schedule may close at `now`: the day before the one (now − closeDelayMs) falls on. */
export function dayDueAt(now: Date, options: ResolvedSettlementOptions): string {
  return addDays(businessDayOf(new Date(now.getTime() - options.closeDelayMs), options.timeZone), -1);
}

export function startSettlementWorker(ledger: GroupCommit, options: ResolvedSettlementOptions, issuerId: string, logger: Logger): { stop(): Promise<void> } {
  let running: Promise<unknown> | undefined;
  const tick = () => {
    if (running) return;
    const now = options.clock();
    const day = dayDueAt(now, options);
    running = ledger
      .run(async (tx) => {
        const [closed] = await tx.query('select 1 from settlement_days where business_day = $1', [day]);
        // step 409 settlement: a business day's captures and refunds are netted into batches
        return closed ? undefined : closeDay(tx, options, issuerId, day, now);
      })
      .then((result) => result && logger.info({ day, batches: result.batches.length, already: result.already_closed }, 'step 409: business day closed by the schedule'))
      .catch((err: unknown) => logPassFailure(logger, err, 'settlement close failed', { day }))
      .finally(() => (running = undefined));
  };
  const timer = setInterval(tick, options.workerIntervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
