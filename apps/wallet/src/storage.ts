/**
 * The terminal's removable storage (patent [0039]): one folder holding everything a wallet needs,
 * so moving the folder moves the wallet. `wallet.json` (the credential, without the key),
 * `device-key.jwk` (the private device key) and `ca.cert.pem`, each written atomically, mode 0600.
 * Loading refuses files that others can read and a key that does not belong to the credential.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { readHeader, thumbprint, toPublicJwk, type JWK, limits } from '@kessai/protocol';
import { storedWallet, type StoredWallet } from '@kessai/sdk';

export const storageFiles = {
  wallet: 'wallet.json',
  deviceKey: 'device-key.jwk',
  caCert: 'ca.cert.pem',
} as const;

/** The largest file the wallet reads from the storage (a sealed credential is at most 16 KiB). */
export const storageFileBytesMax = limits.walletStorageFileBytesMax;
/** Group and other get nothing: the device key and the sealed credential are the payer's alone. */
const fileMode = 0o600;

export type StorageErrorCode = 'storage_missing' | 'storage_occupied' | 'storage_empty' | 'storage_exposed' | 'storage_corrupt' | 'storage_unreadable';

/** An expected problem with the storage folder; the message names the folder or file, never its contents. */
export class StorageError extends Error {
  readonly code: StorageErrorCode;
  readonly dir: string;
  constructor(code: StorageErrorCode, dir: string, message: string) {
    super(message);
    this.name = 'StorageError';
    this.code = code;
    this.dir = dir;
  }
}

/** The folder is not there: the removable storage is not inserted, or the path is wrong. */
export class StorageMissingError extends StorageError {
  constructor(dir: string) {
    super('storage_missing', dir, `storage folder ${dir} not found — insert the removable storage or pass --storage`);
    this.name = 'StorageMissingError';
  }
}

/** wallet.json: the stored wallet without its private key, which lives in device-key.jwk. */
export const walletFile = storedWallet.omit({ device_private_jwk: true });
export type WalletFile = z.infer<typeof walletFile>;

const devicePrivateJwk = z.looseObject({
  kty: z.literal('EC'),
  crv: z.literal('P-256'),
  x: z.string().max(64),
  y: z.string().max(64),
  d: z.string().max(64),
});

export interface Storage {
  /** Absolute path of the folder. */
  dir: string;
  /** True when the folder already holds a wallet (or part of one). */
  holdsWallet: boolean;
}

export interface LoadedWallet {
  dir: string;
  wallet: StoredWallet;
  caCertPem: string;
}

/** Finds the storage folder; throws StorageMissingError when it is not there. */
export async function openStorage(dir: string): Promise<Storage> {
  const absolute = path.resolve(dir);
  const info = await stat(absolute).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined;
    throw unreadable(absolute, absolute, err);
  });
  if (!info?.isDirectory()) throw new StorageMissingError(absolute);
  const present = await Promise.all([storageFiles.wallet, storageFiles.deviceKey].map((name) => exists(path.join(absolute, name))));
  return { dir: absolute, holdsWallet: present.some(Boolean) };
}

/** Reads the wallet from the storage, checking permissions and that the key belongs to the credential. */
export async function loadWallet(dir: string): Promise<LoadedWallet> {
  const storage = await openStorage(dir);
  if (!storage.holdsWallet) throw new StorageError('storage_empty', storage.dir, `storage folder ${storage.dir} holds no wallet — run \`kessai wallet enroll --storage ${storage.dir}\` first`);
  const file = parseJsonFile(storage.dir, storageFiles.wallet, await readPrivate(storage.dir, storageFiles.wallet), walletFile);
  const key = parseJsonFile(storage.dir, storageFiles.deviceKey, await readPrivate(storage.dir, storageFiles.deviceKey), devicePrivateJwk);
  const caCertPem = await readPrivate(storage.dir, storageFiles.caCert);
  if (!isPemCertificate(caCertPem)) throw corrupt(storage.dir, `${storageFiles.caCert} is not a PEM certificate`);
  await assertKeyBelongsToCredential(storage.dir, file, key as JWK);
  return { dir: storage.dir, wallet: { ...file, device_private_jwk: key }, caCertPem };
}

/**
 * Writes a freshly enrolled wallet. Refuses a folder that already holds one unless `force`.
 * wallet.json is written last, so a folder with a complete wallet.json has its key beside it.
 */
export async function saveWallet(dir: string, stored: StoredWallet, caCertPem: string, options: { force?: boolean } = {}): Promise<Storage> {
  // step 305: the terminal stores the sealed credential on its storage
  const storage = await openStorage(dir);
  assertMayEnroll(storage, options.force ?? false);
  if (!isPemCertificate(caCertPem)) throw new TypeError('caCertPem must be a PEM certificate');
  const { device_private_jwk: key, ...file } = stored;
  await writeAtomic(storage.dir, storageFiles.caCert, caCertPem);
  await writeAtomic(storage.dir, storageFiles.deviceKey, `${JSON.stringify(key, null, 2)}\n`);
  await writeAtomic(storage.dir, storageFiles.wallet, `${JSON.stringify(walletFile.parse(file), null, 2)}\n`);
  return { dir: storage.dir, holdsWallet: true };
}

/**
 * Key rotation: the authentication server handed back the credential re-sealed under its current
 * key. Replaces it in wallet.json (atomically) if it is bound to the same credential and device key.
 */
export async function replaceSealedCredential(dir: string, sealed: string): Promise<void> {
  const loaded = await loadWallet(dir);
  const { device_private_jwk: key, ...file } = loaded.wallet;
  const next = { ...file, sealed_credential: sealed };
  await assertKeyBelongsToCredential(loaded.dir, next, key as JWK);
  await writeAtomic(loaded.dir, storageFiles.wallet, `${JSON.stringify(walletFile.parse(next), null, 2)}\n`);
}

/** Checked before enrollment starts, so the payer is not asked for a card only to be refused. */
export function assertMayEnroll(storage: Storage, force: boolean): void {
  if (storage.holdsWallet && !force) {
    throw new StorageError('storage_occupied', storage.dir, `storage folder ${storage.dir} already holds a wallet — pass --force to replace it (the old credential stays enrolled until revoked)`);
  }
}

export function isPemCertificate(text: string): boolean {
  return /^-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----\s*$/.test(text.trimStart());
}

async function assertKeyBelongsToCredential(dir: string, file: WalletFile, key: JWK): Promise<void> {
  let header: Record<string, unknown>;
  try {
    header = readHeader(file.sealed_credential, 'credential_invalid');
  } catch {
    throw corrupt(dir, `${storageFiles.wallet} holds a malformed sealed credential`);
  }
  if (header.cred !== file.credential_id) throw corrupt(dir, `the sealed credential in ${storageFiles.wallet} belongs to another credential id`);
  if (header.dkt !== (await thumbprint(toPublicJwk(key)))) {
    throw corrupt(dir, `${storageFiles.deviceKey} does not belong to the credential in ${storageFiles.wallet} — re-enroll with --force`);
  }
}

/** Reads a file that must be private to its owner (POSIX modes; Windows has no such bits). */
async function readPrivate(dir: string, name: string): Promise<string> {
  const file = path.join(dir, name);
  const info = await stat(file).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw corrupt(dir, `${name} is missing from the storage folder ${dir} — re-enroll with --force`);
    throw unreadable(dir, file, err);
  });
  if (!info.isFile()) throw corrupt(dir, `${file} is not a file`);
  const mode = info.mode & 0o777;
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    throw new StorageError('storage_exposed', dir, `${file} is readable by others (mode ${mode.toString(8).padStart(4, '0')}) — run \`chmod 600 ${file}\` (or mount the storage with fmask=0177)`);
  }
  if (info.size > storageFileBytesMax) throw corrupt(dir, `${name} is larger than ${storageFileBytesMax} bytes`);
  return readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw unreadable(dir, file, err);
  });
}

function parseJsonFile<T>(dir: string, name: string, text: string, schema: z.ZodType<T>): T {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw corrupt(dir, `${name} is not JSON`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw corrupt(dir, `${name} is not a Kessai wallet file (${parsed.error.issues.length} problems)`);
  return parsed.data;
}

/** Temporary file in the same folder, flushed, then renamed over the target: never a half-written file. */
async function writeAtomic(dir: string, name: string, content: string): Promise<void> {
  const target = path.join(dir, name);
  const temporary = path.join(dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(temporary, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, fileMode);
    try {
      await handle.writeFile(content, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await chmod(temporary, fileMode); // the umask may have taken bits away; make it exactly 0600
    await rename(temporary, target);
  } catch (err) {
    await unlink(temporary).catch(() => undefined);
    throw unreadable(dir, target, err as NodeJS.ErrnoException);
  }
  await syncDirectory(dir);
}

async function syncDirectory(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  const handle = await open(dir, constants.O_RDONLY).catch(() => undefined);
  await handle?.sync().catch(() => undefined); // some removable file systems cannot sync a folder
  await handle?.close();
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return false;
      throw unreadable(path.dirname(file), file, err);
    },
  );
}

function corrupt(dir: string, message: string): StorageError {
  return new StorageError('storage_corrupt', dir, message);
}

function unreadable(dir: string, file: string, err: NodeJS.ErrnoException): StorageError {
  if (err instanceof StorageError) return err;
  return new StorageError('storage_unreadable', dir, `cannot use ${file} (${err.code ?? err.message})`);
}
