/**
 * Server keys as JWK files, generated on first start and read on every start after. A key file
 * is readable by its owner only. A key name (`cipher1`, `authorization-signing`, …) starts as one
 * JWK in `<name>.private.jwk`; once rotated, the file holds every generation of that name with
 * its status (current, previous, retired) and creation time. The ring holds each name's current
 * key first and its previous keys after it; a retired key keeps only its public half on disk and
 * is out of the ring, so nothing it sealed opens any more.
 */
import { randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { generateKeyEntry, keyEntryFromJwk, KeyRing, toPublicJwk, type JWK, type KeyEntry } from '@kessai/protocol';
import { readIfExists, writePrivateFile } from './files.ts';

export interface KeySpec {
  /** File stem, e.g. 'cipher1' → cipher1.private.jwk */
  name: string;
  use: 'sig' | 'enc';
  alg?: KeyEntry['alg'];
}

export type KeyStatus = 'current' | 'previous' | 'retired';

/** One generation of a named key, as stored. */
export interface StoredKey {
  status: KeyStatus;
  created: string;
  jwk: JWK;
}

const fileOf = (dir: string, name: string) => path.join(dir, `${name}.private.jwk`);

/** Reads a name's generations: a bare JWK (never rotated) or `{ generations: [...] }`. */
async function readGenerations(dir: string, spec: KeySpec): Promise<StoredKey[] | undefined> {
  const file = fileOf(dir, spec.name);
  const stored = await readIfExists(file);
  if (stored === undefined) return undefined;
  const parsed = JSON.parse(stored) as JWK | { generations: StoredKey[] };
  if ('generations' in parsed && Array.isArray(parsed.generations)) return parsed.generations;
  return [{ status: 'current', created: (await stat(file)).mtime.toISOString(), jwk: parsed as JWK }];
}

export async function writeGenerations(dir: string, name: string, generations: readonly StoredKey[]): Promise<void> {
  await writePrivateFile(fileOf(dir, name), `${JSON.stringify({ generations }, null, 2)}\n`);
}

/** Each name's generations, creating a first key for a name that has none. */
export async function loadOrCreateKeyFiles(dir: string, specs: readonly KeySpec[]): Promise<Map<string, StoredKey[]>> {
  const named = new Map<string, StoredKey[]>();
  for (const spec of specs) {
    const stored = await readGenerations(dir, spec);
    if (stored) {
      named.set(spec.name, stored);
      continue;
    }
    const { privateJwk } = await generateKeyEntry(spec.use, spec.alg);
    await writePrivateFile(fileOf(dir, spec.name), `${JSON.stringify(privateJwk, null, 2)}\n`);
    named.set(spec.name, [{ status: 'current', created: new Date().toISOString(), jwk: privateJwk }]);
  }
  return named;
}

/** The ring for these generations: per name, current first, then previous (newest first); retired kids remembered. */
export async function ringEntries(specs: readonly KeySpec[], named: ReadonlyMap<string, readonly StoredKey[]>): Promise<{ entries: KeyEntry[]; retired: string[] }> {
  const entries: KeyEntry[] = [];
  const retired: string[] = [];
  for (const spec of specs) {
    const generations = named.get(spec.name) ?? [];
    const current = generations.filter((g) => g.status === 'current');
    if (current.length !== 1) throw new Error(`key ${spec.name} must have exactly one current generation, has ${current.length}`);
    const previous = generations.filter((g) => g.status === 'previous').sort((a, b) => b.created.localeCompare(a.created));
    for (const generation of [...current, ...previous]) entries.push(await keyEntryFromJwk(generation.jwk));
    for (const generation of generations) if (generation.status === 'retired' && typeof generation.jwk.kid === 'string') retired.push(generation.jwk.kid);
  }
  return { entries, retired };
}

/** A retired generation keeps its public half only: it can be listed, never used to open. */
export function retiredCopy(generation: StoredKey): StoredKey {
  return { ...generation, status: 'retired', jwk: toPublicJwk(generation.jwk) };
}

const stores = new WeakMap<KeyRing, { dir: string; specs: readonly KeySpec[] }>();

/** Where a ring made by loadOrCreateKeyRing lives on disk, for rotation (key-admin.ts). */
export function keyFilesOf(ring: KeyRing): { dir: string; specs: readonly KeySpec[] } | undefined {
  return stores.get(ring);
}

export async function loadOrCreateKeyRing(dir: string, specs: readonly KeySpec[]): Promise<KeyRing> {
  const { entries, retired } = await ringEntries(specs, await loadOrCreateKeyFiles(dir, specs));
  const ring = new KeyRing(entries, retired);
  stores.set(ring, { dir, specs });
  return ring;
}

/**
 * A symmetric key (JWK `kty: oct`, 256 bits) in `<name>.private.jwk`, created on first start like
 * the others. To rotate, add newer keys: the file may hold `{ generations: [...] }` and the first
 * `current` one is used for new data, the rest still open what they sealed.
 */
export async function loadOrCreateSecretKeys(dir: string, name: string): Promise<Array<{ kid: string; key: Buffer }>> {
  const file = fileOf(dir, name);
  let stored = await readIfExists(file);
  if (stored === undefined) {
    const key = randomBytes(32);
    const jwk = { kty: 'oct', kid: `${name}-${randomBytes(6).toString('hex')}`, k: key.toString('base64url') };
    await writePrivateFile(file, `${JSON.stringify(jwk, null, 2)}\n`);
    stored = JSON.stringify(jwk);
  }
  const parsed = JSON.parse(stored) as JWK | { generations: StoredKey[] };
  const generations = 'generations' in parsed && Array.isArray(parsed.generations) ? parsed.generations.filter((g) => g.status !== 'retired').sort((a, b) => Number(b.status === 'current') - Number(a.status === 'current')).map((g) => g.jwk) : [parsed as JWK];
  return generations.map((jwk) => {
    if (jwk.kty !== 'oct' || typeof jwk.k !== 'string' || typeof jwk.kid !== 'string') throw new Error(`key ${name} is not a symmetric key with a kid`);
    const key = Buffer.from(jwk.k, 'base64url');
    if (key.length !== 32) throw new Error(`key ${name} must be 256 bits`);
    return { kid: jwk.kid, key };
  });
}
