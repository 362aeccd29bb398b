/**
 * The removable storage (patent [0039]): what is written, with which permissions, and what is
 * refused — a missing folder, a second wallet, files others can read, a key that is not the
 * credential's.
 */
import { chmod, cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadWallet, openStorage, saveWallet, storageFiles, StorageError, StorageMissingError } from '../src/storage.ts';
import { fakeCaCertPem, fakeStoredWallet } from './fake-wallet.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'kessai-wallet-storage-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const posixOnly = process.platform === 'win32' ? it.skip : it;

describe('finding the storage', () => {
  it('throws StorageMissingError naming the folder when it does not exist', async () => {
    const missing = path.join(dir, 'not-inserted');
    const error = await openStorage(missing).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(StorageMissingError);
    expect(error).toMatchObject({ code: 'storage_missing', dir: missing });
    expect((error as Error).message).toContain(missing);
    await expect(loadWallet(missing)).rejects.toBeInstanceOf(StorageMissingError);
    await expect(saveWallet(missing, await fakeStoredWallet(), fakeCaCertPem)).rejects.toBeInstanceOf(StorageMissingError);
  });

  it('treats a path that is a file, not a folder, as missing storage', async () => {
    const file = path.join(dir, 'a-file');
    await writeFile(file, 'x');
    await expect(openStorage(file)).rejects.toBeInstanceOf(StorageMissingError);
  });

  it('says an empty folder holds no wallet', async () => {
    expect(await openStorage(dir)).toEqual({ dir, holdsWallet: false });
    await expect(loadWallet(dir)).rejects.toMatchObject({ code: 'storage_empty' });
  });
});

describe('saving and loading', () => {
  it('loads exactly the wallet it saved, with the CA certificate copied beside it', async () => {
    const stored = await fakeStoredWallet();
    await saveWallet(dir, stored, fakeCaCertPem);
    const loaded = await loadWallet(dir);
    expect(loaded).toEqual({ dir, wallet: stored, caCertPem: fakeCaCertPem });
  });

  it('keeps the private key out of wallet.json and leaves no temporary files', async () => {
    const stored = await fakeStoredWallet();
    await saveWallet(dir, stored, fakeCaCertPem);
    expect((await readdir(dir)).sort()).toEqual([storageFiles.caCert, storageFiles.deviceKey, storageFiles.wallet]);
    const walletJson = JSON.parse(await readFile(path.join(dir, storageFiles.wallet), 'utf8'));
    expect(walletJson).not.toHaveProperty('device_private_jwk');
    expect(JSON.stringify(walletJson)).not.toContain(String(stored.device_private_jwk.d));
    const keyJson = JSON.parse(await readFile(path.join(dir, storageFiles.deviceKey), 'utf8'));
    expect(keyJson).toEqual(stored.device_private_jwk);
  });

  it('moving the folder moves the wallet: a copy elsewhere loads the same wallet', async () => {
    const stick = path.join(dir, 'usb-stick');
    const moved = path.join(dir, 'other-terminal');
    await mkdir(stick);
    const stored = await fakeStoredWallet();
    await saveWallet(stick, stored, fakeCaCertPem);
    await cp(stick, moved, { recursive: true });
    await rm(stick, { recursive: true });
    expect(await loadWallet(moved)).toEqual({ dir: moved, wallet: stored, caCertPem: fakeCaCertPem });
  });

  posixOnly('writes every file with mode 0600', async () => {
    await saveWallet(dir, await fakeStoredWallet(), fakeCaCertPem);
    for (const name of Object.values(storageFiles)) {
      expect(((await stat(path.join(dir, name))).mode & 0o777).toString(8), name).toBe('600');
    }
  });

  posixOnly('refuses to load a file that others can read, and says which and how to fix it', async () => {
    await saveWallet(dir, await fakeStoredWallet(), fakeCaCertPem);
    for (const name of [storageFiles.wallet, storageFiles.deviceKey]) {
      const file = path.join(dir, name);
      await chmod(file, 0o644);
      const error = await loadWallet(dir).catch((err: unknown) => err);
      expect(error).toBeInstanceOf(StorageError);
      expect(error).toMatchObject({ code: 'storage_exposed' });
      expect((error as Error).message).toContain(file);
      expect((error as Error).message).toContain('0644');
      expect((error as Error).message).toContain('chmod 600');
      await chmod(file, 0o600);
    }
    await chmod(path.join(dir, storageFiles.deviceKey), 0o640);
    await expect(loadWallet(dir)).rejects.toMatchObject({ code: 'storage_exposed' });
  });
});

describe('enrolling onto storage that already holds a wallet', () => {
  it('is refused without force, and the wallet already there is left untouched', async () => {
    const first = await fakeStoredWallet();
    await saveWallet(dir, first, fakeCaCertPem);
    const error = await saveWallet(dir, await fakeStoredWallet(), fakeCaCertPem).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(StorageError);
    expect(error).toMatchObject({ code: 'storage_occupied' });
    expect((error as Error).message).toContain('--force');
    expect((await loadWallet(dir)).wallet).toEqual(first);
  });

  it('is refused when only a device key is there (a half-finished enrollment)', async () => {
    await writeFile(path.join(dir, storageFiles.deviceKey), '{}', { mode: 0o600 });
    await expect(saveWallet(dir, await fakeStoredWallet(), fakeCaCertPem)).rejects.toMatchObject({ code: 'storage_occupied' });
  });

  it('replaces the wallet with force', async () => {
    await saveWallet(dir, await fakeStoredWallet(), fakeCaCertPem);
    const second = await fakeStoredWallet();
    await saveWallet(dir, second, fakeCaCertPem, { force: true });
    expect((await loadWallet(dir)).wallet).toEqual(second);
  });
});

describe('a storage folder that does not hold one whole wallet', () => {
  it('refuses a device key that does not belong to the credential', async () => {
    const first = await fakeStoredWallet();
    await saveWallet(dir, first, fakeCaCertPem);
    const other = await fakeStoredWallet();
    await writeFile(path.join(dir, storageFiles.deviceKey), JSON.stringify(other.device_private_jwk), { mode: 0o600 });
    await expect(loadWallet(dir)).rejects.toMatchObject({ code: 'storage_corrupt', message: expect.stringContaining(storageFiles.deviceKey) });
  });

  it('refuses a missing file, naming it', async () => {
    await saveWallet(dir, await fakeStoredWallet(), fakeCaCertPem);
    await rm(path.join(dir, storageFiles.caCert));
    await expect(loadWallet(dir)).rejects.toMatchObject({ code: 'storage_corrupt', message: expect.stringContaining(storageFiles.caCert) });
  });

  it('refuses a wallet.json that is not a wallet', async () => {
    await saveWallet(dir, await fakeStoredWallet(), fakeCaCertPem);
    await writeFile(path.join(dir, storageFiles.wallet), '{"version":1}', { mode: 0o600 });
    await expect(loadWallet(dir)).rejects.toMatchObject({ code: 'storage_corrupt' });
    await writeFile(path.join(dir, storageFiles.wallet), 'not json', { mode: 0o600 });
    await expect(loadWallet(dir)).rejects.toMatchObject({ code: 'storage_corrupt' });
  });
});
