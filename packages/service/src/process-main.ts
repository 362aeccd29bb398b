/**
 * What every server that runs as its own OS process (apps/<role>/src/main.ts) does once it
 * listens: print the one JSON line its parent waits for, and close cleanly on SIGTERM or SIGINT.
 */
import type { Db } from './db.ts';
import type { Logger } from './logger.ts';

/** Prints `{"listening":url,"pid":…}` on stdout; the first SIGTERM or SIGINT closes the server, then the database, and exits 0. */
export function serveUntilSignalled(url: string, parts: { app: { close(): Promise<unknown> }; db: Db; logger: Logger }): void {
  console.log(JSON.stringify({ listening: url, pid: process.pid }));
  let stopping = false;
  const stop = async () => {
    if (stopping) return; // a second signal (tsx relays one) while closing
    stopping = true;
    await parts.app.close().catch(() => undefined);
    await parts.db.close().catch(() => undefined);
    parts.logger.flush?.();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
}
