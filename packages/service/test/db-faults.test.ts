/**
 * Database faults (issue 12, item 4): which failures are "the database is unavailable" (503
 * database_unavailable, Retry-After, warn) and which stay what they are; and, on PostgreSQL
 * reached through a TCP proxy with short timeouts, that a stalled, cut or terminated connection
 * fails the statement quickly with database_unavailable, never crashes the process, and that the
 * same Db serves again by itself afterwards.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import pg from 'pg';
import { KessaiError, limits } from '@kessai/protocol';
import { asDatabaseError, isDatabaseUnavailable, logPassFailure } from '../src/db-faults.ts';
import { defaultDbTimeouts, openDb, type Db } from '../src/db.ts';
import { scratchPostgres } from '../../../test/support/database.ts';
import { startTcpProxy, type TcpProxy } from '../../../test/support/tcp-proxy.ts';

const pgUrl = process.env.KESSAI_TEST_PG_URL;

function databaseError(code: string, message: string): pg.DatabaseError {
  const err = new pg.DatabaseError(message, message.length, 'error');
  err.code = code;
  return err;
}

function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`connect ${code} 127.0.0.1:5432`), { code, syscall: 'connect' });
}

describe('which database failures are database_unavailable', () => {
  const unavailable: Array<[string, unknown]> = [
    ['connection refused', errno('ECONNREFUSED')],
    ['connection reset', errno('ECONNRESET')],
    ['localhost refused on both addresses (AggregateError)', Object.assign(new AggregateError([errno('ECONNREFUSED'), errno('ECONNREFUSED')]), { code: 'ECONNREFUSED' })],
    ['the pool had no connection within connectMs', new Error('timeout exceeded when trying to connect')],
    ['a new connection did not open within connectMs', new Error('Connection terminated due to connection timeout', { cause: new Error('Connection terminated unexpectedly') })],
    ['the connection closed under a statement', new Error('Connection terminated unexpectedly')],
    ['no answer within queryMs', new Error('Query read timeout')],
    ['a client whose connection already failed', new Error('Client has encountered a connection error and is not queryable')],
    ['SQLSTATE class 08 (connection exception)', databaseError('08006', 'connection failure')],
    ['57P01 admin shutdown (pg_terminate_backend)', databaseError('57P01', 'terminating connection due to administrator command')],
    ['57P02 crash shutdown', databaseError('57P02', 'terminating connection because of crash of another server process')],
    ['57P03 cannot connect now', databaseError('57P03', 'the database system is starting up')],
    ['57014 from our own statement_timeout', databaseError('57014', 'canceling statement due to statement timeout')],
    ['25P03 idle-in-transaction session timeout', databaseError('25P03', 'terminating connection due to idle-in-transaction timeout')],
    ['53300 too many connections', databaseError('53300', 'sorry, too many clients already')],
    ['an error wrapping one of these', new Error('ledger group failed', { cause: databaseError('57P01', 'terminating connection due to administrator command') })],
  ];
  const other: Array<[string, unknown]> = [
    ['a unique violation', databaseError('23505', 'duplicate key value violates unique constraint')],
    ['a serialization failure', databaseError('40001', 'could not serialize access')],
    ['a syntax error', databaseError('42601', 'syntax error at or near "selec"')],
    ['57014 from a cancel request (pg_cancel_backend), not a timeout', databaseError('57014', 'canceling statement due to user request')],
    ['a programming error', new TypeError("Cannot read properties of undefined (reading 'id')")],
    ['a KessaiError of another code', new KessaiError('not_found')],
    ['not an Error at all', 'ECONNREFUSED'],
  ];

  it.each(unavailable)('%s is database_unavailable', (_name, err) => {
    expect(isDatabaseUnavailable(err)).toBe(true);
    const raised = asDatabaseError(err);
    expect(raised).toBeInstanceOf(KessaiError);
    expect((raised as KessaiError).code).toBe('database_unavailable');
    expect((raised as KessaiError).status).toBe(503);
    expect((raised as KessaiError).retryAfterSeconds).toBe(limits.dbRetryAfterSeconds);
    expect((raised as KessaiError).cause).toBe(err);
    expect(isDatabaseUnavailable(raised), 'already converted: stays so').toBe(true);
  });

  it.each(other)('%s stays what it is', (_name, err) => {
    expect(isDatabaseUnavailable(err)).toBe(false);
    expect(asDatabaseError(err)).toBe(err);
  });

  it('a worker pass logs database_unavailable at warn, anything else at error, and never throws', () => {
    const logger = { warn: vi.fn(), error: vi.fn() };
    logPassFailure(logger, asDatabaseError(errno('ECONNREFUSED')), 'expiry pass failed');
    expect(logger.warn).toHaveBeenCalledOnce();
    expect(logger.warn.mock.calls[0]![1]).toMatch(/^expiry pass failed: database unavailable/);
    expect(logger.error).not.toHaveBeenCalled();
    logPassFailure(logger, new TypeError('bug'), 'expiry pass failed', { day: '2026-12-07' });
    expect(logger.error).toHaveBeenCalledWith(expect.objectContaining({ day: '2026-12-07' }), 'expiry pass failed');
  });

  it('the production timeouts are the named limits, statement timeout below query timeout below upstreamTimeoutMs', () => {
    expect(defaultDbTimeouts).toEqual({
      connectMs: limits.dbConnectTimeoutMs,
      statementMs: limits.dbStatementTimeoutMs,
      queryMs: limits.dbQueryTimeoutMs,
      idleInTransactionMs: limits.dbIdleInTransactionTimeoutMs,
      listenHeartbeatMs: limits.dbListenHeartbeatMs,
    });
    expect(limits.dbStatementTimeoutMs).toBeLessThan(limits.dbQueryTimeoutMs);
    expect(limits.dbQueryTimeoutMs).toBeLessThan(limits.upstreamTimeoutMs);
  });
});

describe('a server process and stray faults (survivesDatabaseFaults)', () => {
  const fixture = path.join(import.meta.dirname, 'fixtures', 'stray-fault.ts');
  const run = (kind: string) =>
    new Promise<{ code: number | null; stdout: string }>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', fixture, kind], { cwd: path.join(import.meta.dirname, '..', '..', '..') }, (_err, stdout) => resolve({ code: _err ? ((_err as { code?: number }).code ?? null) : 0, stdout }));
    });

  it.each(['error-event', 'rejection'])('a database fault nobody handled (%s) is logged and the process serves on', async (kind) => {
    const { code, stdout } = await run(kind);
    expect(stdout).toContain('still serving');
    expect(code).toBe(0);
  });

  it('any other unhandled rejection is a bug: the process exits 1', async () => {
    const { code, stdout } = await run('bug');
    expect(stdout).not.toContain('still serving');
    expect(code).toBe(1);
  });
});

/** How long a failing statement may take to fail, beyond the timeout that ends it. */
const marginMs = 1_500;
const timeouts = { connectMs: 500, statementMs: 400, queryMs: 800, idleInTransactionMs: 2_000, listenHeartbeatMs: 300 };

async function failsUnavailable(what: Promise<unknown>, withinMs: number): Promise<void> {
  const started = Date.now();
  const err = await what.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'the statement failed').toBeInstanceOf(KessaiError);
  expect((err as KessaiError).code).toBe('database_unavailable');
  expect(Date.now() - started).toBeLessThan(withinMs);
}

describe.skipIf(!pgUrl)(pgUrl ? 'a PostgreSQL Db through a TCP proxy, short timeouts' : 'a PostgreSQL Db through a TCP proxy (skipped: set KESSAI_TEST_PG_URL to run)', () => {
  let proxy: TcpProxy;
  let db: Db;
  let admin: pg.Client;
  let drop: (() => Promise<void>) | undefined;
  let database: string;
  let scratchUrl: string;

  beforeAll(async () => {
    const scratch = (await scratchPostgres('kessai_db_faults'))!;
    drop = scratch.drop;
    scratchUrl = scratch.url;
    const url = new URL(scratch.url);
    database = url.pathname.slice(1);
    proxy = await startTcpProxy({ targetHost: url.hostname, targetPort: Number(url.port || 5432) });
    url.host = `127.0.0.1:${proxy.port}`;
    db = await openDb({ url: url.toString(), poolSizeMax: 4, timeouts });
    await db.exec('create table notes (id int primary key, body text)');
    admin = new pg.Client({ connectionString: pgUrl });
    await admin.connect();
  });

  afterAll(async () => {
    await db?.close().catch(() => undefined);
    await admin?.end();
    await proxy?.close();
    await drop?.();
  });

  const terminateAll = () => admin.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [database]);

  it('a statement past statement_timeout is database_unavailable', async () => {
    await failsUnavailable(db.query('select pg_sleep(2)'), timeouts.statementMs + marginMs);
    expect(await db.query('select 1 as one')).toEqual([{ one: 1 }]);
  });

  it('a transaction given a longer statement timeout (migrations) runs past the per-request timeouts', async () => {
    const rows = await db.transaction((tx) => tx.query<{ slept: string }>("select pg_sleep(1)::text as slept"), { statementTimeoutMs: 3_000 });
    expect(rows).toEqual([{ slept: '' }]);
    await expect(db.transaction((tx) => tx.query('select 1'), { statementTimeoutMs: 0 })).rejects.toThrow(TypeError);
    await failsUnavailable(db.transaction((tx) => tx.query('select pg_sleep(2)')), timeouts.statementMs + marginMs);
  });

  it('a stalled database fails queries and transactions within the query or connect timeout; after resume the same Db serves again', async () => {
    await db.query('select 1'); // an idle connection in the pool
    proxy.stall();
    try {
      await failsUnavailable(db.query('select 1'), Math.max(timeouts.queryMs, timeouts.connectMs) + marginMs);
      // BEGIN on a stalled connection: the transaction fails once, without a second wait on ROLLBACK.
      await failsUnavailable(db.transaction((tx) => tx.query('insert into notes values (1, $1)', ['stalled'])), Math.max(timeouts.queryMs, timeouts.connectMs) + marginMs);
    } finally {
      proxy.resume();
    }
    await db.transaction((tx) => tx.query('insert into notes values (2, $1)', ['after the stall']));
    expect(await db.query('select id from notes order by id')).toEqual([{ id: 2 }]);
  });

  it('connections cut and refused fail at once; after resume the same Db serves again', async () => {
    await db.query('select 1');
    proxy.drop();
    try {
      await failsUnavailable(db.query('select 1'), marginMs);
      await failsUnavailable(db.transaction((tx) => tx.query('select 1')), marginMs);
    } finally {
      proxy.resume();
    }
    expect(await db.query('select 1 as one')).toEqual([{ one: 1 }]);
  });

  it('a transaction whose connection is terminated while checked out fails database_unavailable without crashing, and its connection is not reused', async () => {
    let backend = 0;
    const failed = db.transaction(async (tx) => {
      backend = (await tx.query<{ pid: number }>('select pg_backend_pid() as pid'))[0]!.pid;
      await tx.query('insert into notes values (3, $1)', ['lost']);
      await terminateAll(); // the client is idle and checked out: its 'error' event must find a listener
      await new Promise((resolve) => setTimeout(resolve, 200));
      await tx.query('select 1');
    });
    await failsUnavailable(failed, 5_000);
    const rows = await db.query<{ pid: number; ids: number[] }>('select pg_backend_pid() as pid, array(select id from notes order by id) as ids');
    expect(rows[0]!.pid).not.toBe(backend);
    expect(rows[0]!.ids, 'the terminated transaction was rolled back').toEqual([2]);
  });

  it('closing a Db whose database stalls does not wait for it past the query timeout', async () => {
    const url = new URL(scratchUrl);
    url.host = `127.0.0.1:${proxy.port}`;
    const other = await openDb({ url: url.toString(), poolSizeMax: 2, timeouts });
    const listener = await other.listen!('kessai_fault_close', () => undefined);
    await other.query('select 1');
    proxy.stall();
    try {
      const started = Date.now();
      await listener.close();
      await other.close();
      expect(Date.now() - started).toBeLessThan(2 * timeouts.queryMs + marginMs);
    } finally {
      proxy.resume();
    }
  });

  it('the LISTEN connection comes back after a stall (heartbeat) and after its backend is terminated', async () => {
    const heard: string[] = [];
    let reopened = 0;
    const listener = await db.listen!('kessai_fault_test', (payload) => heard.push(payload), () => (reopened += 1));
    try {
      proxy.stall();
      await new Promise((resolve) => setTimeout(resolve, timeouts.listenHeartbeatMs + timeouts.queryMs + 300));
      proxy.resume();
      await vi.waitFor(() => expect(reopened).toBeGreaterThanOrEqual(1), { timeout: 10_000, interval: 100 });
      await terminateAll();
      await vi.waitFor(() => expect(reopened).toBeGreaterThanOrEqual(2), { timeout: 10_000, interval: 100 });
      await vi.waitFor(
        async () => {
          await db.query("select pg_notify('kessai_fault_test', 'ping')");
          expect(heard).toContain('ping');
        },
        { timeout: 10_000, interval: 200 },
      );
    } finally {
      await listener.close();
    }
  });
});
