/** Server keys: generated on first start as owner-only JWK files with a kid, read back after. */
import { describe, expect, it } from 'vitest';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openJson, sealJson, typ } from '@kessai/protocol';
import { loadOrCreateKeyRing } from '../src/keys.ts';

describe('server key files', () => {
  it('creates each key once as a 0600 JWK file with kid, alg and use, and reads the same keys back', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'kessai-keys-'));
    try {
      const specs = [
        { name: 'cipher2', use: 'enc', alg: 'RSA-OAEP-256' },
        { name: 'signing', use: 'sig' },
      ] as const;
      const first = await loadOrCreateKeyRing(dir, specs);
      const second = await loadOrCreateKeyRing(dir, specs);
      expect(second.jwks()).toEqual(first.jwks());
      expect((await readdir(dir)).sort()).toEqual(['cipher2.private.jwk', 'signing.private.jwk']);
      for (const file of await readdir(dir)) {
        expect((await stat(path.join(dir, file))).mode & 0o777).toBe(0o600);
        const jwk = JSON.parse(await readFile(path.join(dir, file), 'utf8'));
        expect(jwk).toMatchObject({ kid: expect.any(String), use: expect.stringMatching(/^(enc|sig)$/), alg: expect.any(String), d: expect.any(String) });
      }
      expect((await stat(dir)).mode & 0o777).toBe(0o700);
      // The published set has no private members, and a key read back opens what the first sealed.
      expect(JSON.stringify(first.jwks())).not.toMatch(/"d"|"p"|"q"/);
      const sealed = await sealJson({ ok: true }, first.current('enc'), { typ: typ.pin });
      expect((await openJson(sealed, second, typ.pin, 'pin_invalid')).value).toEqual({ ok: true });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
