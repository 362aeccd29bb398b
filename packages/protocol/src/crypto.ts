/**
 * Kessai's cryptographic profile (DESIGN.md §3), all through `jose`: sealed credentials and PINs
 * are compact JWE, approvals, authorizations and payment-request views are compact JWS. Every
 * verification names its algorithms in an allow-list and checks `typ`, so an artefact of one kind
 * is never accepted as another.
 */
import {
  CompactEncrypt,
  CompactSign,
  SignJWT,
  calculateJwkThumbprint,
  compactDecrypt,
  compactVerify,
  decodeJwt,
  decodeProtectedHeader,
  errors as joseErrors,
  exportJWK,
  generateKeyPair,
  importJWK,
  jwtVerify,
  type CompactJWEHeaderParameters,
  type JWK,
} from 'jose';
import { KessaiError, type ErrorCode } from './errors.ts';
import { parseJson } from './json.ts';
import { limits } from './limits.ts';

export const signatureAlgorithms = ['ES256'] as const;
export const keyManagementAlgorithms = ['ECDH-ES+A256KW', 'RSA-OAEP-256'] as const;
export const contentEncryptionAlgorithms = ['A256GCM'] as const;
export type SignatureAlgorithm = (typeof signatureAlgorithms)[number];
export type KeyManagementAlgorithm = (typeof keyManagementAlgorithms)[number];

export const typ = {
  credential: 'kessai-credential+jwe',
  pin: 'kessai-pin+jwe',
  approval: 'kessai-approval+jws',
  authorization: 'kessai-authorization+jws',
  requestView: 'kessai-payment-request+jws',
  deviceProof: 'kessai-device-proof+jwt',
  /** The PIN at enrollment, encrypted by the terminal to the issuer and bound to the device key. */
  enrollmentPin: 'kessai-enrollment-pin+jwe',
  /** The issuer's receipt for a credential it registered (enrollment, step 303). */
  registration: 'kessai-registration+jws',
  /** The scheme's signed list of issuers (DESIGN.md §1, "directory"). */
  directory: 'kessai-directory+jws',
} as const;

export type { JWK };

/** A key this process holds: public part always, private part when it owns the key. */
export interface KeyEntry {
  kid: string;
  alg: SignatureAlgorithm | KeyManagementAlgorithm;
  use: 'sig' | 'enc';
  publicJwk: JWK;
  publicKey: CryptoKey;
  privateKey?: CryptoKey;
}

/**
 * Looks keys up by kid; the first key of each use is the current one, the others of that use are
 * previous keys that still open and verify. Retired kids are only remembered, to name them in errors.
 */
export class KeyRing {
  #keys: KeyEntry[];
  #retired: Set<string>;
  constructor(keys: KeyEntry[], retiredKids: Iterable<string> = []) {
    this.#keys = keys;
    this.#retired = new Set(retiredKids);
  }
  /** Key rotation: the running server's ring changes at once (packages/service/src/key-admin.ts). */
  replace(keys: KeyEntry[], retiredKids: Iterable<string>): void {
    this.#keys = keys;
    this.#retired = new Set(retiredKids);
  }
  isRetired(kid: unknown): boolean {
    return typeof kid === 'string' && this.#retired.has(kid);
  }
  current(use: 'sig' | 'enc'): KeyEntry {
    const key = this.#keys.find((k) => k.use === use);
    if (!key) throw new TypeError(`key ring has no ${use} key`);
    return key;
  }
  byKid(kid: unknown): KeyEntry | undefined {
    return typeof kid === 'string' ? this.#keys.find((k) => k.kid === kid) : undefined;
  }
  jwks(): { keys: JWK[] } {
    return { keys: this.#keys.map((k) => k.publicJwk) };
  }
}

export async function generateKeyEntry(use: 'sig' | 'enc', alg: KeyEntry['alg'] = use === 'sig' ? 'ES256' : 'ECDH-ES+A256KW'): Promise<{ entry: KeyEntry; privateJwk: JWK }> {
  const options = alg === 'ECDH-ES+A256KW' ? { crv: 'P-256', extractable: true } : { extractable: true };
  const { publicKey, privateKey } = await generateKeyPair(alg, options);
  const privateJwk = await exportJWK(privateKey);
  const kid = await calculateJwkThumbprint(await exportJWK(publicKey), 'sha256');
  privateJwk.kid = kid;
  privateJwk.alg = alg;
  privateJwk.use = use;
  return { entry: await keyEntryFromJwk(privateJwk), privateJwk };
}

const importedPublicKeys = new Map<string, Promise<CryptoKey>>();

/**
 * A public JWK imported for `alg`, cached per process by its exact public members (kty, crv, x, y,
 * n, e) and alg: the same key material always imports to the same key, so the cache cannot
 * confuse two keys, and it decides nothing — whether a credential or terminal (and so its key)
 * is still good is read from the database at each use, as before. A JWK with a private part is
 * refused. At most limits.importedPublicKeysMax entries (the oldest dropped first).
 */
export async function importPublicKey(jwk: JWK, alg: SignatureAlgorithm): Promise<CryptoKey> {
  if (jwk.d !== undefined) throw new TypeError('importPublicKey: a public JWK is expected');
  const { kty, crv, x, y, n, e } = jwk;
  const cacheKey = JSON.stringify([alg, kty, crv, x, y, n, e]);
  const cached = importedPublicKeys.get(cacheKey);
  if (cached) return cached;
  const members = Object.fromEntries(Object.entries({ kty, crv, x, y, n, e }).filter(([, v]) => v !== undefined));
  const imported = importJWK(members, alg) as Promise<CryptoKey>;
  importedPublicKeys.set(cacheKey, imported);
  imported.catch(() => importedPublicKeys.delete(cacheKey)); // a bad key is not remembered
  if (importedPublicKeys.size > limits.importedPublicKeysMax) {
    importedPublicKeys.delete(importedPublicKeys.keys().next().value!);
  }
  return imported;
}

/** Builds a KeyEntry from a JWK (private or public) that carries kid, alg and use. */
export async function keyEntryFromJwk(jwk: JWK): Promise<KeyEntry> {
  const { kid, alg, use } = jwk;
  if (typeof kid !== 'string' || (use !== 'sig' && use !== 'enc')) throw new TypeError('JWK needs kid and use');
  if (!isAllowedAlg(alg)) throw new TypeError('JWK alg is not in the allow-list');
  const publicJwk = toPublicJwk(jwk);
  const publicKey = (await importJWK(publicJwk, alg)) as CryptoKey;
  const privateKey = jwk.d ? ((await importJWK(jwk, alg)) as CryptoKey) : undefined;
  return { kid, alg, use: use as 'sig' | 'enc', publicJwk, publicKey, ...(privateKey ? { privateKey } : {}) };
}

function isAllowedAlg(alg: unknown): alg is KeyEntry['alg'] {
  return (signatureAlgorithms as readonly unknown[]).includes(alg) || (keyManagementAlgorithms as readonly unknown[]).includes(alg);
}

const privateMembers = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
export function toPublicJwk(jwk: JWK): JWK {
  const copy: Record<string, unknown> = { ...jwk };
  for (const member of privateMembers) delete copy[member];
  return copy as JWK;
}

/** RFC 7638 thumbprint of a public key, base64url. */
export function thumbprint(jwk: JWK): Promise<string> {
  return calculateJwkThumbprint(jwk, 'sha256');
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function base64url(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export async function sha256Base64url(text: string): Promise<string> {
  return base64url(new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', encoder.encode(text))));
}

// ---- JWE: sealed credentials and PINs ------------------------------------------------------

export interface SealHeader {
  typ: string;
  [claim: string]: string;
}

/** Encrypts JSON to a public encryption key: compact JWE, the header protected (and so bound). */
export async function sealJson(value: unknown, key: KeyEntry, header: SealHeader): Promise<string> {
  if (key.use !== 'enc') throw new TypeError('sealJson needs an enc key');
  return new CompactEncrypt(encoder.encode(JSON.stringify(value)))
    .setProtectedHeader({ ...header, alg: key.alg, enc: 'A256GCM', kid: key.kid })
    .encrypt(key.publicKey);
}

/**
 * How many times openJson was asked to open a JWE with each key ring: the process-level evidence
 * that a pass-through authentication server never opens a credential (its ring's count stays put
 * through a whole pass-through purchase; test/zero-retention.test.ts). Only counts, never contents.
 */
export const jweOpenings = new WeakMap<KeyRing, number>();

/**
 * Opens a compact JWE with the private key its `kid` names. Any failure — unknown kid, algorithm
 * outside the allow-list, wrong typ, tampered header, key, IV, ciphertext or tag — is the one
 * error `code`, so a caller learns nothing about which part was wrong.
 */
export async function openJson(jwe: string, keys: KeyRing, expectedTyp: string, code: ErrorCode): Promise<{ header: CompactJWEHeaderParameters; value: unknown }> {
  jweOpenings.set(keys, (jweOpenings.get(keys) ?? 0) + 1);
  try {
    const { plaintext, protectedHeader } = await compactDecrypt(
      jwe,
      (header) => {
        const key = keys.byKid(header.kid);
        if (!key && keys.isRetired(header.kid)) throw new KessaiError('key_retired');
        if (!key?.privateKey || key.use !== 'enc' || key.alg !== header.alg) throw new KessaiError(code, 'unknown key');
        return key.privateKey;
      },
      { keyManagementAlgorithms: [...keyManagementAlgorithms], contentEncryptionAlgorithms: [...contentEncryptionAlgorithms] },
    );
    if (protectedHeader.typ !== expectedTyp) throw new KessaiError(code, 'wrong typ');
    return { header: protectedHeader, value: parseJson(decoder.decode(plaintext)) };
  } catch (err) {
    if (err instanceof KessaiError) throw err;
    if (err instanceof joseErrors.JOSEError || err instanceof SyntaxError) throw new KessaiError(code);
    throw err;
  }
}

/** The protected header of a compact JWE or JWS, without verifying anything. */
export function readHeader(token: string, code: ErrorCode): Record<string, unknown> {
  try {
    return decodeProtectedHeader(token) as Record<string, unknown>;
  } catch {
    throw new KessaiError(code, 'malformed protected header');
  }
}

/** The payload of a compact JWS, without verifying anything (for a token this server itself stored). */
export function readJwsPayload(token: string, code: ErrorCode): unknown {
  try {
    return decodeJwt(token);
  } catch {
    throw new KessaiError(code, 'malformed payload');
  }
}

// ---- JWS: approvals, authorizations, request views -----------------------------------------

export async function signJson(value: unknown, privateKey: CryptoKey, header: { typ: string; kid?: string }): Promise<string> {
  return new CompactSign(encoder.encode(JSON.stringify(value))).setProtectedHeader({ ...header, alg: 'ES256' }).sign(privateKey);
}

/** Verifies a compact JWS (ES256 only) made with `key` and of type `expectedTyp`; returns its JSON payload. */
export async function verifyJson(jws: string, key: CryptoKey | ((kid: unknown) => CryptoKey | undefined), expectedTyp: string, code: ErrorCode): Promise<{ header: Record<string, unknown>; value: unknown }> {
  try {
    const { payload, protectedHeader } = await compactVerify(
      jws,
      (header) => {
        const found = typeof key === 'function' ? key(header.kid) : key;
        if (!found) throw new KessaiError(code, 'unknown key');
        return found;
      },
      { algorithms: [...signatureAlgorithms] },
    );
    if (protectedHeader.typ !== expectedTyp) throw new KessaiError(code, 'wrong typ');
    return { header: protectedHeader as Record<string, unknown>, value: parseJson(decoder.decode(payload)) };
  } catch (err) {
    if (err instanceof KessaiError) throw err;
    if (err instanceof joseErrors.JOSEError || err instanceof SyntaxError || err instanceof TypeError) throw new KessaiError(code);
    throw err;
  }
}

// ---- Device proofs: every terminal call is signed by the device key --------------------------

export async function signDeviceProof(privateKey: CryptoKey, claims: { credentialId: string; method: string; path: string }): Promise<string> {
  const jti = new Uint8Array(16);
  globalThis.crypto.getRandomValues(jti);
  return new SignJWT({ htm: claims.method.toUpperCase(), htu: claims.path })
    .setProtectedHeader({ alg: 'ES256', typ: typ.deviceProof })
    .setSubject(claims.credentialId)
    .setIssuedAt()
    .setJti(base64url(jti))
    .sign(privateKey);
}

/** The credential id a device proof claims, read before the key to verify it is known. */
export function deviceProofSubject(jwt: string): string | undefined {
  const parts = jwt.split('.');
  if (parts.length !== 3 || !parts[1] || parts[1].length > 4096) return undefined;
  try {
    const claims = JSON.parse(decoder.decode(Uint8Array.from(atob(parts[1].replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0)))) as { sub?: unknown };
    return typeof claims.sub === 'string' ? claims.sub : undefined;
  } catch {
    return undefined;
  }
}

export async function verifyDeviceProof(jwt: string, publicKey: CryptoKey, expected: { credentialId: string; method: string; path: string; maxAgeMs: number; skewMs: number }): Promise<{ jti: string; iat: number }> {
  try {
    const { payload } = await jwtVerify(jwt, publicKey, {
      algorithms: [...signatureAlgorithms],
      typ: typ.deviceProof,
      subject: expected.credentialId,
      maxTokenAge: `${Math.floor(expected.maxAgeMs / 1000)}s`,
      clockTolerance: `${Math.floor(expected.skewMs / 1000)}s`,
      requiredClaims: ['iat', 'jti', 'sub'],
    });
    if (payload.htm !== expected.method.toUpperCase() || payload.htu !== expected.path) throw new KessaiError('unauthenticated', 'device proof is for another request');
    return { jti: String(payload.jti), iat: Number(payload.iat) };
  } catch (err) {
    if (err instanceof KessaiError) throw err;
    throw new KessaiError('unauthenticated', 'invalid device proof');
  }
}

// ---- Webhook signatures (HMAC-SHA256 over "t.body", as Stripe does) ------------------------

async function hmacHex(secret: string, message: string): Promise<string> {
  const key = await globalThis.crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const mac = new Uint8Array(await globalThis.crypto.subtle.sign('HMAC', key, encoder.encode(message)));
  return Array.from(mac, (b) => b.toString(16).padStart(2, '0')).join('');
}

export async function signWebhook(secret: string, body: string, timestampSeconds: number): Promise<string> {
  return `t=${timestampSeconds},v1=${await hmacHex(secret, `${timestampSeconds}.${body}`)}`;
}

/** Checks a `t=…,v1=…` header over the raw body with any of `secrets`, inside `toleranceMs` of now. */
export async function verifyWebhook(secrets: readonly string[], header: string, body: string, nowMs: number, toleranceMs: number): Promise<boolean> {
  const parts = header.split(',').map((p) => p.trim().split('='));
  const t = Number(parts.find(([k]) => k === 't')?.[1]);
  const signatures = parts.filter(([k]) => k === 'v1').map(([, v]) => v ?? '');
  if (!Number.isSafeInteger(t) || signatures.length === 0) return false;
  if (Math.abs(nowMs - t * 1000) > toleranceMs) return false;
  for (const secret of secrets) {
    const expected = await hmacHex(secret, `${t}.${body}`);
    if (signatures.some((s) => constantTimeEqual(s, expected))) return true;
  }
  return false;
}

// ---- Standard Webhooks (github.com/standard-webhooks): v1,<base64 HMAC-SHA256 of "id.t.body"> ----

/**
 * The HMAC key is the UTF-8 bytes of the whole Kessai secret (`whsec_…` included), the same key as
 * Kessai-Signature. A Standard Webhooks library wants `whsec_` + standard base64 of its key bytes:
 * standardWebhooksSecret() gives that string.
 */
export function standardWebhooksSecret(kessaiSecret: string): string {
  return `whsec_${base64Std(encoder.encode(kessaiSecret))}`;
}

async function hmacBase64(secret: string, message: string): Promise<string> {
  const key = await globalThis.crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return base64Std(new Uint8Array(await globalThis.crypto.subtle.sign('HMAC', key, encoder.encode(message))));
}

function base64Std(bytes: Uint8Array): string {
  return btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(''));
}

/** The `webhook-signature` header: one `v1,<base64>` per secret (current first), space separated. */
export async function signStandardWebhook(secrets: readonly string[], id: string, body: string, timestampSeconds: number): Promise<string> {
  const signatures = await Promise.all(secrets.map(async (secret) => `v1,${await hmacBase64(secret, `${id}.${timestampSeconds}.${body}`)}`));
  return signatures.join(' ');
}

/** Checks Standard Webhooks headers over the raw body with any of the Kessai `secrets`, inside `toleranceMs` of now. */
export async function verifyStandardWebhook(
  secrets: readonly string[],
  headers: { id: string; timestamp: string; signature: string },
  body: string,
  nowMs: number,
  toleranceMs: number,
): Promise<boolean> {
  const t = /^\d{1,12}$/.test(headers.timestamp) ? Number(headers.timestamp) : Number.NaN;
  if (!Number.isSafeInteger(t) || Math.abs(nowMs - t * 1000) > toleranceMs) return false;
  const offered = headers.signature.split(' ').filter((s) => s.startsWith('v1,'));
  for (const secret of secrets) {
    const expected = `v1,${await hmacBase64(secret, `${headers.id}.${t}.${body}`)}`;
    if (offered.some((s) => constantTimeEqual(s, expected))) return true;
  }
  return false;
}

function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
