/**
 * The browser wallet's storage, in IndexedDB: one record holding the enrollment (credential id,
 * sealed credential, issuer, the authentication server's key URL), the non-extractable device CryptoKey, the wrapped key for
 * export, and the payment history. Nothing personal is kept: the card number, name and expiry are
 * only inside the sealed credential, which this browser cannot open; the PIN is never stored.
 */
import { limits } from '../../../packages/protocol/src/limits.ts';
import type { DevicePublicJwk, WrappedDeviceKey } from './keys.ts';

/** The issuer as the signed directory names it; its keys are taken from the directory at each use. */
export interface IssuerSummary {
  id: string;
  name: string;
  conversion_mode: 'reseal' | 'pass_through';
}

export interface HistoryEntry {
  rid: string;
  order_id: string;
  merchant: string;
  currency: string;
  amount_minor: string;
  items: number;
  /** approved, declined, cancelled (the payer declined here), … as the authentication server answered. */
  status: string;
  decline_code: string | null;
  at: string;
}

/** The enrollment as the authentication server answered it: what the record and an export file both hold. */
export interface Enrollment {
  auth_base_url: string;
  credential_id: string;
  sealed_credential: string;
  issuer: IssuerSummary;
  auth_jwks_uri: string;
  device_public_jwk: DevicePublicJwk;
  wrapped_device_key: WrappedDeviceKey;
}

export interface WalletRecord extends Enrollment {
  version: 2;
  /** Non-extractable; IndexedDB stores the CryptoKey object itself. */
  device_key: CryptoKey;
  created_at: string;
  imported: boolean;
  history: HistoryEntry[];
}

/** What an export file holds: the record without the browser-bound key and without the history. */
export interface WalletFile extends Enrollment {
  format: 'kessai-wallet';
  version: 2;
  exported_at: string;
}

export const historyMax = limits.walletHistoryMax;
const dbName = 'kessai-wallet';
const storeName = 'wallet';
const recordKey = 'current';

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(dbName, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(storeName);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error('IndexedDB cannot be opened'));
  });
}

async function run<T>(mode: IDBTransactionMode, work: (store: IDBObjectStore) => IDBRequest): Promise<T> {
  const db = await open();
  try {
    return await new Promise<T>((resolve, reject) => {
      const tx = db.transaction(storeName, mode);
      const request = work(tx.objectStore(storeName));
      tx.oncomplete = () => resolve(request.result as T);
      tx.onerror = () => reject(tx.error ?? new Error('IndexedDB transaction failed'));
      tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
    });
  } finally {
    db.close();
  }
}

export async function loadWallet(): Promise<WalletRecord | undefined> {
  const record = await run<WalletRecord | undefined>('readonly', (store) => store.get(recordKey));
  // A record of an earlier version has no place in this protocol: the payer enrolls again.
  return record?.version === 2 ? record : undefined;
}

export async function saveWallet(record: WalletRecord): Promise<void> {
  await run('readwrite', (store) => store.put(record, recordKey));
}

export async function removeWallet(): Promise<void> {
  await run('readwrite', (store) => store.delete(recordKey));
}

export async function addHistory(entry: HistoryEntry): Promise<WalletRecord | undefined> {
  const record = await loadWallet();
  if (!record) return undefined;
  const history = [entry, ...record.history.filter((old) => old.rid !== entry.rid)].slice(0, historyMax);
  const updated = { ...record, history };
  await saveWallet(updated);
  return updated;
}

export function toFile(record: WalletRecord): WalletFile {
  return {
    format: 'kessai-wallet',
    version: 2,
    auth_base_url: record.auth_base_url,
    credential_id: record.credential_id,
    sealed_credential: record.sealed_credential,
    issuer: record.issuer,
    auth_jwks_uri: record.auth_jwks_uri,
    device_public_jwk: record.device_public_jwk,
    wrapped_device_key: record.wrapped_device_key,
    exported_at: new Date().toISOString(),
  };
}

/** Reads an export file; throws a message for the payer when it is not one. */
export function parseFile(text: string): WalletFile {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error('this file is not a Kessai wallet file (not JSON)');
  }
  const file = value as Partial<WalletFile>;
  if (file?.format !== 'kessai-wallet') throw new Error('this file is not a Kessai wallet file');
  if (file.version !== 2) throw new Error('this wallet file is from an earlier version of Kessai: enroll the card again');
  for (const key of ['auth_base_url', 'credential_id', 'sealed_credential', 'auth_jwks_uri'] as const) {
    if (typeof file[key] !== 'string') throw new Error(`the wallet file lacks ${key}`);
  }
  if (!file.issuer || typeof file.issuer.id !== 'string' || !file.wrapped_device_key || !file.device_public_jwk) throw new Error('the wallet file is incomplete');
  if (!/^cred_[0-9a-hjkmnp-tv-z]{26}$/.test(file.credential_id as string)) throw new Error('the wallet file has no valid credential id');
  return file as WalletFile;
}
