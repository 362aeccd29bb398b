/**
 * Server keys as JWK files, generated on first start and read on every start after. A key file
 * is readable by its owner only. The first key of each use in the ring is the current one;
 * rotation (issue: security) adds keys in front and keeps the old ones for opening.
 */
import path from 'node:path';
import { generateKeyEntry, keyEntryFromJwk, KeyRing, type JWK, type KeyEntry } from '@kessai/protocol';
import { readIfExists, writePrivateFile } from './files.ts';

export interface KeySpec {
  /** File stem, e.g. 'cipher1' → cipher1.private.jwk */
  name: string;
  use: 'sig' | 'enc';
  alg?: KeyEntry['alg'];
}

export async function loadOrCreateKeyRing(dir: string, specs: readonly KeySpec[]): Promise<KeyRing> {
  const entries: KeyEntry[] = [];
  for (const spec of specs) {
    const file = path.join(dir, `${spec.name}.private.jwk`);
    const stored = await readIfExists(file);
    if (stored) {
      entries.push(await keyEntryFromJwk(JSON.parse(stored) as JWK));
      continue;
    }
    const { entry, privateJwk } = await generateKeyEntry(spec.use, spec.alg);
    await writePrivateFile(file, `${JSON.stringify(privateJwk, null, 2)}\n`);
    entries.push(entry);
  }
  return new KeyRing(entries);
}
