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
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { mkdir } from 'node:fs/promises';
import { PGlite, protocol } from '@electric-sql/pglite';
import pg from 'pg';

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
  transaction<T>(fn: (tx: TxQueryable) => Promise<T>): Promise<T>;
  /** Runs `sql` (several statements allowed, no parameters), used by migrations. */
  exec(sql: string): Promise<void>;
  close(): Promise<void>;
  /**
   * PostgreSQL only (undefined on PGlite): LISTEN on `channel` over a dedicated connection outside
   * the pool, calling `onNotify` with each payload. A lost connection is reopened with backoff;
   * `onReconnect` runs after each reopening, since notifications sent meanwhile are gone.
   */
  listen?(channel: string, onNotify: (payload: string) => void, onReconnect?: () => void): Promise<DbListener>;
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
}

/** One connection as the shared code sees it; `exec` returns the last statement's command tag. */
interface Session {
  query(sql: string, params: readonly unknown[]): Promise<unknown[]>;
  exec(sql: string): Promise<string | undefined>;
  /** Marks the connection unusable (ROLLBACK failed) so it is not reused. */
  discard?(): void;
}

/** Exactly one of url / dataDir / pgliteTemplate / (none = fresh in-memory PGlite). */
export async function openDb(options: OpenDbOptions): Promise<Db> {
  const { url, dataDir, pgliteTemplate, poolSizeMax = 10 } = options;
  if ([url, dataDir, pgliteTemplate].filter((o) => o !== undefined).length > 1) {
    throw new Error('openDb: give at most one of url, dataDir, pgliteTemplate');
  }
  return url !== undefined ? openPostgres(url, poolSizeMax) : openPglite(dataDir, pgliteTemplate);
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
  });
}

async function openPostgres(url: string, max: number): Promise<Db> {
  const parseInt8Array = pg.types.getTypeParser(OID.INT8_ARRAY);
  const getTypeParser = (type: number, format?: 'text' | 'binary') =>
    type === OID.INT8 ? BigInt
    : type === OID.INT8_ARRAY ? (v: string) => toBigInts(parseInt8Array(v))
    : type === OID.DATE || type === OID.INTERVAL ? asText
    : pg.types.getTypeParser(type, format);
  const pool = new pg.Pool({
    connectionString: url,
    max,
    types: { getTypeParser: getTypeParser as typeof pg.types.getTypeParser },
  });
  // An idle connection dying (server restart, database dropped) must not crash the process;
  // the pool discards it and the next query opens a new one.
  pool.on('error', () => {});
  try {
    await pool.query('SELECT 1'); // fail at startup, not at the first request
  } catch (err) {
    await pool.end();
    throw err;
  }
  const sessionOf = (client: pg.Pool | pg.PoolClient): Session => ({
    // Extended protocol even without parameters, as PGlite: several statements are refused, not run.
    query: async (sql, params) =>
      (await client.query({ text: sql, values: [...params], queryMode: 'extended' } as pg.QueryConfig)).rows,
    exec: async (sql) => {
      const result: pg.QueryResult | pg.QueryResult[] = await client.query(sql);
      return (Array.isArray(result) ? result.at(-1) : result)?.command;
    },
  });
  const poolSession = sessionOf(pool);
  const db = createDb('postgres', {
    run: async (fn, exclusive) => {
      if (!exclusive) return fn(poolSession);
      const client = await pool.connect();
      let broken = false;
      try {
        return await fn({ ...sessionOf(client), discard: () => (broken = true) });
      } finally {
        client.release(broken);
      }
    },
    close: () => pool.end(),
  });
  return { ...db, listen: (channel, onNotify, onReconnect) => listenPostgres(url, channel, onNotify, onReconnect) };
}

/** LISTEN on a dedicated client; reconnects with backoff (100 ms doubling to 5 s) until closed. */
async function listenPostgres(url: string, channel: string, onNotify: (payload: string) => void, onReconnect?: () => void): Promise<DbListener> {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(channel)) throw new Error(`listen: invalid channel name ${channel}`);
  let closed = false;
  let client: pg.Client | undefined;
  let retry: NodeJS.Timeout | undefined;
  const open = async (): Promise<void> => {
    const next = new pg.Client({ connectionString: url });
    next.on('notification', (message) => {
      if (message.channel === channel) onNotify(message.payload ?? '');
    });
    next.on('error', () => {}); // 'end' follows and reconnects
    next.on('end', () => {
      if (client === next) client = undefined;
      if (!closed) schedule(100);
    });
    await next.connect();
    await next.query(`LISTEN ${channel}`);
    if (closed) {
      await next.end().catch(() => {});
      return;
    }
    client = next;
  };
  const schedule = (delayMs: number) => {
    if (closed || retry) return;
    retry = setTimeout(() => {
      retry = undefined;
      open().then(
        () => onReconnect?.(),
        () => schedule(Math.min(delayMs * 2, 5_000)),
      );
    }, delayMs);
  };
  await open();
  return {
    async close() {
      closed = true;
      clearTimeout(retry);
      await client?.end().catch(() => {});
    },
  };
}

interface Driver {
  /** Runs fn with a session; `exclusive` = one connection for the whole of fn (a transaction). */
  run<T>(fn: (session: Session) => Promise<T>, exclusive: boolean): Promise<T>;
  close(): Promise<void>;
}

function createDb(kind: Db['kind'], driver: Driver): Db {
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
      return (await driver.run((s) => s.query(sql, params), false)) as T[];
    },
    async exec(sql) {
      refuseNested();
      await driver.run((s) => s.exec(sql), false);
    },
    async transaction(fn) {
      refuseNested();
      return driver.run(async (session) => {
        const state = { open: true };
        const checkOpen = () => {
          if (!state.open) throw new Error('transaction already finished: `tx` cannot be used any more');
        };
        const tx: TxQueryable = {
          async query<T>(sql: string, params: readonly unknown[] = []) {
            checkOpen();
            return (await session.query(sql, params)) as T[];
          },
          async exec(sql) {
            checkOpen();
            await session.exec(sql);
          },
        };
        await session.exec('BEGIN');
        try {
          const result = await insideTransaction.run(state, () => fn(tx));
          state.open = false;
          if ((await session.exec('COMMIT')) !== 'COMMIT') {
            throw new Error('transaction rolled back at COMMIT: a statement in it had failed');
          }
          return result;
        } catch (err) {
          state.open = false;
          // After a failed or refused COMMIT there is no transaction left; ROLLBACK then only warns.
          await session.exec('ROLLBACK').catch(() => session.discard?.());
          throw err;
        }
      }, true);
    },
    close: () => driver.close(),
  };
}

/** Runs async functions one at a time, in call order; a failure does not stop the queue. */
function createQueue() {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>): Promise<T> => {
    const result = tail.then(fn);
    tail = result.catch(() => {});
    return result;
  };
}
