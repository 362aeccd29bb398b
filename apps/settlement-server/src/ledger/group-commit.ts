/**
 * Group commit, as TigerBeetle batches requests: every ledger job of this server (authorization
 * holds, captures, voids, refunds, the expiry pass) is queued, and the queue is drained many jobs
 * per database transaction, one after another, each inside its own SAVEPOINT so one job's failure
 * rolls back only that job (a transaction that holds one group only needs none: the transaction
 * itself rolls back, two round trips fewer). A job's promise settles only after its transaction committed. Jobs run
 * one batch at a time, so the ledger is serialized per server; the queue depth is bounded.
 * Plain transfer submissions (`createTransfers`) queued next to each other are merged into one
 * call of the store (each transfer keeps its own `now`), so they cost one round of locks and
 * writes together.
 */
import { KessaiError, limits } from '@kessai/protocol';
import { sqlState, type Db, type TxQueryable } from '@kessai/service';
import type { TransferInput, TransferResult } from './rules.ts';
import { createTransfers, createTransfersEach } from './store.ts';

type Job = {
  run: (tx: TxQueryable) => Promise<unknown>;
  /** Set for plain transfer submissions, which may be merged with their neighbours. */
  transfers?: { batch: readonly TransferInput[]; nowMs: number };
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
};
type Outcome = { ok: true; value: unknown } | { ok: false; err: unknown };

export interface GroupCommitOptions {
  batchSizeMax?: number;
  queueDepthMax?: number;
  /** Told of each committed batch: its jobs and the seconds its transaction took (the bank's /metrics). */
  onBatch?: (jobs: number, seconds: number) => void;
}

export class GroupCommit {
  readonly #db: Db;
  readonly #batchSizeMax: number;
  readonly #queueDepthMax: number;
  readonly #onBatch: GroupCommitOptions['onBatch'];
  #queue: Job[] = [];
  #draining = false;
  /** Transactions committed and jobs run, for tests and benchmarks. */
  readonly stats = { batches: 0, jobs: 0, batchSizeMaxSeen: 0 };

  constructor(db: Db, options: GroupCommitOptions = {}) {
    this.#db = db;
    this.#batchSizeMax = options.batchSizeMax ?? limits.ledgerBatchSizeMax;
    this.#queueDepthMax = options.queueDepthMax ?? limits.ledgerQueueDepthMax;
    this.#onBatch = options.onBatch;
    if (this.#batchSizeMax < 1 || this.#queueDepthMax < 1) throw new TypeError('GroupCommit: batchSizeMax and queueDepthMax must be at least 1');
  }

  /** Runs `fn` inside a shared transaction; resolves with its value once that transaction committed. */
  run<T>(fn: (tx: TxQueryable) => Promise<T>): Promise<T> {
    return this.#enqueue(fn);
  }

  /** Creates `batch` (store.ts createTransfers) as one job, merged with neighbouring transfer submissions. */
  createTransfers(batch: readonly TransferInput[], now: Date): Promise<TransferResult[]> {
    return this.#enqueue((tx) => createTransfers(tx, batch, now), { batch, nowMs: now.getTime() });
  }

  #enqueue<T>(fn: (tx: TxQueryable) => Promise<T>, transfers?: Job['transfers']): Promise<T> {
    if (this.#queue.length >= this.#queueDepthMax) return Promise.reject(new KessaiError('ledger_busy'));
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ run: fn, ...(transfers ? { transfers } : {}), resolve: resolve as (value: unknown) => void, reject });
      if (!this.#draining) {
        this.#draining = true;
        setImmediate(() => void this.#drain());
      }
    });
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#batchSizeMax);
      await this.#commit(batch);
    }
    this.#draining = false;
  }

  async #commit(batch: Job[]): Promise<void> {
    const startedAt = performance.now();
    for (let attempt = 1; ; attempt += 1) {
      try {
        const groups = mergeable(batch);
        const outcomes = await this.#db
          .transaction(async (tx) => {
            if (groups.length === 1) return runAlone(tx, groups[0]!);
            const done: Outcome[] = [];
            for (const group of groups) done.push(...(await runGroup(tx, group)));
            return done;
          })
          .catch((err: unknown) => {
            if (!(err instanceof GroupFailed)) throw err;
            // Alone in its transaction, a group that met another process's lock order or id runs again, as a batch does.
            if (retriable(err.cause)) throw err.cause;
            return batch.map((): Outcome => ({ ok: false, err: err.cause }));
          });
        this.stats.batches += 1;
        this.stats.jobs += batch.length;
        this.stats.batchSizeMaxSeen = Math.max(this.stats.batchSizeMaxSeen, batch.length);
        this.#onBatch?.(batch.length, (performance.now() - startedAt) / 1000);
        outcomes.forEach((o, i) => (o.ok ? batch[i]!.resolve(o.value) : batch[i]!.reject(o.err)));
        return;
      } catch (err) {
        // Another server's batch took a lock or an id first: the whole batch runs again.
        if (!retriable(err) || attempt >= limits.ledgerBatchAttemptsMax) {
          for (const job of batch) job.reject(err);
          return;
        }
      }
    }
  }
}

/** Serialization failure, deadlock, or a unique id another transaction inserted first. */
function retriable(err: unknown): boolean {
  return ['40001', '40P01', '23505'].includes(sqlState(err) ?? '');
}

/** Splits a batch into groups: runs of transfer submissions, and single other jobs. */
function mergeable(batch: Job[]): Job[][] {
  const groups: Job[][] = [];
  for (const job of batch) {
    const last = groups.at(-1);
    if (job.transfers && last?.[0]?.transfers) last.push(job);
    else groups.push([job]);
  }
  return groups;
}

/** Runs one group inside a savepoint: a failure rolls back only this group. */
async function runGroup(tx: TxQueryable, group: Job[]): Promise<Outcome[]> {
  await tx.query('savepoint job');
  try {
    const outcomes = await runJobs(tx, group);
    await tx.query('release savepoint job');
    return outcomes;
  } catch (err) {
    await tx.query('rollback to savepoint job');
    return group.map(() => ({ ok: false, err }));
  }
}

/** A group's failure when it is the transaction's only group: the whole transaction rolls back. */
class GroupFailed extends Error {
  constructor(cause: unknown) {
    super('ledger group failed', { cause });
  }
}

/** Runs the transaction's only group without a savepoint; its failure (GroupFailed) rolls back the transaction. */
async function runAlone(tx: TxQueryable, group: Job[]): Promise<Outcome[]> {
  try {
    return await runJobs(tx, group);
  } catch (err) {
    throw new GroupFailed(err);
  }
}

async function runJobs(tx: TxQueryable, group: Job[]): Promise<Outcome[]> {
  if (group.length === 1) return [{ ok: true, value: await group[0]!.run(tx) }];
  const merged = group.flatMap((job) => job.transfers!.batch.map((transfer) => ({ transfer, nowMs: job.transfers!.nowMs })));
  const results = await createTransfersEach(tx, merged);
  let offset = 0;
  return group.map((job) => {
    const value = results.slice(offset, offset + job.transfers!.batch.length);
    offset += job.transfers!.batch.length;
    return { ok: true, value };
  });
}
