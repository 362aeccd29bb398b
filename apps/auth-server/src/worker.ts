/**
 * The authentication server's background work, driven by work rather than by a fast poll:
 *   - an event queued by a state change (payment-state.ts, refunds, a resend) wakes the webhook
 *     delivery of this process at once (an in-process signal, work-signals.ts `eventsQueued`): the
 *     process that committed the event is alive to send it, on PGlite and PostgreSQL alike, so no
 *     NOTIFY is needed; another process's poll finds what a dead one left (its lease runs out);
 *   - every workerIntervalMs (the slow poll) one statement asks which kinds of work are due by
 *     time — requests past their expiry, events due (a retry, an abandoned lease), authorizations
 *     in doubt, holds to check, revocations to relay — and only those passes run; an idle server
 *     sends one statement per interval, not one per kind of work;
 *   - device proofs, idempotency keys and old events are purged at most every brokerPurgeIntervalMs;
 *   - the issuers are asked for the settlement batches they closed at most every settlementEventsPollMs;
 *   - work that becomes due at a known time in this process (an authorization in doubt) asks for
 *     a poll at that time (work-signals.ts `workDueAt`);
 * `runWorker` is the whole pass, every kind of work whether due or not (tests call it).
 */
import { limits } from '@kessai/protocol';
import { logPassFailure } from '@kessai/service';
import type { AuthContext } from './context.ts';
import { purgeIdempotencyKeys } from './idempotency.ts';
import { sweepOldEvents } from './merchant-lists.ts';
import { syncHolds } from './hold-sync.ts';
import { resolveInDoubt } from './in-doubt.ts';
import { transition } from './payment-state.ts';
import type { PaymentRequestRow } from './payment-requests.ts';
import { relayPendingRevocations, revocationRetryBefore } from './revocation-relay.ts';
import { pollSettlementEvents } from './settlement-events.ts';
import type { WebhookDispatcher } from './webhooks.ts';
import { onEventsQueued, onWorkDue } from './work-signals.ts';

/** The default slow poll of the worker (AuthConfig.workerIntervalMs). */
export const workerIntervalMsDefault = limits.brokerWorkerIntervalMsDefault;

/**
 * The one writer of expiry: each pending request past its expiry turns `expired`, its event queued
 * in the same statement (payment-state.ts).
 */
async function expirePending(context: AuthContext, now: Date): Promise<void> {
  const { config } = context;
  const due = await config.db.query<PaymentRequestRow>(
    "select * from payment_requests where status = 'pending' and expires_at <= $1 order by expires_at limit $2",
    [now, limits.expiryBatchMax],
  );
  for (const row of due) await transition(config.db, row, 'expired', {}, { publicBaseUrl: config.publicBaseUrl, now });
}

/** When each context's worker last deleted expired device proofs and idempotency keys (epoch ms). */
const lastPurges = new WeakMap<AuthContext, number>();

/** Expired device proofs and idempotency keys, and old events, deleted at most every brokerPurgeIntervalMs. */
async function purgeExpired(context: AuthContext, now: Date): Promise<void> {
  const last = lastPurges.get(context);
  if (last !== undefined && now.getTime() - last < limits.brokerPurgeIntervalMs && now.getTime() >= last) return;
  lastPurges.set(context, now.getTime());
  await context.config.db.query('delete from device_proofs where expires_at < $1', [now]);
  await purgeIdempotencyKeys(context.config.db, now);
  await sweepOldEvents(context.config.db, now);
}

/** One pass of all the background work, due or not; exported so tests can run it without waiting. */
export async function runWorker(context: AuthContext, dispatcher: WebhookDispatcher, now: Date): Promise<void> {
  await expirePending(context, now);
  await purgeExpired(context, now);
  await dispatcher.deliverDue(now);
  // After the deliveries, so a slow issuer delays no webhook: authorizations whose answer was lost
  // (in-doubt.ts: asked about, adopted or reversed), then the issuer's state of approved holds (hold-sync.ts).
  await resolveInDoubt(context, now);
  await syncHolds(context, now);
  await relayPendingRevocations(context);
  await pollSettlementEvents(context, now); // the batches the issuers closed, as settlement_batch.closed events
}

export interface DueWork {
  expiry: boolean;
  webhooks: boolean;
  in_doubt: boolean;
  holds: boolean;
  revocations: boolean;
}

/**
 * Which passes have work at `now`, in one statement: each `exists` is the condition of its pass's
 * own query (expirePending, WebhookDispatcher.deliverDue, resolveInDoubt, syncHolds,
 * relayPendingRevocations), so a pass that would find nothing is not run.
 */
export async function dueWork(context: AuthContext, now: Date): Promise<DueWork> {
  const [due] = await context.config.db.query<DueWork>(
    `select
       exists (select 1 from payment_requests where status = 'pending' and expires_at <= $1) as expiry,
       exists (select 1 from webhook_outbox where status = 'pending' and next_attempt_at <= $1) as webhooks,
       exists (select 1 from payment_requests where status = 'authorizing' and resolve_at <= $1) as in_doubt,
       exists (select 1 from payment_requests where status = 'approved' and issuer_id is not null
                  and (hold_check_at <= $1 or (hold_check_at is null and updated_at <= $2))) as holds,
       exists (select 1 from credentials where status = 'revoked' and issuer_revoked_at is null
                  and (issuer_revoke_tried_at is null or issuer_revoke_tried_at < $3)) as revocations`,
    [now, new Date(now.getTime() - limits.holdSyncFirstCheckMs), revocationRetryBefore()],
  );
  return due ?? { expiry: true, webhooks: true, in_doubt: true, holds: true, revocations: true };
}

/** The slow poll's pass: the probe, then only the passes it found work for (in runWorker's order). */
async function polledPass(context: AuthContext, dispatcher: WebhookDispatcher, now: Date): Promise<void> {
  const due = await dueWork(context, now);
  if (due.expiry) await expirePending(context, now);
  await purgeExpired(context, now);
  if (due.webhooks) await dispatcher.deliverDue(now);
  if (due.in_doubt) await resolveInDoubt(context, now);
  if (due.holds) await syncHolds(context, now);
  if (due.revocations) await relayPendingRevocations(context);
  // At most every limits.settlementEventsPollMs (settlement-events.ts keeps its own time): closed batches, as events.
  await pollSettlementEvents(context, now);
}

export interface BrokerWorker {
  start(): void;
  /** Stops the poll and the wake-ups, and waits for the passes in flight. */
  stop(): Promise<void>;
}

/** The worker of one server: the slow poll every `intervalMs`, and webhook delivery woken by each queued event. */
export function startableWorker(context: AuthContext, dispatcher: WebhookDispatcher, intervalMs: number): BrokerWorker {
  const { logger, db } = context.config;
  let timer: NodeJS.Timeout | undefined;
  let polling: Promise<void> | undefined;
  let delivering: Promise<void> | undefined;
  let again = false;
  let stopped = false;
  const tick = () => {
    if (polling || stopped) return;
    polling = polledPass(context, dispatcher, new Date())
      .catch((err: unknown) => logPassFailure(logger, err, 'worker pass failed'))
      .finally(() => (polling = undefined));
  };
  /** Delivers what is queued now; a wake-up during a delivery pass runs one more after it (coalesced). */
  const wake = () => {
    if (stopped) return;
    if (delivering) {
      again = true;
      return;
    }
    delivering = (async () => {
      do {
        again = false;
        await dispatcher.deliverQueued(new Date());
      } while (again && !stopped);
    })()
      .catch((err: unknown) => logPassFailure(logger, err, 'webhook delivery pass failed'))
      .finally(() => (delivering = undefined));
  };
  /** A poll at `at` too (the earliest asked for), besides the interval's. */
  let dueTimer: NodeJS.Timeout | undefined;
  let dueAt = Infinity;
  const pollAt = (at: Date) => {
    if (stopped || at.getTime() >= dueAt) return;
    clearTimeout(dueTimer);
    dueAt = at.getTime();
    dueTimer = setTimeout(
      () => {
        dueAt = Infinity;
        tick();
      },
      Math.max(0, dueAt - Date.now()),
    );
    dueTimer.unref();
  };
  const unsubscribes: Array<() => void> = [];
  return {
    start() {
      unsubscribes.push(
        onEventsQueued(db, () => setImmediate(wake)),
        onWorkDue(db, pollAt),
      );
      timer = setInterval(tick, intervalMs);
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      clearTimeout(dueTimer);
      for (const unsubscribe of unsubscribes) unsubscribe();
      await polling;
      await delivering;
    },
  };
}
