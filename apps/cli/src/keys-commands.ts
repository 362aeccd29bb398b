/**
 * `kessai keys list|rotate|retire --role <role> [--key <name>] [--kid <kid>]`: key rotation on a
 * running server (`/admin/v1/keys…`). Roles: `auth` (cipher1, request-signing) and
 * `settlement-<issuer>` (cipher2, authorization-signing). Rotate makes a new current key and keeps
 * the old one as previous; retire stops a previous key at once. `--key webhook-secret --merchant`
 * rotates a merchant's webhook secret (both sign until the previous ones are retired).
 *
 * `kessai keys backup --role <role> --keys-dir DIR --out FILE` and `kessai keys restore --in FILE
 * --keys-dir DIR [--force]`: an encrypted copy of a key folder (packages/service/src/key-backup.ts),
 * under a passphrase read from `--passphrase-file` or KESSAI_BACKUP_PASSPHRASE_FILE, never argv.
 */
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { idPattern, KessaiError, keyInfo, limits, keyList, webhookSecretRetirement, webhookSecretRotation, type KeyInfo } from '@kessai/protocol';
import { backupKeyFolder, openKeyBackup, readIfExists, restoreKeyFolder, writePrivateFile } from '@kessai/service';
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

interface BackupOptions {
  role: string;
  keysDir: string;
  out: string;
  passphraseFile?: string;
}

interface RestoreOptions {
  in: string;
  keysDir: string;
  passphraseFile?: string;
  force?: boolean;
}

/** The passphrase from its file (one trailing newline dropped); the file's name may be printed, its content never. */
async function readPassphrase(file: string | undefined): Promise<string> {
  if (file === undefined) throw new KessaiError('validation_failed', '--passphrase-file (or KESSAI_BACKUP_PASSPHRASE_FILE) is required: a passphrase is never taken from the command line');
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new KessaiError('validation_failed', `cannot read the passphrase file ${file} (${err.code ?? 'error'})`);
  });
  const passphrase = text.replace(/\r?\n$/, '');
  if (passphrase.length === 0) throw new KessaiError('validation_failed', `the passphrase file ${file} is empty`);
  return passphrase;
}

export async function backupKeys(options: BackupOptions): Promise<string> {
  if (!/^[a-z][a-z0-9-]{0,63}$/.test(options.role)) throw new KessaiError('validation_failed', '--role is a role name: auth, settlement-<issuer id>, shop, …');
  const passphrase = await readPassphrase(options.passphraseFile);
  const out = path.resolve(options.out);
  if (await stat(out).then(() => true, () => false)) throw new KessaiError('validation_failed', `${out} exists: choose a new file for each backup`);
  const { jwe, files } = await backupKeyFolder(path.resolve(options.keysDir), options.role, passphrase);
  // Written beside its final name, 0600, then renamed: a reader never sees half a backup.
  const temp = `${out}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(temp, `${jwe}\n`, { mode: 0o600, flag: 'wx' });
  await rename(temp, out);
  return `backed up: ${files} file(s) of ${path.resolve(options.keysDir)} (${options.role}) to ${out}, encrypted PBES2-HS512+A256KW / A256GCM\n`;
}

export async function restoreKeys(options: RestoreOptions): Promise<string> {
  const passphrase = await readPassphrase(options.passphraseFile);
  const file = path.resolve(options.in);
  const size = await stat(file).then((s) => s.size, (err: NodeJS.ErrnoException) => {
    throw new KessaiError('validation_failed', `cannot read --in ${file} (${err.code ?? 'error'})`);
  });
  if (size > limits.backupBytesMax * 2) throw new KessaiError('backup_invalid', `${file} is larger than a key backup can be`);
  const content = await openKeyBackup(await readFile(file, 'utf8'), passphrase);
  const restored = await restoreKeyFolder(content, options.keysDir, { force: options.force ?? false });
  const replaced = restored.replacedTo ? `; the keys it replaced are in ${restored.replacedTo}` : '';
  return `restored: ${restored.files} file(s) of ${content.role} (backed up ${content.created}) to ${path.resolve(options.keysDir)}${replaced}\n`;
}

export function registerKeysCommands(program: Command, dataDirDefault: string, backupPassphraseFileDefault?: string): Command {
  const keys = program.command('keys').description('operator: list, rotate and retire the keys of a running server; back up and restore a key folder');
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

  keys
    .command('backup')
    .description('an encrypted copy of a key folder (a JWE under a passphrase), to keep with the role’s database backup')
    .requiredOption('--role <role>', 'the role whose keys these are (recorded in the backup): auth, settlement-<issuer id>, …')
    .requiredOption('--keys-dir <dir>', 'the key folder, e.g. <data dir>/settlement-sakura-bank/keys')
    .requiredOption('--out <file>', 'the backup file to write (0600; must not exist)')
    .option('--passphrase-file <file>', 'file holding the passphrase (default KESSAI_BACKUP_PASSPHRASE_FILE)', backupPassphraseFileDefault)
    .action(run((options) => backupKeys(options as unknown as BackupOptions)));

  keys
    .command('restore')
    .description('write a key backup back into a key folder (refuses a folder that holds keys unless --force)')
    .requiredOption('--in <file>', 'the backup file')
    .requiredOption('--keys-dir <dir>', 'the key folder to restore into')
    .option('--passphrase-file <file>', 'file holding the passphrase (default KESSAI_BACKUP_PASSPHRASE_FILE)', backupPassphraseFileDefault)
    .option('--force', 'replace a folder that holds keys (it is kept beside, renamed)', false)
    .action(run((options) => restoreKeys(options as unknown as RestoreOptions)));
  return keys;
}
