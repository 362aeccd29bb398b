/**
 * `kessai keys backup|restore`: a key folder encrypted under a passphrase as a standard JWE
 * (PBES2-HS512+A256KW / A256GCM), restored byte for byte with owner-only modes; a wrong passphrase,
 * a file that is not a backup and a folder that already holds keys are refused with their codes,
 * writing nothing. The bank's whole backup and restore, database included, is in
 * test/bank-backup-restore.test.ts.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compactDecrypt, decodeProtectedHeader } from 'jose';
import { limits } from '@kessai/protocol';
import { loadOrCreateKeyRing, loadOrCreateSecretKeys } from '@kessai/service';
import { backupKeys, restoreKeys } from '@kessai/cli/keys-commands';
import { runKessaiProcess } from './support/cli.ts';
import { codeOf } from './support/errors.ts';

const passphrase = 'correct horse battery staple 7';

describe('key folder backups', () => {
  let dir: string;
  let keysDir: string;
  let passphraseFile: string;
  let backup: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'kessai-key-backup-'));
    keysDir = path.join(dir, 'settlement-sakura-bank', 'keys');
    // A bank's key folder as the server makes it: signing and cipher 2 key files, the card lookup, card data and PIN verification keys.
    await loadOrCreateKeyRing(keysDir, [
      { name: 'cipher2', use: 'enc' },
      { name: 'authorization-signing', use: 'sig' },
    ]);
    for (const name of ['card-lookup', 'card-data', 'pin-verification']) await loadOrCreateSecretKeys(keysDir, name);
    passphraseFile = path.join(dir, 'passphrase');
    await writeFile(passphraseFile, `${passphrase}\n`, { mode: 0o600 });
    backup = path.join(dir, 'sakura-keys.jwe');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const filesOf = async (folder: string) => Object.fromEntries(await Promise.all((await readdir(folder)).sort().map(async (name) => [name, await readFile(path.join(folder, name), 'utf8')] as const)));

  it('writes a 0600 compact JWE, PBES2-HS512+A256KW / A256GCM with its iterations and salt in the header, that any JOSE library opens with the passphrase', async () => {
    const printed = await backupKeys({ role: 'settlement-sakura-bank', keysDir, out: backup, passphraseFile });
    expect(printed).toMatch(/backed up: 5 file\(s\)/);
    expect((await stat(backup)).mode & 0o777).toBe(0o600);
    const jwe = (await readFile(backup, 'utf8')).trim();
    const header = decodeProtectedHeader(jwe);
    expect(header).toMatchObject({ alg: 'PBES2-HS512+A256KW', enc: 'A256GCM', cty: 'kessai-key-backup+json', p2c: limits.backupPbes2Iterations });
    expect(typeof header.p2s).toBe('string');
    // No key material in clear.
    const lookup = JSON.parse(await readFile(path.join(keysDir, 'card-lookup.private.jwk'), 'utf8')) as { k: string };
    expect(jwe).not.toContain(lookup.k);
    // Standard construction: jose opens it with nothing but the passphrase.
    const { plaintext } = await compactDecrypt(jwe, new TextEncoder().encode(passphrase), { keyManagementAlgorithms: ['PBES2-HS512+A256KW'], maxPBES2Count: limits.backupPbes2IterationsMax });
    const content = JSON.parse(new TextDecoder().decode(plaintext)) as { role: string; files: Array<{ path: string }> };
    expect(content.role).toBe('settlement-sakura-bank');
    expect(content.files.map((f) => f.path).sort()).toEqual(['authorization-signing.private.jwk', 'card-data.private.jwk', 'card-lookup.private.jwk', 'cipher2.private.jwk', 'pin-verification.private.jwk']);
  });

  it('refuses to overwrite a backup file, a passphrase shorter than backupPassphraseLengthMin, and a missing passphrase file', async () => {
    expect(await codeOf(backupKeys({ role: 'settlement-sakura-bank', keysDir, out: backup, passphraseFile }))).toBe('validation_failed');
    const short = path.join(dir, 'short');
    await writeFile(short, 'x'.repeat(limits.backupPassphraseLengthMin - 1), { mode: 0o600 });
    await expect(backupKeys({ role: 'settlement-sakura-bank', keysDir, out: path.join(dir, 'short.jwe'), passphraseFile: short })).rejects.toThrow(/at least backupPassphraseLengthMin \(16\)/);
    expect(await codeOf(backupKeys({ role: 'settlement-sakura-bank', keysDir, out: path.join(dir, 'none.jwe') }))).toBe('validation_failed');
    await expect(stat(path.join(dir, 'short.jwe'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('restores the folder byte for byte, files 0600 in a 0700 folder', async () => {
    const target = path.join(dir, 'restored', 'keys');
    const printed = await restoreKeys({ in: backup, keysDir: target, passphraseFile });
    expect(printed).toMatch(/restored: 5 file\(s\) of settlement-sakura-bank/);
    expect(await filesOf(target)).toEqual(await filesOf(keysDir));
    expect((await stat(target)).mode & 0o777).toBe(0o700);
    for (const name of await readdir(target)) expect((await stat(path.join(target, name))).mode & 0o777).toBe(0o600);
  });

  it('refuses a wrong passphrase with backup_passphrase_wrong, writing nothing', async () => {
    const wrong = path.join(dir, 'wrong');
    await writeFile(wrong, 'not the passphrase at all', { mode: 0o600 });
    const target = path.join(dir, 'wrong-target');
    expect(await codeOf(restoreKeys({ in: backup, keysDir: target, passphraseFile: wrong }))).toBe('backup_passphrase_wrong');
    await expect(stat(target)).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await readdir(dir)).filter((name) => name.includes('restoring'))).toEqual([]);
  });

  it('refuses a file that is not a backup, or one asking more than backupPbes2IterationsMax iterations, with backup_invalid', async () => {
    const garbage = path.join(dir, 'garbage.jwe');
    await writeFile(garbage, 'not a JWE');
    expect(await codeOf(restoreKeys({ in: garbage, keysDir: path.join(dir, 'g'), passphraseFile }))).toBe('backup_invalid');
    const [, ...rest] = (await readFile(backup, 'utf8')).trim().split('.');
    const header = { ...decodeProtectedHeader((await readFile(backup, 'utf8')).trim()), p2c: limits.backupPbes2IterationsMax + 1 };
    const greedy = path.join(dir, 'greedy.jwe');
    await writeFile(greedy, [Buffer.from(JSON.stringify(header)).toString('base64url'), ...rest].join('.'));
    const started = Date.now();
    expect(await codeOf(restoreKeys({ in: greedy, keysDir: path.join(dir, 'g'), passphraseFile }))).toBe('backup_invalid');
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('refuses a folder that holds keys with keys_exist; --force replaces it and keeps the old one beside it', async () => {
    const target = path.join(dir, 'occupied');
    await mkdir(target, { mode: 0o700 });
    await writeFile(path.join(target, 'cipher2.private.jwk'), '{"other":"key"}', { mode: 0o600 });
    expect(await codeOf(restoreKeys({ in: backup, keysDir: target, passphraseFile }))).toBe('keys_exist');
    expect(await readFile(path.join(target, 'cipher2.private.jwk'), 'utf8')).toBe('{"other":"key"}');
    const printed = await restoreKeys({ in: backup, keysDir: target, passphraseFile, force: true });
    expect(await filesOf(target)).toEqual(await filesOf(keysDir));
    const kept = /the keys it replaced are in (.+)\n/.exec(printed)?.[1];
    expect(kept).toBeDefined();
    expect(await readFile(path.join(kept!, 'cipher2.private.jwk'), 'utf8')).toBe('{"other":"key"}');
  });

  it('the kessai command prints a wrong passphrase as one line with its code and exits 1, never a stack', async () => {
    const wrong = path.join(dir, 'wrong-cli');
    await writeFile(wrong, 'still not the passphrase', { mode: 0o600 });
    const refused = await runKessaiProcess(['keys', 'restore', '--in', backup, '--keys-dir', path.join(dir, 'cli-target')], { KESSAI_BACKUP_PASSPHRASE_FILE: wrong });
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim()).toBe('kessai keys: the passphrase does not open this backup (or the file was altered) (backup_passphrase_wrong)');
    const restored = await runKessaiProcess(['keys', 'restore', '--in', backup, '--keys-dir', path.join(dir, 'cli-target')], { KESSAI_BACKUP_PASSPHRASE_FILE: passphraseFile });
    expect(restored.code, restored.stderr).toBe(0);
    expect(await filesOf(path.join(dir, 'cli-target'))).toEqual(await filesOf(keysDir));
  });
});
