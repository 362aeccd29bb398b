/**
 * importPublicKey (crypto.ts): the per-process cache of imported device keys gives the same key
 * an import would, never another key's, and refuses a private JWK (docs/protocol.md, JOSE caches).
 */
import { exportJWK, generateKeyPair } from 'jose';
import { describe, expect, it } from 'vitest';
import { importPublicKey, signJson, typ, verifyJson } from '../src/index.ts';

async function devicePair() {
  const pair = await generateKeyPair('ES256', { extractable: true });
  const { kty, crv, x, y } = await exportJWK(pair.publicKey);
  return { pair, jwk: { kty, crv, x, y }, privateJwk: await exportJWK(pair.privateKey) };
}

describe('importPublicKey', () => {
  it('imports a device key once and verifies with it; another key gets its own import', async () => {
    const a = await devicePair();
    const b = await devicePair();
    const first = await importPublicKey(a.jwk, 'ES256');
    expect(await importPublicKey({ ...a.jwk }, 'ES256')).toBe(first);
    const other = await importPublicKey(b.jwk, 'ES256');
    expect(other).not.toBe(first);
    const signed = await signJson({ rid: 'pr_x' }, a.pair.privateKey, { typ: typ.approval });
    await expect(verifyJson(signed, first, typ.approval, 'approval_invalid')).resolves.toBeDefined();
    await expect(verifyJson(signed, other, typ.approval, 'approval_invalid')).rejects.toMatchObject({ code: 'approval_invalid' });
  });

  it('refuses a JWK with a private part', async () => {
    const { privateJwk } = await devicePair();
    await expect(importPublicKey(privateJwk, 'ES256')).rejects.toThrow(TypeError);
  });
});
