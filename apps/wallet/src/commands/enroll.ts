/**
 * `kessai wallet enroll` (steps 301–305): the card is enrolled onto the removable storage — the
 * sealed credential and the device key, with the card's last four digits for `status`. The PIN and
 * the recovery code are never written there.
 */
import { readFile, stat } from 'node:fs/promises';
import type { Command } from 'commander';
import {
  expiryPattern,
  isExpired,
  isValidCardNumber,
  KessaiError,
  limits,
  normalizeCardNumber,
  Secret,
  type JWK,
} from '@kessai/protocol';
import { z } from 'zod';
import { WalletClient } from '@kessai/sdk';
import { assertMayEnroll, openStorage, saveWallet, storageFileBytesMax } from '../storage.ts';
import {
  ask,
  automationNote,
  httpsUrl,
  lines,
  modeDescriptions,
  pinSource,
  readCaCert,
  run,
  WalletCliError,
  type WalletIo,
} from './common.ts';

/** The file `kessai start` writes the development directory's public key to, in its data folder. */
export const directoryKeyFile = 'directory-key.jwk';
const directoryPublicKey = z
  .looseObject({ kty: z.literal('EC'), crv: z.literal('P-256'), x: z.string().max(64), y: z.string().max(64) })
  .refine((jwk) => !('d' in jwk), 'a public key');

export function registerEnroll(wallet: Command, io: WalletIo): void {
  wallet
    .command('enroll')
    .description('enroll a card (steps 301–305): the sealed credential and the device key go onto the storage folder')
    .requiredOption('--storage <dir>', 'the removable storage folder (must exist)')
    .requiredOption('--auth <url>', 'the authentication server, https://…')
    .requiredOption('--ca <file>', 'the CA certificate (PEM) the servers are signed by; copied onto the storage')
    .option('--name <name>', 'cardholder name as on the card (asked if absent)')
    .option(
      '--card <number>',
      'card number (asked if absent; on the command line it is visible to other users of this machine)',
    )
    .option('--expiry <MM/YY>', 'card expiry (asked if absent)')
    .option(
      '--directory-key <file>',
      "the issuer directory's public key (JWK) this wallet trusts; copied onto the storage",
      defaultDirectoryKey(io),
    )
    .option('--pin-from-env <var>', 'read the PIN from this environment variable (automation only)')
    .option('--force', 'replace a wallet already on the storage')
    .addHelpText(
      'after',
      "\nThe issuer verifies the cardholder at enrollment: you are asked for the card's PIN, " +
        `which is encrypted to the issuer (never readable by the authentication server).\n${automationNote}`,
    )
    .action(run((options: EnrollOptions) => enroll(io, options)));
}

interface EnrollOptions {
  storage: string;
  auth: string;
  ca: string;
  directoryKey: string;
  name?: string;
  card?: string;
  expiry?: string;
  pinFromEnv?: string;
  force?: boolean;
}

/** The development directory key that `kessai start` writes into its data folder. */
function defaultDirectoryKey(io: WalletIo): string {
  return `${io.env.KESSAI_DATA_DIR ?? './.kessai'}/${directoryKeyFile}`;
}

async function enroll(io: WalletIo, options: EnrollOptions): Promise<void> {
  const storage = await openStorage(options.storage);
  assertMayEnroll(storage, options.force ?? false);
  const authBaseUrl = httpsUrl(options.auth, '--auth');
  const caCertPem = await readCaCert(options.ca);
  const directoryKey = await readDirectoryKey(options.directoryKey);
  const pin = pinSource(io, options);

  const holderName =
    options.name !== undefined
      ? checkedName(options.name)
      : await ask(io, 'text', 'Cardholder name (as on the card)', checkName, 'pass --name');
  const card = new Secret(
    options.card !== undefined
      ? checkedCard(options.card)
      : normalizeCardNumber(await ask(io, 'password', 'Card number', checkCard, 'pass --card')),
  );
  const expiry =
    options.expiry !== undefined
      ? checkedExpiry(options.expiry)
      : (await ask(io, 'text', 'Expiry (MM/YY)', checkExpiry, 'pass --expiry')).trim();

  const { wallet: stored, recoveryCode } = await WalletClient.enrollment({
    authBaseUrl,
    caCertPem,
    directoryKey,
    holderName: holderName.trim(),
    cardNumber: card.expose(),
    expiry,
    pin: (await pin.next()).expose(),
  });
  const saved = await saveWallet(storage.dir, stored, caCertPem, { force: options.force ?? false });
  const out = lines(io.stdout);
  out(`enrolled: credential ${stored.credential_id} (card ending ${card.expose().slice(-4)})`);
  const mode = modeDescriptions[stored.issuer.conversion_mode];
  out(`issuer: ${stored.issuer.name} (${stored.issuer.id}), conversion mode ${mode}`);
  out(`storage: ${saved.dir} — keep it safe; whoever holds it and knows the PIN can pay`);
  // Shown once and never written to the storage: a thief holding the storage must not find it there.
  out(
    `recovery code: ${recoveryCode.expose()} — write it down and keep it apart from the storage; it is shown only now`,
  );
  out(
    `  if the storage is lost: kessai wallet revoke --credential ${stored.credential_id} ` +
      `--auth ${authBaseUrl} --ca <ca.cert.pem>`,
  );
}

function checkName(value: string | undefined): string | undefined {
  const name = value?.trim() ?? '';
  if (name.length === 0) return 'the cardholder name is required';
  if (name.length > limits.holderNameLengthMax) return `at most ${limits.holderNameLengthMax} characters`;
  return undefined;
}

function checkCard(value: string | undefined): string | undefined {
  return isValidCardNumber(normalizeCardNumber(value ?? ''))
    ? undefined
    : 'not a valid card number (12–19 digits, Luhn check)';
}

function checkExpiry(value: string | undefined): string | undefined {
  const expiry = value?.trim() ?? '';
  if (!expiryPattern.test(expiry)) return 'expiry is MM/YY';
  return isExpired(expiry, new Date()) ? 'the card has expired' : undefined;
}

function checkedName(value: string): string {
  const problem = checkName(value);
  if (problem) throw new KessaiError('validation_failed', `--name: ${problem}`);
  return value;
}

function checkedCard(value: string): string {
  const card = normalizeCardNumber(value);
  if (!isValidCardNumber(card))
    throw new KessaiError('card_invalid', 'the card number is not valid (12–19 digits, Luhn check)');
  return card;
}

function checkedExpiry(value: string): string {
  const expiry = value.trim();
  if (!expiryPattern.test(expiry)) throw new KessaiError('validation_failed', '--expiry must be MM/YY');
  if (isExpired(expiry, new Date())) throw new KessaiError('card_expired');
  return expiry;
}

/** The directory's public key: a P-256 signing key as JWK, public members only. */
async function readDirectoryKey(file: string): Promise<JWK> {
  const info = await stat(file).catch(() => undefined);
  if (!info?.isFile())
    throw new WalletCliError(
      'input_invalid',
      `--directory-key ${file} is not a readable file ` +
        `(kessai start writes it to its data folder as ${directoryKeyFile})`,
    );
  if (info.size > storageFileBytesMax)
    throw new WalletCliError('input_invalid', `--directory-key ${file} is larger than ${storageFileBytesMax} bytes`);
  let jwk: unknown;
  try {
    jwk = JSON.parse(await readFile(file, 'utf8'));
  } catch {
    throw new WalletCliError('input_invalid', `--directory-key ${file} is not JSON`);
  }
  const parsed = directoryPublicKey.safeParse(jwk);
  if (!parsed.success)
    throw new WalletCliError('input_invalid', `--directory-key ${file} is not a public P-256 signing key (JWK)`);
  return parsed.data as JWK;
}
