/**
 * `kessai keys list|rotate|retire --role <role> [--key <name>] [--kid <kid>]`: key rotation on a
 * running server (`/admin/v1/keys…`). Roles: `auth` (cipher1, request-signing) and
 * `settlement-<issuer>` (cipher2, authorization-signing). Rotate makes a new current key and keeps
 * the old one as previous; retire stops a previous key at once. `--key webhook-secret --merchant`
 * rotates a merchant's webhook secret (both sign until the previous ones are retired).
 */
import path from 'node:path';
import type { Command } from 'commander';
import { idPattern, KessaiError, keyInfo, keyList, webhookSecretRetirement, webhookSecretRotation, type KeyInfo } from '@kessai/protocol';
import { readIfExists, writePrivateFile } from '@kessai/service';
import { defaultRoleUrl, operatorCall } from './operator.ts';
import type { MerchantSecrets } from './system.ts';

interface KeyOptions {
  role: string;
  key?: string;
  kid?: string;
  merchant?: string;
  dataDir: string;
  url?: string;
}

function target(options: KeyOptions) {
  if (options.role !== 'auth' && !/^settlement-[a-z0-9-]{1,60}$/.test(options.role)) throw new KessaiError('validation_failed', '--role is auth or settlement-<issuer id>');
  const role = options.role as 'auth' | `settlement-${string}`;
  return { dataDir: options.dataDir, role, url: options.url ?? defaultRoleUrl(role) };
}

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new KessaiError('validation_failed', `${flag} is required`);
  return value;
}

/** The webhook secret is the merchant's, not a JWK: `--role auth --key webhook-secret --merchant mer_…`. */
const webhookSecretKey = 'webhook-secret';

function merchantOf(options: KeyOptions): string {
  if (options.role !== 'auth') throw new KessaiError('validation_failed', 'webhook secrets live at the authentication server: --role auth');
  const merchant = required(options.merchant, '--merchant');
  if (!idPattern('mer').test(merchant)) throw new KessaiError('validation_failed', '--merchant is not a merchant id (mer_…)');
  return merchant;
}

/**
 * `kessai start` configures the reference shop from shop/merchant.json: the new secret becomes its
 * current one and the old ones stay accepted until retired (the shop reads it at its next start).
 */
async function updateShopSecrets(dataDir: string, merchant: string, change: (secrets: MerchantSecrets) => MerchantSecrets): Promise<string> {
  const file = path.join(path.resolve(dataDir), 'shop', 'merchant.json');
  const stored = await readIfExists(file);
  if (!stored) return `no ${file}: configure the shop with the new secret yourself\n`;
  const secrets = JSON.parse(stored) as MerchantSecrets;
  if (secrets.merchantId !== merchant) return `${file} is another merchant's: configure the shop with the new secret yourself\n`;
  await writePrivateFile(file, `${JSON.stringify(change(secrets), null, 2)}\n`);
  return `${file} updated: restart the shop (kessai start) so it accepts the new secret\n`;
}

async function rotateWebhookSecret(options: KeyOptions): Promise<string> {
  const merchant = merchantOf(options);
  const rotated = await operatorCall(target(options), 'POST', `/admin/v1/merchants/${merchant}/webhook-secret/rotate`, webhookSecretRotation);
  const note = await updateShopSecrets(options.dataDir, merchant, (secrets) => ({
    ...secrets,
    webhookSecret: rotated.webhook_secret,
    previousWebhookSecrets: [secrets.webhookSecret, ...(secrets.previousWebhookSecrets ?? [])],
  }));
  return `rotated: webhook secret of ${merchant}; ${rotated.previous_secrets} previous secret(s) still sign until retired\nnew secret (shown once): ${rotated.webhook_secret}\n${note}`;
}

async function retireWebhookSecrets(options: KeyOptions): Promise<string> {
  const merchant = merchantOf(options);
  const retired = await operatorCall(target(options), 'POST', `/admin/v1/merchants/${merchant}/webhook-secret/retire-previous`, webhookSecretRetirement);
  const note = await updateShopSecrets(options.dataDir, merchant, ({ previousWebhookSecrets: _previous, ...secrets }) => secrets);
  return `retired: ${retired.retired} previous webhook secret(s) of ${merchant}\n${note}`;
}

const line = (key: KeyInfo) => `${key.key.padEnd(22)} ${key.kid}  ${key.use}  ${key.alg.padEnd(15)} ${key.created}  ${key.status}\n`;

export function registerKeysCommands(program: Command, dataDirDefault: string): Command {
  const keys = program.command('keys').description('operator: list, rotate and retire the keys of a running server');
  const common = (command: Command) =>
    command
      .requiredOption('--role <role>', 'auth, settlement-sakura-bank, settlement-fuji-bank, …')
      .option('--data-dir <dir>', 'the data folder of the running system (CA and operator token)', dataDirDefault)
      .option('--url <url>', 'the server (default: its port under kessai start)');
  const run = (action: (options: KeyOptions) => Promise<string>) => async (options: KeyOptions, command: Command) => {
    try {
      process.stdout.write(await action(options));
    } catch (err) {
      if (err instanceof KessaiError) command.error(`kessai keys: ${err.message} (${err.code})`, { exitCode: 1, code: `kessai.${err.code}` });
      throw err;
    }
  };

  common(keys.command('list').description('every key of the role: name, kid, use, alg, created, status (current / previous / retired)')).action(
    run(async (options) => {
      const listed = await operatorCall(target(options), 'GET', '/admin/v1/keys', keyList);
      return listed.keys.filter((key) => options.key === undefined || key.key === options.key).map(line).join('');
    }),
  ).option('--key <name>', 'only this key name');

  common(keys.command('rotate').description('a new current key for --key; the old one stays as previous (still opens and verifies)'))
    .option('--key <name>', 'cipher1, request-signing, cipher2, authorization-signing, or webhook-secret (with --merchant)')
    .option('--merchant <id>', 'with --key webhook-secret: the merchant (mer_…)')
    .action(run(async (options) => (options.key === webhookSecretKey ? rotateWebhookSecret(options) : `rotated: ${line(await operatorCall(target(options), 'POST', '/admin/v1/keys/rotate', keyInfo, { key: required(options.key, '--key') }))}`)));

  common(keys.command('retire').description('stop a previous key of --key at once (the current key cannot be retired); --key webhook-secret retires every previous secret of --merchant'))
    .option('--key <name>', 'the key name')
    .option('--kid <kid>', 'the previous key to retire')
    .option('--merchant <id>', 'with --key webhook-secret: the merchant (mer_…)')
    .action(run(async (options) => (options.key === webhookSecretKey ? retireWebhookSecrets(options) : `retired: ${line(await operatorCall(target(options), 'POST', '/admin/v1/keys/retire', keyInfo, { key: required(options.key, '--key'), kid: required(options.kid, '--kid') }))}`)));
  return keys;
}
