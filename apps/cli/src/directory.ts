/**
 * The development directory (DESIGN.md §1, "directory"): in production the scheme operator signs
 * the issuer list; here `kessai start` plays that role. It keeps the directory's signing key in
 * `<data>/directory/keys/`, writes its public key to `<data>/directory-key.jwk` (what a CLI wallet
 * is installed with, `--directory-key`; the browser wallet's host serves it from its own origin),
 * and signs the list from each issuer's current public keys — again whenever an issuer's keys
 * change (rotation), so the authentication server always relays a directory with current keys.
 */
import path from 'node:path';
import { z } from 'zod';
import { HttpClient } from '@kessai/sdk';
import { signDirectory, type DirectoryIssuer, type JWK, type KeyRing } from '@kessai/protocol';
import { loadOrCreateKeyRing, writePrivateFile, readIfExists } from '@kessai/service';
import { directoryKeyFile } from '@kessai/wallet';
import type { DemoIssuer } from './demo-data.ts';

export { directoryKeyFile };


export interface DirectoryKey {
  ring: KeyRing;
  /** The public key wallets pin. */
  publicJwk: JWK;
  /** Where it was written. */
  file: string;
}

/** The directory's signing key (created on first start) and its public half as a file beside the data folder's other trust anchors. */
export async function loadOrCreateDirectoryKey(dataDir: string): Promise<DirectoryKey> {
  const ring = await loadOrCreateKeyRing(path.join(dataDir, 'directory', 'keys'), [{ name: 'directory-signing', use: 'sig' }]);
  const publicJwk = ring.current('sig').publicJwk;
  const file = path.join(dataDir, directoryKeyFile);
  const text = `${JSON.stringify(publicJwk, null, 2)}\n`;
  if ((await readIfExists(file)) !== text) await writePrivateFile(file, text);
  return { ring, publicJwk, file };
}

/** An issuer as the directory lists it: its description and its current public keys. */
export function directoryEntry(issuer: Pick<DemoIssuer, 'id' | 'name' | 'conversionMode' | 'cipher2' | 'cardPrefixes'>, keys: readonly JWK[]): DirectoryIssuer {
  return { id: issuer.id, name: issuer.name, card_ranges: [...issuer.cardPrefixes], conversion_mode: issuer.conversionMode, cipher2_alg: issuer.cipher2, keys: keys as DirectoryIssuer['keys'] };
}

/** Signs the directory of `issuers` again whenever the set of their keys changes. */
export class DirectorySigner {
  readonly #key: DirectoryKey;
  readonly #issuers: ReadonlyArray<{ issuer: DemoIssuer; keys: KeyRing }>;
  #signed: { fingerprint: string; jws: Promise<string> } | undefined;

  constructor(key: DirectoryKey, issuers: ReadonlyArray<{ issuer: DemoIssuer; keys: KeyRing }>) {
    this.#key = key;
    this.#issuers = issuers;
  }

  current(): Promise<string> {
    const entries = this.#issuers.map(({ issuer, keys }) => directoryEntry(issuer, keys.jwks().keys));
    const fingerprint = JSON.stringify(entries);
    if (this.#signed?.fingerprint !== fingerprint) {
      const key = this.#key.ring.current('sig');
      if (!key.privateKey) throw new Error('the directory signing key has no private part');
      this.#signed = { fingerprint, jws: signDirectory(entries, key.privateKey, key.kid, new Date()) };
    }
    return this.#signed.jws;
  }
}

/** Where publishDirectoryFile writes the directory (an authentication server started with `kessai serve auth` reads KESSAI_DIRECTORY_FILE). */
export function directoryFileOf(dataDir: string): string {
  return path.join(dataDir, 'directory', 'directory.jws');
}

/**
 * Signs the directory of issuers running as their own processes, from the public keys each one
 * publishes (`GET /.well-known/jwks.json`, read over TLS with `caCertPem`), and writes it where
 * their authentication server reads it. Returns the directory key wallets pin.
 */
export async function publishDirectoryFile(dataDir: string, caCertPem: string, issuers: ReadonlyArray<{ issuer: DemoIssuer; url: string }>): Promise<DirectoryKey> {
  const key = await loadOrCreateDirectoryKey(dataDir);
  const http = new HttpClient({ caCertPem });
  try {
    const entries = [];
    for (const { issuer, url } of issuers) {
      const set = await http.call('GET', `${url}/.well-known/jwks.json`, { schema: publishedKeys, unavailable: 'issuer_unavailable' });
      entries.push(directoryEntry(issuer, set.keys as JWK[]));
    }
    const signing = key.ring.current('sig');
    if (!signing.privateKey) throw new Error('the directory signing key has no private part');
    await writePrivateFile(directoryFileOf(dataDir), `${await signDirectory(entries, signing.privateKey, signing.kid, new Date())}\n`);
    return key;
  } finally {
    await http.close();
  }
}

const publishedKeys = z.object({ keys: z.array(z.record(z.string(), z.unknown())).max(20) });
