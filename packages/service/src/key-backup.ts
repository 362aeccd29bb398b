/**
 * Encrypted backups of a key folder (`kessai keys backup|restore`): every file of the folder in one
 * JSON document, encrypted under a passphrase as a compact JWE — `PBES2-HS512+A256KW` (PBKDF2-
 * HMAC-SHA-512, `backupPbes2Iterations` iterations and a random 16-byte salt, both in the protected
 * header, RFC 7518 §4.8) wrapping an `A256GCM` content key — so any JOSE library opens it with the
 * passphrase (packages/protocol/src/passphrase-jwe.ts). Restore writes files 0600 in folders 0700,
 * and replaces an existing folder only when asked (keeping it beside, renamed). No key's content
 * ever reaches a message.
 *
 * Limits: regular files only (a symbolic link is refused), at most `backupFilesMax` files and
 * `backupBytesMax` bytes; temporary files of an interrupted write (`*.tmp`) are left out; file modes
 * and times are not kept (keys are always 0600).
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import {
  KessaiError,
  limits,
  openWithPassphrase,
  passphraseJweAlg,
  passphraseJweEnc,
  passphraseJweHeader,
  sealWithPassphrase,
} from '@kessai/protocol';

export const keyBackupAlg = passphraseJweAlg;
export const keyBackupEnc = passphraseJweEnc;
/** The JWE's `cty`: what the decrypted content is. */
export const keyBackupContentType = 'kessai-key-backup+json';

const relativePath = z
  .string()
  .max(255)
  .refine((p) => p.split('/').every((segment) => /^[A-Za-z0-9._-]{1,100}$/.test(segment) && segment !== '.' && segment !== '..'), 'a path inside the folder');

const backupContent = z.strictObject({
  format: z.literal('kessai-key-backup'),
  version: z.literal(1),
  role: z.string().max(100),
  created: z.string().max(40),
  files: z.array(z.strictObject({ path: relativePath, content: z.base64() })).max(limits.backupFilesMax),
});

export type KeyBackupContent = z.infer<typeof backupContent>;

/** Reads every regular file under `dir` (relative paths with `/`), refusing links and anything past the limits. */
async function readFolder(dir: string): Promise<Array<{ path: string; bytes: Buffer }>> {
  const files: Array<{ path: string; bytes: Buffer }> = [];
  let total = 0;
  const walk = async (relative: string): Promise<void> => {
    for (const entry of (await readdir(path.join(dir, relative), { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      const name = relative === '' ? entry.name : `${relative}/${entry.name}`;
      if (entry.isDirectory()) {
        await walk(name);
        continue;
      }
      if (!entry.isFile()) throw new KessaiError('validation_failed', `${path.join(dir, name)} is not a regular file (links are not backed up)`);
      if (entry.name.endsWith('.tmp')) continue; // an interrupted atomic write (files.ts)
      if (files.length >= limits.backupFilesMax) throw new KessaiError('validation_failed', `${dir} holds more than backupFilesMax (${limits.backupFilesMax}) files`);
      const bytes = await readFile(path.join(dir, name));
      total += bytes.length;
      if (total > limits.backupBytesMax) throw new KessaiError('validation_failed', `${dir} holds more than backupBytesMax (${limits.backupBytesMax}) bytes`);
      files.push({ path: name, bytes });
    }
  };
  await walk('');
  return files;
}

function checkPassphrase(passphrase: string): void {
  if ([...passphrase].length < limits.backupPassphraseLengthMin) {
    throw new KessaiError('validation_failed', `the backup passphrase must be at least backupPassphraseLengthMin (${limits.backupPassphraseLengthMin}) characters`);
  }
}

/** The folder `dir` as an encrypted backup (a compact JWE), labelled with `role`. Refuses an empty folder and a short passphrase. */
export async function backupKeyFolder(dir: string, role: string, passphrase: string): Promise<{ jwe: string; files: number }> {
  checkPassphrase(passphrase);
  const folder = await lstat(dir).catch(() => undefined);
  if (!folder?.isDirectory()) throw new KessaiError('validation_failed', `${dir} is not a folder`);
  const files = await readFolder(dir);
  if (files.length === 0) throw new KessaiError('validation_failed', `${dir} holds no files`);
  const content: KeyBackupContent = {
    format: 'kessai-key-backup',
    version: 1,
    role,
    created: new Date().toISOString(),
    files: files.map((file) => ({ path: file.path, content: file.bytes.toString('base64') })),
  };
  const jwe = await sealWithPassphrase(new TextEncoder().encode(JSON.stringify(content)), passphrase, {
    cty: keyBackupContentType,
    iterations: limits.backupPbes2Iterations,
  });
  return { jwe, files: files.length };
}

/** Opens a backup: `backup_invalid` for anything that is not one, `backup_passphrase_wrong` when the passphrase does not decrypt it. */
export async function openKeyBackup(jwe: string, passphrase: string): Promise<KeyBackupContent> {
  const text = jwe.trim();
  if (text.length > limits.backupBytesMax * 2) throw new KessaiError('backup_invalid', 'the backup is larger than backupBytesMax allows');
  const header = passphraseJweHeader(text);
  if (!header) throw new KessaiError('backup_invalid', 'the file is not a compact JWE');
  if (header.alg !== keyBackupAlg || header.enc !== keyBackupEnc || header.cty !== keyBackupContentType) {
    throw new KessaiError('backup_invalid', `the file is not a key backup (${keyBackupAlg} / ${keyBackupEnc}, cty ${keyBackupContentType})`);
  }
  if (typeof header.p2c !== 'number' || header.p2c > limits.backupPbes2IterationsMax) {
    throw new KessaiError('backup_invalid', `the backup asks more than backupPbes2IterationsMax (${limits.backupPbes2IterationsMax}) iterations`);
  }
  const plaintext = await openWithPassphrase(text, passphrase, limits.backupPbes2IterationsMax);
  // AES key unwrap and GCM fail alike for a wrong passphrase and for an altered file.
  if (plaintext === 'wrong_passphrase') {
    const why = 'the passphrase does not open this backup (or the file was altered)';
    throw new KessaiError('backup_passphrase_wrong', why);
  }
  if (plaintext === 'damaged') throw new KessaiError('backup_invalid', 'the backup is damaged');
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(plaintext));
  } catch {
    throw new KessaiError('backup_invalid', 'the backup content is not JSON');
  }
  const parsed = backupContent.safeParse(json);
  if (!parsed.success) throw new KessaiError('backup_invalid', 'the backup content is not a key folder');
  const paths = parsed.data.files.map((file) => file.path);
  // Each path once, and none both a file and another's folder.
  if (new Set(paths).size !== paths.length || paths.some((p) => paths.some((other) => other.startsWith(`${p}/`)))) {
    throw new KessaiError('backup_invalid', 'the backup content is not a key folder');
  }
  return parsed.data;
}

/**
 * Writes the backup's files into `dir` (0600 files, 0700 folders). A folder that exists and is not
 * empty is refused (`keys_exist`) unless `force`: then it is renamed `<dir>.replaced-<time>` and
 * kept. The new folder is written beside it first and renamed into place, so a failure leaves the
 * old one as it was. Returns where the replaced folder went, if any.
 */
export async function restoreKeyFolder(content: KeyBackupContent, dir: string, options: { force?: boolean } = {}): Promise<{ files: number; replacedTo?: string }> {
  const target = path.resolve(dir);
  const existing = await lstat(target).catch(() => undefined);
  const occupied = existing !== undefined && (!existing.isDirectory() || (await readdir(target)).length > 0);
  if (occupied && !options.force) throw new KessaiError('keys_exist', `${target} already holds keys; pass --force to replace them (the old folder is kept beside it)`);
  await mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
  const staging = `${target}.restoring-${randomBytes(6).toString('hex')}`;
  try {
    await mkdir(staging, { mode: 0o700 });
    for (const file of content.files) {
      const destination = path.join(staging, ...file.path.split('/'));
      await mkdir(path.dirname(destination), { recursive: true, mode: 0o700 });
      await writeFile(destination, Buffer.from(file.content, 'base64'), { mode: 0o600, flag: 'wx' });
    }
    let replacedTo: string | undefined;
    if (existing !== undefined) {
      if (occupied) {
        replacedTo = `${target}.replaced-${new Date().toISOString().replace(/[:.]/g, '-')}`;
        await rename(target, replacedTo);
      } else {
        await rm(target, { recursive: true });
      }
    }
    await rename(staging, target);
    return { files: content.files.length, ...(replacedTo ? { replacedTo } : {}) };
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
}
