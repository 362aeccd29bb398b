/**
 * Key rotation for a running server (operator, `/admin/v1/keys…`): list every generation of each
 * named key, rotate a name (a new current key; the old one becomes previous and keeps opening and
 * verifying), retire a previous key (it stops at once; the current key cannot be retired). Each
 * change is written to the key files first, then the server's ring is swapped in one step; other
 * processes sharing the key folder read it within keyReloadIntervalMs.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { generateKeyEntry, KessaiError, keyInfo, limits, keyList, keyRetireRequest, keyRotateRequest, type KeyInfo, type KeyRing } from '@kessai/protocol';
import { keyFilesOf, loadOrCreateKeyFiles, retiredCopy, ringEntries, writeGenerations, type KeySpec, type StoredKey } from './keys.ts';
import { requireOperator } from './operator.ts';
import { recordDomainEvent } from './audit.ts';

/** One change at a time per key folder: two rotations never race on the same file. */
const queues = new Map<string, Promise<unknown>>();
function serially<T>(dir: string, work: () => Promise<T>): Promise<T> {
  const next = (queues.get(dir) ?? Promise.resolve()).then(work, work);
  queues.set(dir, next.catch(() => undefined));
  return next;
}

function filesOf(ring: KeyRing): { dir: string; specs: readonly KeySpec[] } {
  const files = keyFilesOf(ring);
  if (!files) throw new TypeError('this key ring was not loaded from key files');
  return files;
}

function infoOf(name: string, use: 'sig' | 'enc', generation: StoredKey): KeyInfo {
  return { key: name, kid: String(generation.jwk.kid), use, alg: String(generation.jwk.alg), created: generation.created, status: generation.status };
}

function specOf(specs: readonly KeySpec[], name: string): KeySpec {
  const spec = specs.find((s) => s.name === name);
  if (!spec) throw new KessaiError('key_not_found', `no key named ${name.slice(0, 64)}`);
  return spec;
}

export async function listKeys(ring: KeyRing): Promise<KeyInfo[]> {
  const { dir, specs } = filesOf(ring);
  const named = await loadOrCreateKeyFiles(dir, specs);
  return specs.flatMap((spec) => (named.get(spec.name) ?? []).map((g) => infoOf(spec.name, spec.use, g)));
}

async function change(ring: KeyRing, name: string, edit: (generations: StoredKey[], spec: KeySpec) => Promise<StoredKey>): Promise<KeyInfo> {
  const { dir, specs } = filesOf(ring);
  const spec = specOf(specs, name);
  return serially(dir, async () => {
    const named = await loadOrCreateKeyFiles(dir, specs);
    const generations = [...(named.get(name) ?? [])];
    const changed = await edit(generations, spec);
    named.set(name, generations);
    const { entries, retired } = await ringEntries(specs, named); // checks the result before anything is written
    await writeGenerations(dir, name, generations);
    ring.replace(entries, retired);
    return infoOf(name, spec.use, changed);
  });
}

/** A new current key for `name`, same use and algorithm; the old current key becomes previous. */
export function rotateKey(ring: KeyRing, name: string, now: Date): Promise<KeyInfo> {
  return change(ring, name, async (generations, spec) => {
    const current = generations.find((g) => g.status === 'current');
    const alg = (current?.jwk.alg ?? spec.alg) as Parameters<typeof generateKeyEntry>[1];
    const { privateJwk } = await generateKeyEntry(spec.use, alg);
    for (const [index, generation] of generations.entries()) if (generation.status === 'current') generations[index] = { ...generation, status: 'previous' };
    const fresh: StoredKey = { status: 'current', created: now.toISOString(), jwk: privateJwk };
    generations.unshift(fresh);
    return fresh;
  });
}

/** A previous key stops opening and verifying at once; its public half stays on disk for the list. */
export function retireKey(ring: KeyRing, name: string, kid: string): Promise<KeyInfo> {
  return change(ring, name, async (generations) => {
    const index = generations.findIndex((g) => g.jwk.kid === kid);
    const generation = generations[index];
    if (!generation) throw new KessaiError('key_not_found', `${name} has no key ${kid.slice(0, 64)}`);
    if (generation.status === 'current') throw new KessaiError('key_in_use');
    const retired = generation.status === 'retired' ? generation : retiredCopy(generation);
    generations[index] = retired;
    return retired;
  });
}

/**
 * Reads the key files again and swaps the ring if they changed: how a process learns of a rotation
 * made through another process sharing the key folder (several authentication servers on one host).
 */
export async function reloadKeyRing(ring: KeyRing): Promise<void> {
  const { dir, specs } = filesOf(ring);
  await serially(dir, async () => {
    const { entries, retired } = await ringEntries(specs, await loadOrCreateKeyFiles(dir, specs));
    ring.replace(entries, retired);
  });
}

/**
 * `GET /admin/v1/keys`, `POST /admin/v1/keys/rotate`, `POST /admin/v1/keys/retire` (with an operator
 * token), and a reload of the key files every keyReloadIntervalMs while the server runs; nothing
 * for a ring that was not loaded from key files.
 */
export async function keyAdminRoutes(plugin: FastifyInstance, ring: KeyRing, operatorToken: string | undefined): Promise<void> {
  if (!keyFilesOf(ring)) return;
  let timer: NodeJS.Timeout | undefined;
  plugin.addHook('onReady', async () => {
    timer = setInterval(() => void reloadKeyRing(ring).catch(() => undefined), limits.keyReloadIntervalMs);
    timer.unref();
  });
  plugin.addHook('onClose', async () => clearInterval(timer));
  if (!operatorToken) return;
  const app = plugin.withTypeProvider<ZodTypeProvider>();
  app.addHook('onRequest', requireOperator(operatorToken));
  const listSchema = { summary: "List the server's keys", operationId: 'listKeys', response: { 200: keyList } };
  app.get('/admin/v1/keys', { schema: listSchema }, async () => ({ keys: await listKeys(ring) }));
  app.post('/admin/v1/keys/rotate', { schema: { summary: 'Rotate a key: a new current key', operationId: 'rotateKey', body: keyRotateRequest, response: { 200: keyInfo } } }, async (request) => {
    const rotated = await rotateKey(ring, request.body.key, new Date());
    request.log.info({ key: rotated.key, kid: rotated.kid }, 'key rotated');
    void recordDomainEvent(request.server, { actor: 'operator', action: 'key.rotated', resource: `${rotated.key} ${rotated.kid}`, outcome: 'rotated', origin: request.ip });
    return rotated;
  });
  app.post('/admin/v1/keys/retire', { schema: { summary: 'Retire a previous key', operationId: 'retireKey', body: keyRetireRequest, response: { 200: keyInfo } } }, async (request) => {
    const retired = await retireKey(ring, request.body.key, request.body.kid);
    request.log.info({ key: retired.key, kid: retired.kid }, 'key retired');
    void recordDomainEvent(request.server, { actor: 'operator', action: 'key.retired', resource: `${retired.key} ${retired.kid}`, outcome: 'retired', origin: request.ip });
    return retired;
  });
}
