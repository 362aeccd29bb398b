/**
 * What every `kessai wallet` verb shares: the errors the command line finds itself, where the
 * commands read and write, how an expected failure is printed (one line, an exit code), the PIN and
 * the prompts, and the small helpers. Each verb lives in a module of its own beside this one.
 */
import type { Readable, Writable } from 'node:stream';
import * as prompts from '@clack/prompts';
import type { Command } from 'commander';
import { declineCatalog, idPattern, KessaiError, Secret, type ConversionMode } from '@kessai/protocol';
import { WalletClient } from '@kessai/sdk';
import {
  isPemCertificate,
  storageFileBytesMax,
  StorageError,
  StorageMissingError,
  type LoadedWallet,
} from '../storage.ts';
import { readFile, stat } from 'node:fs/promises';

/** Problems the command line finds itself, before any server is asked. */
export type WalletCliErrorCode = 'input_required' | 'input_invalid' | 'cancelled';

export class WalletCliError extends Error {
  readonly code: WalletCliErrorCode;
  constructor(code: WalletCliErrorCode, message: string) {
    super(message);
    this.name = 'WalletCliError';
    this.code = code;
  }
}

/** Where the commands read and write; main.ts passes the process's own. */
export interface WalletIo {
  stdin: Readable & { isTTY?: boolean };
  stdout: Writable;
  stderr: Writable;
  env: Readonly<Record<string, string | undefined>>;
}

export const modeDescriptions: Record<ConversionMode, string> = {
  reseal:
    'reseal — the authentication server re-seals your credential for the issuer, in memory, at each payment ' +
    '(embodiment 1)',
  pass_through:
    'pass_through — your credential is sealed for the issuer; the authentication server cannot open it (embodiment 2)',
};

export const automationNote =
  '--yes and --pin-from-env are for automation (tests, the demo): ' +
  'a person should confirm and type the PIN at the prompt.';

/**
 * Expected failures print one line, `kessai wallet: <message> (<code>)`, and exit 1 (2 when the
 * storage is not there); anything else is a bug and crashes loudly.
 */
export function run<A extends unknown[]>(
  action: (...args: A) => Promise<void>,
): (...args: [...A, Command]) => Promise<void> {
  return async (...args) => {
    const command = args[args.length - 1] as Command;
    try {
      await action(...(args.slice(0, -1) as A));
    } catch (err) {
      if (err instanceof StorageError || err instanceof KessaiError || err instanceof WalletCliError) {
        command.error(`kessai wallet: ${oneLine(err.message)} (${err.code})`, {
          exitCode: err instanceof StorageMissingError ? 2 : 1,
          code: `kessai.${err.code}`,
        });
      }
      throw err;
    }
  };
}

export function httpsUrl(value: string, flag: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new WalletCliError('input_invalid', `${flag} is not a URL`);
  }
  if (url.protocol !== 'https:') throw new WalletCliError('input_invalid', `${flag} must be an https URL`);
  return url.href.replace(/\/+$/, '');
}

export async function readCaCert(file: string): Promise<string> {
  const info = await stat(file).catch(() => undefined);
  if (!info?.isFile()) throw new WalletCliError('input_invalid', `--ca ${file} is not a readable file`);
  if (info.size > storageFileBytesMax)
    throw new WalletCliError('input_invalid', `--ca ${file} is larger than ${storageFileBytesMax} bytes`);
  const pem = await readFile(file, 'utf8');
  if (!isPemCertificate(pem)) throw new WalletCliError('input_invalid', `--ca ${file} is not a PEM certificate`);
  return pem;
}

export function describeDecline(code: string | null): string {
  if (code === null) return '';
  const reason = Object.hasOwn(declineCatalog, code) ? declineCatalog[code as keyof typeof declineCatalog] : undefined;
  return reason ? ` — ${reason} (${code})` : ` (${code})`;
}

export async function withClient(loaded: LoadedWallet, use: (client: WalletClient) => Promise<void>): Promise<void> {
  const client = new WalletClient(loaded.wallet, { caCertPem: loaded.caCertPem });
  try {
    await use(client);
  } finally {
    await client.close();
  }
}

/** A payment request id, or the id at the end of a payment link. */
export function requestIdOf(idOrLink: string): string {
  const trimmed = idOrLink.trim();
  let last = trimmed;
  if (/^https?:\/\//.test(trimmed)) {
    try {
      last = new URL(trimmed).pathname.replace(/\/+$/, '').split('/').pop() ?? '';
    } catch {
      last = '';
    }
  }
  if (!idPattern('pr').test(last))
    throw new WalletCliError(
      'input_invalid',
      `${trimmed.slice(0, 80)} is not a payment request id (pr_…) or payment link`,
    );
  return last;
}

/** Where each PIN comes from; `interactive` when it can be asked again after a wrong one. */
export interface PinSource {
  interactive: boolean;
  next: () => Promise<Secret<string>>;
}

/** Where the PIN comes from: the environment (automation) or a password prompt on the terminal. */
export function pinSource(io: WalletIo, options: { pinFromEnv?: string | undefined }): PinSource {
  const checkPin = (value: string | undefined) =>
    /^[0-9]{4,12}$/.test(value ?? '') ? undefined : 'a PIN is 4 to 12 digits';
  if (options.pinFromEnv !== undefined) {
    const value = io.env[options.pinFromEnv];
    if (value === undefined || value === '')
      throw new WalletCliError(
        'input_required',
        `environment variable ${options.pinFromEnv} (--pin-from-env) is not set`,
      );
    if (checkPin(value))
      throw new KessaiError('validation_failed', `the PIN in ${options.pinFromEnv} is not 4 to 12 digits`);
    return { interactive: false, next: async () => new Secret(value) };
  }
  if (!io.stdin.isTTY)
    throw new WalletCliError(
      'input_required',
      'no terminal to ask for the PIN — run in a terminal, or pass --pin-from-env VAR (automation)',
    );
  return {
    interactive: true,
    next: async () => new Secret(await ask(io, 'password', 'PIN', checkPin, 'pass --pin-from-env')),
  };
}

/** One prompt on the terminal; refuses when there is none, rather than hang on a pipe. */
export async function ask(
  io: WalletIo,
  kind: 'text' | 'password',
  message: string,
  validate: (value: string | undefined) => string | undefined,
  instead: string,
): Promise<string> {
  if (!io.stdin.isTTY) throw new WalletCliError('input_required', `no terminal to ask for "${message}" — ${instead}`);
  const common = { message, validate, input: io.stdin, output: io.stderr };
  const value = kind === 'password' ? await prompts.password(common) : await prompts.text(common);
  if (prompts.isCancel(value)) throw new WalletCliError('cancelled', 'cancelled at the prompt; nothing was sent');
  return value;
}

export function lines(stream: Writable): (line: string) => void {
  return (line) => stream.write(`${line}\n`);
}

export function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, ' ').trim();
}
