/**
 * What every server that runs as its own OS process (`kessai serve <role>`) does once it
 * listens: print the one JSON line its parent waits for, drain on SIGTERM or SIGINT, and
 * keep serving through a database fault that escaped every handler — while any other stray
 * exception or rejection (a bug) still ends the process, loudly, as Node's default would.
 */
import { limits } from '@kessai/protocol';
import type { Db } from './db.ts';
import { isDatabaseUnavailable } from './db-faults.ts';
import type { Logger } from './logger.ts';
import type { Operations } from './operations.ts';

/** The drain's two limits (limits.drainReadinessDelayMs, limits.drainTimeoutMs); tests shorten them. */
export interface DrainOptions {
  readinessDelayMs?: number;
  timeoutMs?: number;
}

export interface DrainParts {
  /** The server (or what closes it: the shop's close() also ends its clients); its `operations` turn /readyz 503. */
  app: { close(): Promise<unknown>; operations?: Operations };
  /** When `app` is not the Fastify instance itself (the shop), the instance's operations. */
  operations?: Operations;
  db?: Pick<Db, 'close'>;
  logger: Logger;
}

/**
 * The drain sequence: /readyz answers 503 at once; the server keeps serving for readinessDelayMs
 * (a load balancer's health checks notice); then app.close() stops accepting connections, ends the
 * event streams (their preClose hooks) and idle keep-alive connections, lets in-flight requests
 * finish (each answer while draining says `Connection: close`) and stops the background workers
 * (onClose hooks); then the database closes and the process exits 0. Past timeoutMs from the signal
 * it exits 1 with an error line, whatever is still running.
 */
export async function drainAndExit(parts: DrainParts, options: DrainOptions = {}): Promise<never> {
  const readinessDelayMs = options.readinessDelayMs ?? limits.drainReadinessDelayMs;
  const timeoutMs = options.timeoutMs ?? limits.drainTimeoutMs;
  if (!(readinessDelayMs >= 0 && timeoutMs > readinessDelayMs)) throw new TypeError('drainAndExit: readinessDelayMs must be ≥ 0 and below timeoutMs');
  const { logger } = parts;
  const startedAt = Date.now();
  (parts.operations ?? parts.app.operations)?.startDraining();
  logger.info({ readinessDelayMs, timeoutMs }, 'draining: /readyz answers 503, serving on until the readiness delay has passed');
  const forced = setTimeout(() => {
    logger.error({ timeoutMs }, 'drain timeout exceeded: exiting 1 with work still in progress');
    logger.flush?.();
    process.exit(1);
  }, timeoutMs);
  await new Promise((resolve) => setTimeout(resolve, readinessDelayMs));
  logger.info('draining: closing the listener; in-flight requests finish');
  await parts.app.close().catch((err: unknown) => logger.warn({ err }, 'draining: closing the server failed'));
  await parts.db?.close().catch(() => undefined);
  clearTimeout(forced);
  logger.info({ drainMs: Date.now() - startedAt }, 'drained: exiting 0');
  logger.flush?.();
  process.exit(0);
}

/**
 * The drain limits from KESSAI_DRAIN_READINESS_DELAY_MS and KESSAI_DRAIN_TIMEOUT_MS (whole
 * milliseconds), each absent meaning its limits.ts value; a malformed one is a TypeError naming the
 * variable. Only an entry point passes its environment here.
 */
export function drainOptionsFromEnv(env: Readonly<Record<string, string | undefined>>): DrainOptions {
  const read = (name: string): number | undefined => {
    const text = env[name];
    if (text === undefined || text === '') return undefined;
    if (!/^[0-9]{1,9}$/.test(text)) throw new TypeError(`${name} must be a whole number of milliseconds`);
    return Number(text);
  };
  const readinessDelayMs = read('KESSAI_DRAIN_READINESS_DELAY_MS');
  const timeoutMs = read('KESSAI_DRAIN_TIMEOUT_MS');
  return { ...(readinessDelayMs !== undefined ? { readinessDelayMs } : {}), ...(timeoutMs !== undefined ? { timeoutMs } : {}) };
}

/** The first SIGTERM or SIGINT starts drainAndExit; later ones (tsx relays one) are ignored. */
export function drainOnSignals(parts: DrainParts, options: DrainOptions = {}): void {
  let draining = false;
  const onSignal = () => {
    if (draining) return;
    draining = true;
    void drainAndExit(parts, options);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/** Prints `{"listening":url,"pid":…}` on stdout, then drains on the first SIGTERM or SIGINT (drainAndExit). */
export function serveUntilSignalled(url: string, parts: DrainParts, options: DrainOptions = {}): void {
  survivesDatabaseFaults(parts.logger);
  console.log(JSON.stringify({ listening: url, pid: process.pid }));
  drainOnSignals(parts, options);
}

/**
 * The last line of defence behind db.ts's own listeners: an uncaught exception or unhandled
 * rejection that is a connection-class database failure (db-faults.ts) is logged at warn and the
 * process goes on — the connection it came from is gone, the next query opens another. Anything
 * else is a bug: logged as fatal, and the process exits 1 (what Node does without these listeners).
 */
export function survivesDatabaseFaults(logger: Logger): void {
  const onFault = (kind: string) => (err: unknown) => {
    if (isDatabaseUnavailable(err)) {
      logger.warn({ err }, `${kind} from the database connection: database unavailable, serving on`);
      return;
    }
    logger.fatal({ err }, `${kind}: exiting`);
    logger.flush?.();
    console.error(err);
    process.exit(1);
  };
  process.on('uncaughtException', onFault('uncaught exception'));
  process.on('unhandledRejection', onFault('unhandled rejection'));
}
