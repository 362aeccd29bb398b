/**
 * How the broker's domain code tells its worker (worker.ts) about work without a statement: per
 * database handle, in this process. A handle inside a transaction has no listener: its caller
 * signals the Db after the commit. Work another process left is found by the worker's slow poll.
 */
import type { Queryable } from '@kessai/service';

const queuedListeners = new WeakMap<object, Set<() => void>>();
const dueListeners = new WeakMap<object, Set<(at: Date) => void>>();

function listen<T>(map: WeakMap<object, Set<T>>, db: Queryable, listener: T): () => void {
  const set = map.get(db) ?? new Set<T>();
  set.add(listener);
  map.set(db, set);
  return () => set.delete(listener);
}

/** Calls `listener` each time `eventsQueued(db)` is told of events committed through `db`; returns the unsubscribe. */
export function onEventsQueued(db: Queryable, listener: () => void): () => void {
  return listen(queuedListeners, db, listener);
}

/** Webhook events were committed to the outbox through `db`: its worker delivers them now, not at its next poll. */
export function eventsQueued(db: Queryable): void {
  for (const listener of queuedListeners.get(db) ?? []) listener();
}

/** Calls `listener` with each time `workDueAt(db, at)` names; returns the unsubscribe. */
export function onWorkDue(db: Queryable, listener: (at: Date) => void): () => void {
  return listen(dueListeners, db, listener);
}

/** Work becomes due at `at` (an authorization in doubt to ask about): the worker also polls then. */
export function workDueAt(db: Queryable, at: Date): void {
  for (const listener of dueListeners.get(db) ?? []) listener(at);
}
