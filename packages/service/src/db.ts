/**
 * The database layer every Kessai server shares: one small interface over either an embedded
 * PGlite (tests, single-process demo; in memory, from a template dump, or in a data folder) or a
 * PostgreSQL server reached through a `pg` Pool.
 *
 * Both backends return the same JS types: int8 (and int8[]) → bigint, int4 → number,
 * numeric → string, timestamptz → Date, json/jsonb → parsed value, text → string,
 * bytea → Uint8Array (a Buffer on PostgreSQL), date and interval → their text form.
 * bigint parameters are accepted everywhere.
 *
 * Limits:
 * - PGlite has a single session, so this module runs every PGlite query and transaction one at a
 *   time through an in-process queue. Inside `transaction(fn)`, `fn` must use its `tx` argument:
 *   calling the Db itself there (query, exec or another transaction) throws at once instead of
 *   deadlocking on PGlite, and is refused on PostgreSQL too so code behaves the same on both.
 *   Work still running after the transaction ended may use the Db again, but not `tx`.
 * - A JS array passed as a json/jsonb parameter is sent as a PostgreSQL array by `pg`: pass
 *   `JSON.stringify(value)` for JSON arrays (objects and JSON strings work on both backends).
 * - `timestamp` (without time zone) is parsed in the process's local time zone; use timestamptz.
 * - `query` takes exactly one statement (both backends refuse several with SQLSTATE 42601).
 *
 * Faults (PostgreSQL): every connection has the timeouts of DbTimeouts (limits.ts db…Ms). A
 * connection-class failure — unreachable, stalled past a timeout, session ended by the server —
 * is raised as KessaiError database_unavailable (db-faults.ts), never crashes the process (every
 * pool and client has an 'error' listener), and the connection it happened on is discarded; the
 * next query opens a new one, so the server serves again by itself once the database is back.
 * PGlite runs in this process: there is no connection to lose.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { mkdir } from 'node:fs/promises';
import { PGlite, protocol } from '@electric-sql/pglite';
import pg from 'pg';
import { limits } from '@kessai/protocol';
import { asDatabaseError, isDatabaseUnavailable } from './db-faults.ts';

export interface Queryable {
  /** Runs one statement with $1..$n parameters and returns its rows. */
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<T[]>;
}

/** What a transaction callback receives: queries plus multi-statement `exec` (for migrations). */
export interface TxQueryable extends Queryable {
  /** Runs `sql` (several statements allowed, no parameters) inside the transaction. */
  exec(sql: string): Promise<void>;
}

export interface Db extends Queryable {
  readonly kind: 'pglite' | 'postgres';
  /**
   * Runs fn inside BEGIN/COMMIT; rolls back and rethrows if fn throws. fn must use `tx`, never
   * this Db (that throws). If fn swallowed a failed statement, COMMIT rolls back and this throws.
   */
  transaction<T>(fn: (tx: TxQueryable) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /** Runs `sql` (several statements allowed, no parameters), used by migrations. */
  exec(sql: string): Promise<void>;
  close(): Promise<void>;
  /**
   * Connections in use, idle, and callers waiting for one (/metrics). PostgreSQL: the pg Pool's
   * counts. PGlite has one session: in use 1 while a statement or transaction runs, waiting = the
   * work queued behind it.
   */
  poolStats?(): PoolStats;
  /**
   * PostgreSQL only (undefined on PGlite): LISTEN on `channel` over a dedicated connection outside
   * the pool, calling `onNotify` with each payload. A lost connection is reopened with backoff;
   * `onReconnect` runs after each reopening, since notifications sent meanwhile are gone.
   */
  listen?(channel: string, onNotify: (payload: string) => void, onReconnect?: () => void): Promise<DbListener>;
  /**
   * Statements sent to the database since it was opened (/metrics `db_statements_total`, read by
   * the benchmark per payment): every query, exec, BEGIN, COMMIT, ROLLBACK and SET LOCAL. A
   * multi-statement `exec` counts once — it is one round trip, one socket write.
   */
  statementCount?(): number;
}

export interface PoolStats {
  inUse: number;
  idle: number;
  waiting: number;
}

export interface TransactionOptions {
  /**
   * Lets this transaction's statements run this long instead of dbStatementTimeoutMs (migrations:
   * limits.dbMigrationTimeoutMs). `SET LOCAL statement_timeout`, with the client's query timeout
   * stretched to match (PGlite runs the SET too, harmlessly).
   */
  statementTimeoutMs?: number;
}

export interface DbListener {
  close(): Promise<void>;
}

export interface OpenDbOptions {
  /** postgres:// URL: a real PostgreSQL server through a `pg` Pool (max `poolSizeMax` connections, default 10). */
  url?: string;
  /** Folder for a persistent PGlite database (created on first open). */
  dataDir?: string;
  /** A PGlite data-dir dump (from createPgliteTemplate) to start an in-memory database from, instead of running initdb. */
  pgliteTemplate?: Blob;
  poolSizeMax?: number;
  /** Shorter PostgreSQL timeouts than limits.ts, for tests that watch them act; production leaves them out. */
  timeouts?: Partial<DbTimeouts>;
}

/** The PostgreSQL connection timeouts of limits.ts (dbConnectTimeoutMs, dbStatementTimeoutMs, dbQueryTimeoutMs, dbIdleInTransactionTimeoutMs, dbListenHeartbeatMs). */
export interface DbTimeouts {
  connectMs: number;
  statementMs: number;
  queryMs: number;
  idleInTransactionMs: number;
  listenHeartbeatMs: number;
}

export const defaultDbTimeouts: Readonly<DbTimeouts> = Object.freeze({
  connectMs: limits.dbConnectTimeoutMs,
  statementMs: limits.dbStatementTimeoutMs,
  queryMs: limits.dbQueryTimeoutMs,
  idleInTransactionMs: limits.dbIdleInTransactionTimeoutMs,
  listenHeartbeatMs: limits.dbListenHeartbeatMs,
});

/** One connection as the shared code sees it; `exec` returns the last statement's command tag. */
interface Session {
  query(sql: string, params: readonly unknown[]): Promise<unknown[]>;
  exec(sql: string): Promise<string | undefined>;
  /** Marks the connection unusable (ROLLBACK failed, or the connection failed) so it is not reused. */
  discard?(): void;
}

/** Exactly one of url / dataDir / pgliteTemplate / (none = fresh in-memory PGlite). */
export async function openDb(options: OpenDbOptions): Promise<Db> {
  const { url, dataDir, pgliteTemplate, poolSizeMax = 10 } = options;
  if ([url, dataDir, pgliteTemplate].filter((o) => o !== undefined).length > 1) {
    throw new Error('openDb: give at most one of url, dataDir, pgliteTemplate');
  }
  const timeouts = { ...defaultDbTimeouts, ...options.timeouts };
  return url !== undefined ? openPostgres(url, poolSizeMax, timeouts) : openPglite(dataDir, pgliteTemplate);
}

/** A fresh in-memory PGlite's data dir, dumped, so tests clone it instead of re-running initdb (seconds each). */
export async function createPgliteTemplate(): Promise<Blob> {
  const lite = new PGlite();
  try {
    await lite.waitReady; // dumpDataDir before that never settles
    return await lite.dumpDataDir('none');
  } finally {
    await lite.close();
  }
}

/** The SQLSTATE of a PostgreSQL or PGlite error (e.g. '23505' unique violation), else undefined. */
export function sqlState(err: unknown): string | undefined {
  return err instanceof pg.DatabaseError || err instanceof protocol.messages.DatabaseError ? err.code : undefined;
}

/** Type OIDs (pg_type.oid) parsed differently from the drivers' defaults. */
const OID = { INT8: 20, INT8_ARRAY: 1016, DATE: 1082, INTERVAL: 1186 };
const asText = (value: string) => value;
const toBigInts = (value: unknown): unknown =>
  Array.isArray(value) ? value.map(toBigInts) : value === null ? null : BigInt(value as string);

async function openPglite(dataDir: string | undefined, template: Blob | undefined): Promise<Db> {
  if (dataDir !== undefined) await mkdir(dataDir, { recursive: true }); // PGlite creates only the last level
  const lite = new PGlite({
    dataDir,
    loadDataDir: template,
    // PGlite alone returns int8 as number when it fits; always bigint, like the pg backend.
    parsers: { [OID.INT8]: BigInt, [OID.DATE]: asText, [OID.INTERVAL]: asText },
  });
  await lite.waitReady;
  const session: Session = {
    query: async (sql, params) => (await lite.query(sql, [...params])).rows,
    exec: async (sql) => (await lite.exec(sql)).at(-1)?.command,
  };
  const queue = createQueue();
  return createDb('pglite', {
    run: (fn) => queue(() => fn(session)),
    close: () => queue(() => lite.close()),
    stats: () => {
      const inUse = Math.min(queue.pending(), 1);
      return { inUse, idle: 1 - inUse, waiting: Math.max(queue.pending() - 1, 0) };
    },
  });
}

/** pg Client settings for `timeouts`: connect and query timeouts on our side, statement and idle-in-transaction timeouts on the server's. */
function connectionSettings(timeouts: DbTimeouts) {
  return {
    connectionTimeoutMillis: timeouts.connectMs,
    query_timeout: timeouts.queryMs,
    statement_timeout: timeouts.statementMs,
    idle_in_transaction_session_timeout: timeouts.idleInTransactionMs,
    keepAlive: true,
  };
}

async function openPostgres(url: string, max: number, timeouts: DbTimeouts): Promise<Db> {
  const parseInt8Array = pg.types.getTypeParser(OID.INT8_ARRAY);
  const getTypeParser = (type: number, format?: 'text' | 'binary') =>
    type === OID.INT8 ? BigInt
    : type === OID.INT8_ARRAY ? (v: string) => toBigInts(parseInt8Array(v))
    : type === OID.DATE || type === OID.INTERVAL ? asText
    : pg.types.getTypeParser(type, format);
  const pool = new pg.Pool({
    connectionString: url,
    max,
    ...connectionSettings(timeouts),
    types: { getTypeParser: getTypeParser as typeof pg.types.getTypeParser },
  });
  // An idle connection dying (server restart, database dropped) must not crash the process;
  // the pool discards it and the next query opens a new one. (pool.query listens on the client
  // it checks out; a client checked out for a transaction gets its own listener below.)
  pool.on('error', () => {});
  try {
    await pool.query('SELECT 1'); // fail at startup, not at the first request
  } catch (err) {
    await pool.end();
    throw err;
  }
  /** `queryTimeoutMs`: the client's wait for this session's answers, when not timeouts.queryMs. */
  const sessionOf = (client: pg.Pool | pg.PoolClient, queryTimeoutMs?: number): Session => {
    // query_timeout and queryMode are QueryConfig fields `pg` reads but its types do not list.
    const wait: { query_timeout?: number } = queryTimeoutMs === undefined ? {} : { query_timeout: queryTimeoutMs };
    return {
      // Extended protocol even without parameters, as PGlite: several statements are refused, not run.
      query: async (sql, params) =>
        (await client.query({ text: sql, values: [...params], queryMode: 'extended', ...wait } as unknown as pg.QueryConfig)).rows,
      exec: async (sql) => {
        const result: pg.QueryResult | pg.QueryResult[] = await client.query({ text: sql, ...wait } as unknown as pg.QueryConfig);
        return (Array.isArray(result) ? result.at(-1) : result)?.command;
      },
    };
  };
  const poolSession = sessionOf(pool);
  const db = createDb('postgres', {
    run: async (fn, exclusive, statementTimeoutMs) => {
      if (!exclusive) return fn(poolSession);
      // The client waits as much longer than the server's statement timeout as it does by default.
      const queryTimeoutMs = statementTimeoutMs === undefined ? undefined : statementTimeoutMs + Math.max(0, timeouts.queryMs - timeouts.statementMs);
      const client = await pool.connect();
      let broken = false;
      // While checked out the pool does not listen: a connection dying now would be an unhandled
      // 'error' event (a crash). The transaction's next statement fails instead, and the
      // connection is discarded at release, never reused.
      const onError = () => (broken = true);
      client.on('error', onError);
      try {
        return await fn({ ...sessionOf(client, queryTimeoutMs), discard: () => (broken = true) });
      } catch (err) {
        if (isDatabaseUnavailable(err)) broken = true;
        throw err;
      } finally {
        client.release(broken);
        client.removeListener('error', onError);
      }
    },
    // A stalled connection never acknowledges the end: shutdown waits at most queryMs for them.
    close: () => within(pool.end(), timeouts.queryMs),
    stats: () => ({ inUse: pool.totalCount - pool.idleCount, idle: pool.idleCount, waiting: pool.waitingCount }),
  });
  return { ...db, listen: (channel, onNotify, onReconnect) => listenPostgres(url, timeouts, channel, onNotify, onReconnect) };
}

/**
 * LISTEN on a dedicated client; reconnects with backoff (100 ms doubling to 5 s) until closed. A
 * heartbeat (`select 1` every listenHeartbeatMs, given up after queryMs) notices a connection that
 * stalls without closing, and drops it so that it is reopened.
 */
async function listenPostgres(url: string, timeouts: DbTimeouts, channel: string, onNotify: (payload: string) => void, onReconnect?: () => void): Promise<DbListener> {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(channel)) throw new Error(`listen: invalid channel name ${channel}`);
  let closed = false;
  let client: pg.Client | undefined;
  let retry: NodeJS.Timeout | undefined;
  const heartbeat = listenHeartbeat(() => client, timeouts.listenHeartbeatMs);
  const open = async (): Promise<void> => {
    const next = new pg.Client({ connectionString: url, ...connectionSettings(timeouts) });
    next.on('notification', (message) => {
      if (message.channel === channel) onNotify(message.payload ?? '');
    });
    next.on('error', () => {}); // 'end' follows and reconnects
    next.on('end', () => {
      if (client === next) client = undefined;
      if (!closed) schedule();
    });
    try {
      await next.connect();
      await next.query(`LISTEN ${channel}`);
    } catch (err) {
      cut(next); // end() would wait on a stalled connection
      throw err;
    }
    if (closed) {
      await next.end().catch(() => {});
      return;
    }
    client = next;
  };
  let backoffMs: number = limits.dbListenReconnectMsFirst;
  const schedule = () => {
    if (closed || retry) return;
    retry = setTimeout(() => {
      retry = undefined;
      open().then(
        () => {
          backoffMs = limits.dbListenReconnectMsFirst;
          onReconnect?.();
        },
        () => schedule(),
      );
    }, backoffMs);
    backoffMs = Math.min(backoffMs * 2, limits.dbListenReconnectMsMax);
  };
  try {
    await open();
  } catch (err) {
    closed = true; // nobody holds this listener: no reconnecting in the background
    clearInterval(heartbeat);
    clearTimeout(retry);
    throw err;
  }
  return {
    async close() {
      closed = true;
      clearInterval(heartbeat);
      clearTimeout(retry);
      const last = client;
      if (last) await within(last.end(), timeouts.queryMs).finally(() => cut(last));
    },
  };
}

/** A listener's heartbeat: `select 1` on its current client every `ms`; a client that fails it is cut. */
function listenHeartbeat(current: () => pg.Client | undefined, ms: number): NodeJS.Timeout {
  let beating = false;
  const heartbeat = setInterval(() => {
    const client = current();
    if (!client || beating) return;
    beating = true;
    client
      .query('select 1')
      .catch(() => {
        // Stalled or broken: cut it; its 'end' reopens the channel.
        if (current() === client) cut(client);
      })
      .finally(() => (beating = false));
  }, ms);
  heartbeat.unref();
  return heartbeat;
}

/** Closes a client's socket at once, without the goodbye a stalled server would never answer. */
function cut(client: pg.Client): void {
  (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
}

/** Settles when `work` does or after `ms`, whichever comes first; never rejects. */
async function within(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work.catch(() => {}), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

interface Driver {
  /** Runs fn with a session; `exclusive` = one connection for the whole of fn (a transaction), whose statements may run `statementTimeoutMs` if given. */
  run<T>(fn: (session: Session) => Promise<T>, exclusive: boolean, statementTimeoutMs?: number): Promise<T>;
  close(): Promise<void>;
  stats(): PoolStats;
}

function createDb(kind: Db['kind'], uncounted: Driver): Db {
  let statements = 0;
  const counted = (session: Session): Session => ({
    query: (sql, params) => ((statements += 1), session.query(sql, params)),
    exec: (sql) => ((statements += 1), session.exec(sql)),
    ...(session.discard ? { discard: session.discard } : {}),
  });
  const driver: Driver = { ...uncounted, run: (fn, exclusive, timeoutMs) => uncounted.run((s) => fn(counted(s)), exclusive, timeoutMs) };
  const insideTransaction = new AsyncLocalStorage<{ open: boolean }>();
  const refuseNested = () => {
    if (insideTransaction.getStore()?.open) {
      throw new Error('Db used inside its own transaction callback: use the `tx` argument instead');
    }
  };
  return {
    kind,
    async query<T>(sql: string, params: readonly unknown[] = []) {
      refuseNested();
      return (await driver.run((s) => s.query(sql, params), false).catch(rethrowAsDatabaseError)) as T[];
    },
    async exec(sql) {
      refuseNested();
      await driver.run((s) => s.exec(sql), false).catch(rethrowAsDatabaseError);
    },
    async transaction(fn, options = {}) {
      refuseNested();
      const { statementTimeoutMs } = options;
      if (statementTimeoutMs !== undefined && !(Number.isSafeInteger(statementTimeoutMs) && statementTimeoutMs > 0)) {
        throw new TypeError('transaction: statementTimeoutMs must be a positive integer (milliseconds)');
      }
      return driver
        .run((s) => transactionOn(s, fn, { statementTimeoutMs, insideTransaction }), true, statementTimeoutMs)
        .catch(rethrowAsDatabaseError);
    },
    close: () => driver.close(),
    poolStats: () => driver.stats(),
    statementCount: () => statements,
  };
}

/**
 * One transaction on `session`: BEGIN, `fn` with a `tx` that refuses use after the end, COMMIT; a
 * lost connection fails the rest at once and is discarded, any other failure is rolled back.
 */
async function transactionOn<T>(
  session: Session,
  fn: (tx: TxQueryable) => Promise<T>,
  options: { statementTimeoutMs: number | undefined; insideTransaction: AsyncLocalStorage<{ open: boolean }> },
): Promise<T> {
  const { statementTimeoutMs, insideTransaction } = options;
  const state = { open: true, lost: undefined as unknown };
  const checkOpen = () => {
    if (!state.open) throw new Error('transaction already finished: `tx` cannot be used any more');
    if (state.lost) throw state.lost; // no statement waits on a connection already known dead or stalled
  };
  // Every statement's failure goes through here: a lost connection fails the rest of the transaction at once.
  const onSession = <R>(statement: Promise<R>): Promise<R> =>
    statement.catch((err: unknown) => {
      const raised = asDatabaseError(err);
      if (raised !== err) state.lost = raised;
      throw raised;
    });
  const tx: TxQueryable = {
    async query<R>(sql: string, params: readonly unknown[] = []) {
      checkOpen();
      return (await onSession(session.query(sql, params))) as R[];
    },
    async exec(sql) {
      checkOpen();
      await onSession(session.exec(sql));
    },
  };
  await onSession(session.exec('BEGIN'));
  try {
    if (statementTimeoutMs !== undefined) {
      await onSession(session.exec(`SET LOCAL statement_timeout = ${statementTimeoutMs}`));
    }
    const result = await insideTransaction.run(state, () => fn(tx));
    state.open = false;
    if (state.lost) throw state.lost; // fn swallowed it: nothing to commit
    if ((await onSession(session.exec('COMMIT'))) !== 'COMMIT') {
      throw new Error('transaction rolled back at COMMIT: a statement in it had failed');
    }
    return result;
  } catch (err) {
    state.open = false;
    if (state.lost || isDatabaseUnavailable(err)) {
      // The server rolls back a transaction whose session is gone; a ROLLBACK sent on a stalled
      // connection would only wait.
      session.discard?.();
      throw state.lost ?? asDatabaseError(err);
    }
    // After a failed or refused COMMIT there is no transaction left; ROLLBACK then only warns.
    await session.exec('ROLLBACK').catch(() => session.discard?.());
    throw err;
  }
}

/** Rethrows `err`, as database_unavailable when it is a connection-class failure (db-faults.ts). */
function rethrowAsDatabaseError(err: unknown): never {
  throw asDatabaseError(err);
}

/** Runs async functions one at a time, in call order; a failure does not stop the queue. */
function createQueue() {
  let tail: Promise<unknown> = Promise.resolve();
  let pending = 0;
  const queue = <T>(fn: () => Promise<T>): Promise<T> => {
    pending += 1;
    const result = tail.then(fn).finally(() => (pending -= 1));
    tail = result.catch(() => {});
    return result;
  };
  return Object.assign(queue, { pending: () => pending });
}
