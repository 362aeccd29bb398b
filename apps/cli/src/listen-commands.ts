/**
 * `kessai listen --forward-to URL [--events type,…]`: the developer's webhook tunnel (listen.ts).
 * The merchant API key comes from `--api-key` or KESSAI_API_KEY; the broker from `--broker` or
 * KESSAI_BROKER_URL (default the local `kessai start` one), its CA from `--ca` or the data folder's
 * development CA when there is one. Ctrl-C ends it cleanly.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { listen, newListenSecret } from './listen.ts';
import { defaultRoleUrl } from './operator.ts';

interface ListenCommandOptions {
  forwardTo: string;
  events?: string;
  apiKey?: string;
  broker?: string;
  ca?: string;
}

export function registerListenCommands(program: Command, dataDir: string, env: NodeJS.ProcessEnv): Command {
  return program
    .command('listen')
    .description('forward the merchant’s events to a local URL, signed with a secret for this run (as stripe listen)')
    .requiredOption('--forward-to <url>', 'where each event is POSTed, e.g. http://localhost:3000/webhooks')
    .option('--events <types>', 'comma-separated event types to forward (all when absent)')
    .option('--api-key <key>', 'the merchant API key (default: KESSAI_API_KEY)')
    .option('--broker <url>', 'the authentication server (default: KESSAI_BROKER_URL or the local kessai start one)')
    .option('--ca <file>', 'the CA of the broker’s certificate (default: the data folder’s development CA, if any)')
    .action(async (options: ListenCommandOptions) => {
      const apiKey = options.apiKey ?? env.KESSAI_API_KEY;
      if (!apiKey) throw new Error('kessai listen: give the merchant API key with --api-key or KESSAI_API_KEY');
      const caFile = options.ca ?? path.join(dataDir, 'pki', 'ca.cert.pem');
      const controller = new AbortController();
      const stop = () => controller.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        await listen(
          {
            brokerUrl: options.broker ?? env.KESSAI_BROKER_URL ?? defaultRoleUrl('auth'),
            apiKey,
            forwardTo: options.forwardTo,
            ...(options.events
              ? {
                  events: options.events
                    .split(',')
                    .map((t) => t.trim())
                    .filter(Boolean),
                }
              : {}),
            ...(existsSync(caFile) ? { caCertPem: readFileSync(caFile, 'utf8') } : {}),
            signal: controller.signal,
            print: (line) => process.stdout.write(`${line}\n`),
          },
          newListenSecret(),
        );
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });
}
