/**
 * `kessai merchants …`, two operators' verbs. At the broker (the authentication server's operator
 * token): `create` makes a merchant with its API key and webhook secret (printed once), `list`,
 * `show`, `rotate-key` (Stripe's roll: the old key works for an overlap, or `--now` retires it),
 * `retire-previous-keys`, `rotate-webhook-secret`. At a bank (`--issuer <id>`, the bank's own
 * token): `onboard` a merchant under the name payers are shown — the bank pays no other (DESIGN.md
 * §1) — and `list --issuer`.
 */
import type { Command } from 'commander';
import { apiKeyRolled, apiKeysRetired, brokerMerchantCreated, brokerMerchantList, brokerMerchantView, idPattern, issuerMerchantList, issuerMerchantView, KessaiError, limits, webhookSecretRetirement, webhookSecretRotation } from '@kessai/protocol';
import type { z } from 'zod';
import { defaultRoleUrl, operatorCall } from './operator.ts';

interface MerchantOptions {
  issuer?: string;
  dataDir: string;
  url?: string;
}

function target(options: MerchantOptions) {
  if (options.issuer === undefined) return { dataDir: options.dataDir, role: 'auth' as const, url: options.url ?? defaultRoleUrl('auth') };
  if (!/^[a-z0-9][a-z0-9-]{0,63}$/.test(options.issuer)) throw new KessaiError('validation_failed', '--issuer is an issuer id');
  const role = `settlement-${options.issuer}` as const;
  return { dataDir: options.dataDir, role, url: options.url ?? defaultRoleUrl(role) };
}

export function registerMerchantsCommands(program: Command, dataDirDefault: string): Command {
  const merchants = program.command('merchants').description('operator: the merchants an issuer pays');
  const common = (command: Command) =>
    command
      .option('--data-dir <dir>', 'the data folder of the running system (CA and operator tokens)', dataDirDefault)
      .option('--url <url>', 'the server called (default: its port under kessai start)');
  const withOptions = (command: Command) => common(command.requiredOption('--issuer <id>', 'the issuer (settlement server), e.g. sakura-bank'));
  const fail = (command: Command, err: unknown) => {
    if (err instanceof KessaiError) command.error(`kessai merchants: ${err.message} (${err.code})`, { exitCode: 1, code: `kessai.${err.code}` });
    throw err;
  };
  withOptions(merchants.command('onboard').description('onboard a merchant (or rename it) at an issuer'))
    .requiredOption('--id <mer_…>', 'the merchant id the authentication server knows it by')
    .requiredOption('--name <name>', 'the name payers are shown (the approval must name it)')
    .action(async (options: MerchantOptions & { id: string; name: string }, command: Command) => {
      try {
        if (!idPattern('mer').test(options.id)) throw new KessaiError('validation_failed', '--id is not a merchant id (mer_…)');
        const onboarded = await operatorCall(target(options), 'POST', '/admin/v1/merchants', issuerMerchantView, { merchant_id: options.id, name: options.name });
        process.stdout.write(`onboarded: ${onboarded.merchant_id} as "${onboarded.name}" at ${options.issuer}\n`);
      } catch (err) {
        fail(command, err);
      }
    });
  common(merchants.command('list').description('list the broker’s merchants, or with --issuer those a bank pays (newest first)'))
    .option('--issuer <id>', 'list the merchants this issuer (settlement server) pays instead')
    .action(async (options: MerchantOptions, command: Command) => {
      try {
        if (options.issuer !== undefined) {
          const list = await operatorCall(target(options), 'GET', '/admin/v1/merchants', issuerMerchantList);
          for (const merchant of list.items) process.stdout.write(`  ${merchant.merchant_id}  ${merchant.name}  since ${merchant.created_at}\n`);
          if (list.items.length === 0) process.stdout.write(`no merchant is onboarded at ${options.issuer}\n`);
          return;
        }
        const list = await operatorCall(target(options), 'GET', '/admin/v1/merchants', brokerMerchantList);
        for (const merchant of list.items) process.stdout.write(describeMerchant(merchant));
        if (list.items.length === 0) process.stdout.write('the broker has no merchant\n');
      } catch (err) {
        fail(command, err);
      }
    });
  registerBrokerVerbs(merchants, common, fail);
  return merchants;
}

type BrokerMerchant = z.infer<typeof brokerMerchantView>;

function describeMerchant(merchant: BrokerMerchant): string {
  const keys = merchant.api_keys.map((key) => `${key.status} ${key.livemode ? 'live' : 'test'} …${key.last4 ?? '????'}${key.expires_at ? ` until ${key.expires_at}` : ''}`).join(', ');
  return `  ${merchant.merchant_id}  ${merchant.name}  webhook ${merchant.webhook_url ?? '(none)'}  keys: ${keys}  previous webhook secrets: ${merchant.previous_webhook_secrets}  since ${merchant.created_at}\n`;
}

function merchantIdOf(id: string): string {
  if (!idPattern('mer').test(id)) throw new KessaiError('validation_failed', 'not a merchant id (mer_…)');
  return id;
}

/** The broker operator's verbs: create, show, rotate-key, retire-previous-keys, rotate-webhook-secret. */
function registerBrokerVerbs(merchants: Command, common: (command: Command) => Command, fail: (command: Command, err: unknown) => void): void {
  const run = (action: (options: MerchantOptions & Record<string, unknown>, ...args: string[]) => Promise<string>) => async (...args: unknown[]) => {
    const command = args[args.length - 1] as Command;
    const options = args[args.length - 2] as MerchantOptions & Record<string, unknown>;
    try {
      process.stdout.write(await action(options, ...(args.slice(0, -2) as string[])));
    } catch (err) {
      fail(command, err);
    }
  };
  common(merchants.command('create').description('create a merchant at the broker: its id, API key and webhook secret (shown once)'))
    .requiredOption('--name <name>', 'the name payers are shown')
    .option('--webhook-url <url>', 'https URL the broker delivers events to')
    .option('--live', 'make a live key (sk_live_…) instead of a test key (sk_test_…)', false)
    .action(run(async (options) => {
      const body = { name: options.name, livemode: options.live === true, ...(options.webhookUrl ? { webhook_url: options.webhookUrl } : {}) };
      const created = await operatorCall(target(options), 'POST', '/admin/v1/merchants', brokerMerchantCreated, body);
      return `created: ${created.merchant.merchant_id} "${created.merchant.name}"\napi key (shown once, stored only as a hash): ${created.api_key}\nwebhook secret (shown once): ${created.webhook_secret}\nnext: onboard it at each bank that pays it: kessai merchants onboard --issuer <id> --id ${created.merchant.merchant_id} --name "${created.merchant.name}"\n`;
    }));
  common(merchants.command('show').description('show one merchant of the broker (never a key or secret)'))
    .argument('<id>', 'the merchant id (mer_…)')
    .action(run(async (options, id) => describeMerchant(await operatorCall(target(options), 'GET', `/admin/v1/merchants/${merchantIdOf(id!)}`, brokerMerchantView))));
  common(merchants.command('rotate-key').description('roll the merchant’s API key: a new key now; the old one works for the overlap, or not at all with --now'))
    .argument('<id>', 'the merchant id (mer_…)')
    .option('--now', 'retire the old key at once (a leaked key)', false)
    .option('--live', 'the new key is a live key (sk_live_…)')
    .option('--test', 'the new key is a test key (sk_test_…); default: the current key\'s mode')
    .option('--overlap <seconds>', `how long the old key keeps working (default ${limits.apiKeyOverlapSecondsDefault}, at most ${limits.apiKeyOverlapSecondsMax})`)
    .action(run(async (options, id) => {
      const overlap = options.now ? 0 : options.overlap === undefined ? undefined : Number(options.overlap);
      if (overlap !== undefined && !Number.isInteger(overlap)) throw new KessaiError('validation_failed', '--overlap is a number of seconds');
      if (options.live && options.test) throw new KessaiError('validation_failed', '--live and --test together');
      const mode = options.live ? { livemode: true } : options.test ? { livemode: false } : {};
      const body = { ...mode, ...(overlap === undefined ? {} : { overlap_seconds: overlap }) };
      const rolled = await operatorCall(target(options), 'POST', `/admin/v1/merchants/${merchantIdOf(id!)}/api-keys/roll`, apiKeyRolled, body);
      const previous = rolled.previous_expires_at ? `the previous key works until ${rolled.previous_expires_at}` : 'the previous key is retired';
      return `rotated: API key of ${rolled.merchant.merchant_id}; ${previous}\nnew api key (shown once, stored only as a hash): ${rolled.api_key}\n`;
    }));
  common(merchants.command('retire-previous-keys').description('end the overlap: the merchant’s previous API keys are refused from now on'))
    .argument('<id>', 'the merchant id (mer_…)')
    .action(run(async (options, id) => {
      const retired = await operatorCall(target(options), 'POST', `/admin/v1/merchants/${merchantIdOf(id!)}/api-keys/retire-previous`, apiKeysRetired);
      return `retired: ${retired.retired} previous API key(s) of ${retired.merchant_id}\n`;
    }));
  common(merchants.command('rotate-webhook-secret').description('a new webhook secret (shown once); the previous ones sign too until retired with --retire-previous'))
    .argument('<id>', 'the merchant id (mer_…)')
    .option('--retire-previous', 'instead: retire the previous webhook secrets (only the current one signs)', false)
    .action(run(async (options, id) => {
      const base = `/admin/v1/merchants/${merchantIdOf(id!)}/webhook-secret`;
      if (options.retirePrevious) {
        const retired = await operatorCall(target(options), 'POST', `${base}/retire-previous`, webhookSecretRetirement);
        return `retired: ${retired.retired} previous webhook secret(s) of ${retired.merchant_id}\n`;
      }
      const rotated = await operatorCall(target(options), 'POST', `${base}/rotate`, webhookSecretRotation);
      return `rotated: webhook secret of ${rotated.merchant_id}; ${rotated.previous_secrets} previous secret(s) still sign until retired\nnew webhook secret (shown once): ${rotated.webhook_secret}\n`;
    }));
}
