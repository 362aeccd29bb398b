/**
 * `kessai trigger payment.approved|payment.declined|payment.refunded|payment.expired` (trigger.ts):
 * merchant key from `--api-key` or KESSAI_API_KEY, the test wallet from `--storage` (a folder
 * `kessai wallet enroll` made with a test card), its PIN from KESSAI_TRIGGER_PIN (never an
 * argument: arguments show in the process list).
 */
import type { Command } from 'commander';
import { loadWallet } from '@kessai/wallet';
import { defaultRoleUrl } from './operator.ts';
import { trigger, triggerEvents, type TriggerName } from './trigger.ts';

interface TriggerCommandOptions {
  storage: string;
  apiKey?: string;
  broker?: string;
}

export function registerTriggerCommands(program: Command, env: NodeJS.ProcessEnv): Command {
  const names = Object.keys(triggerEvents).join('|');
  return program
    .command('trigger')
    .description(`drive a real test purchase so the broker emits an event (${names})`)
    .argument('<event>', names)
    .requiredOption('--storage <dir>', 'an enrolled test wallet’s folder (kessai wallet enroll)')
    .option('--api-key <key>', 'the merchant API key (default: KESSAI_API_KEY)')
    .option('--broker <url>', 'the authentication server (default: KESSAI_BROKER_URL or the local kessai start one)')
    .action(async (event: string, options: TriggerCommandOptions) => {
      if (!(event in triggerEvents)) throw new Error(`kessai trigger: unknown event ${event}; one of ${names}`);
      const apiKey = options.apiKey ?? env.KESSAI_API_KEY;
      const pin = env.KESSAI_TRIGGER_PIN;
      if (!apiKey || !pin)
        throw new Error(
          'kessai trigger: give the merchant API key (--api-key or KESSAI_API_KEY) ' +
            'and the test card’s PIN in KESSAI_TRIGGER_PIN',
        );
      const loaded = await loadWallet(options.storage);
      const view = await trigger(event as TriggerName, {
        brokerUrl: options.broker ?? env.KESSAI_BROKER_URL ?? defaultRoleUrl('auth'),
        apiKey,
        caCertPem: loaded.caCertPem,
        wallet: loaded.wallet,
        pin,
        print: (line) => process.stdout.write(`${line}\n`),
      });
      process.stdout.write(`${view.id}: ${view.status}; events: ${triggerEvents[event as TriggerName].join(', ')}\n`);
    });
}
