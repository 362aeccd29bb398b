/**
 * Structured logs (pino): JSON lines on stdout (asynchronous, flushed when the process exits,
 * fatal exits included) and/or appended to a file (synchronous: tests and `kessai start` read the
 * per-role files while the servers run). Request lines carry request_id, trace_id and span_id
 * (server.ts). Personal data is kept out by design — it lives in Secret wrappers that print as
 * "[redacted]" — and the redact paths below are only the last line of defence.
 */
import { pino, type Logger } from 'pino';
import { mkdirSync } from 'node:fs';
import path from 'node:path';

export type { Logger };

export interface LoggerOptions {
  name: string;
  /** Append JSON lines here (created with its folder). */
  file?: string;
  stdout?: boolean;
  level?: string;
}

/** Asynchronous destinations, written out synchronously at exit (process.exit included): no last line is lost. */
const unflushed = new Set<{ flushSync(): void }>();
process.once('exit', () => {
  for (const stream of unflushed) {
    try {
      stream.flushSync();
    } catch {
      // stdout already closed: nothing left to write to
    }
  }
});

export function createLogger(options: LoggerOptions): Logger {
  const targets: pino.DestinationStream[] = [];
  if (options.file) {
    mkdirSync(path.dirname(options.file), { recursive: true, mode: 0o700 });
    targets.push(pino.destination({ dest: options.file, sync: true, mode: 0o600 }));
  }
  if (options.stdout) {
    const stdout = pino.destination({ dest: 1, sync: false });
    unflushed.add(stdout);
    targets.push(stdout);
  }
  const stream = targets.length === 0 ? pino.destination('/dev/null') : pino.multistream(targets.map((s) => ({ stream: s })));
  return pino(
    {
      name: options.name,
      level: options.level ?? 'info',
      redact: {
        // A database error's detail and parameters can quote a row's values.
        paths: ['req.headers.authorization', 'req.headers.cookie', 'err.detail', 'err.where', 'err.parameters', 'err.params', '*.card_number', '*.holder_name', '*.expiry', '*.pin', '*.sealed_credential'],
        censor: '[redacted]',
      },
    },
    stream,
  );
}
