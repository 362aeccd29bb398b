/**
 * What every server that runs as its own OS process (apps/<role>/src/main.ts) does once it
 * listens: print the one JSON line its parent waits for, close cleanly on SIGTERM or SIGINT, and
 * keep serving through a database fault that escaped every handler — while any other stray
 * exception or rejection (a bug) still ends the process, loudly, as Node's default would.
 */
import type { Db } from './db.ts';
import { isDatabaseUnavailable } from './db-faults.ts';
import type { Logger } from './logger.ts';

/** Prints `{"listening":url,"pid":…}` on stdout; the first SIGTERM or SIGINT closes the server, then the database, and exits 0. */
export function serveUntilSignalled(url: string, parts: { app: { close(): Promise<unknown> }; db?: Pick<Db, 'close'>; logger: Logger }): void {
  survivesDatabaseFaults(parts.logger);
  console.log(JSON.stringify({ listening: url, pid: process.pid }));
  let stopping = false;
  const stop = async () => {
    if (stopping) return; // a second signal (tsx relays one) while closing
    stopping = true;
    await parts.app.close().catch(() => undefined);
    await parts.db?.close().catch(() => undefined);
    parts.logger.flush?.();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
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
