/**
 * Which database failures mean "the database cannot be reached right now" — answered 503
 * database_unavailable with Retry-After, logged at warn, retried by workers at their next pass —
 * and which stay what they are (a constraint violation, a syntax error, a serialization failure:
 * bad input, a race the caller handles, or a bug). Only connection-class failures qualify:
 * network errors, the pool's and the client's timeouts, SQLSTATE class 08, the server shutting
 * down or ending our session (57P01–57P03, 25P03), too many connections (53300), and 57014 only
 * when it is our own statement_timeout (a cancel by an operator stays an error).
 */
import { KessaiError, limits } from '@kessai/protocol';
import pg from 'pg';
import type { Logger } from './logger.ts';

const networkCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/** Server-side SQLSTATEs that end or refuse a session: admin/crash shutdown, cannot connect now, idle-in-transaction timeout, too many connections. */
const sessionEndedStates = new Set(['57P01', '57P02', '57P03', '25P03', '53300']);

/** The messages of `pg` and `pg-pool` for a dead connection or one of their timeouts (plain Errors, no code). */
const driverMessages = [
  /^Connection terminated/, // unexpectedly, or due to connection timeout
  /^timeout exceeded when trying to connect$/, // pool: no connection within connectionTimeoutMillis
  /^Query read timeout$/, // client: query_timeout
  /^Client has encountered a connection error and is not queryable$/,
  /^Connection ended unexpectedly$/,
  /^timeout expired$/, // client: connectionTimeoutMillis while connecting
];

/** True when `err` (or what it wraps) says the database is unreachable, stalled or shutting down, rather than that the statement is wrong. */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let cause = err, depth = 0; cause instanceof Error && depth < 5; cause = cause.cause, depth += 1) {
    if (cause instanceof KessaiError) return cause.code === 'database_unavailable';
    if (isConnectionClass(cause)) return true;
    if (cause instanceof AggregateError && cause.errors.some(isConnectionClass)) return true; // Node tries ::1 and 127.0.0.1 for localhost
  }
  return false;
}

function isConnectionClass(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err instanceof pg.DatabaseError) {
    const state = err.code ?? '';
    return state.startsWith('08') || sessionEndedStates.has(state) || (state === '57014' && /statement timeout/.test(err.message));
  }
  const code = (err as NodeJS.ErrnoException).code;
  if (typeof code === 'string' && networkCodes.has(code)) return true;
  return driverMessages.some((pattern) => pattern.test(err.message));
}

/** The error callers see for `err`: a connection-class failure becomes KessaiError database_unavailable (with Retry-After, the driver's error as its cause); anything else is returned as it is. */
export function asDatabaseError(err: unknown): unknown {
  if (err instanceof KessaiError || !isDatabaseUnavailable(err)) return err;
  const unavailable = new KessaiError('database_unavailable');
  unavailable.retryAfterSeconds = limits.dbRetryAfterSeconds;
  Object.defineProperty(unavailable, 'cause', { value: err, enumerable: false, configurable: true, writable: true });
  return unavailable;
}

/**
 * How a worker pass (webhook delivery, expiry, hold sync, revocation relay, settlement close, the
 * audit writer) reports its failure: at warn when the database is unavailable — the pass runs
 * again at its next tick, and the server's own answers already say database_unavailable — at
 * error otherwise. Never rethrows: one failed pass must not stop the worker or the process.
 */
export function logPassFailure(logger: Pick<Logger, 'warn' | 'error'>, err: unknown, message: string, fields: Record<string, unknown> = {}): void {
  if (isDatabaseUnavailable(err)) logger.warn({ ...fields, err: describeFault(err) }, `${message}: database unavailable, retried at the next pass`);
  else logger.error({ ...fields, err }, message);
}

/** The driver's error under a database_unavailable, for the log line. */
function describeFault(err: unknown): unknown {
  return err instanceof KessaiError && err.cause !== undefined ? err.cause : err;
}
