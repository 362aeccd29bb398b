/**
 * Structured logs (pino) to a file per role and, when asked, to stdout. Personal data is kept out
 * by design — it lives in Secret wrappers that print as "[redacted]" — and the redact paths below
 * are only the last line of defence.
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

export function createLogger(options: LoggerOptions): Logger {
  const targets: pino.DestinationStream[] = [];
  if (options.file) {
    mkdirSync(path.dirname(options.file), { recursive: true, mode: 0o700 });
    targets.push(pino.destination({ dest: options.file, sync: true, mode: 0o600 }));
  }
  if (options.stdout) targets.push(pino.destination(1));
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
