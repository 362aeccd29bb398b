/**
 * Step 409, holds expire on their own: the expiry pass releases every authorization hold whose
 * timeout has passed (a pending transfer → expired) and marks its authorization expired in the
 * same transaction, so the payer's available balance shows it at once. The worker runs the pass
 * every expiryIntervalMs as one job of the ledger's group commit.
 */
import { limits } from '@kessai/protocol';
import { logPassFailure, recordDomainEvent, type Logger, type Queryable } from '@kessai/service';
import type { GroupCommit } from './ledger/group-commit.ts';
import { expirePendingTransfers } from './ledger/store.ts';

/** Releases up to `limit` due holds; returns the authorizations' request ids that expired. */
export async function expireHolds(tx: Queryable, now: Date, limit: number = limits.expiryBatchMax): Promise<string[]> {
  // step 409 expiry: holds past their timeout are released
  const expired = await expirePendingTransfers(tx, now, limit);
  if (expired.length === 0) return [];
  const rows = await tx.query<{ request_id: string }>(
    "update authorizations set status = 'expired' where hold_transfer_id = any($1::text[]) and status = 'held' returning request_id",
    [expired],
  );
  return rows.map((row) => row.request_id);
}

/** One `authorization.expired` audit event per authorization whose hold was released (actor `system`). */
export function recordExpired(owner: object | null | undefined, rids: readonly string[]): void {
  for (const rid of rids) void recordDomainEvent(owner, { actor: 'system', action: 'authorization.expired', resource: rid, outcome: 'expired' });
}

/** Runs the expiry pass every `intervalMs` until stopped. A failed pass is logged and retried at the next tick. */
export function startExpiryWorker(ledger: GroupCommit, logger: Logger, intervalMs: number): { stop(): Promise<void> } {
  let running: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    running = ledger
      .run((tx) => expireHolds(tx, new Date()))
      .then((rids) => {
        if (rids.length === 0) return;
        logger.info({ requests: rids }, 'step 409: authorization holds expired');
        recordExpired(logger, rids);
      })
      .catch((err: unknown) => logPassFailure(logger, err, 'expiry pass failed'));
  }, intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
