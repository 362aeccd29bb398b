/**
 * The browser wallet's device key (steps 301–302). WebCrypto creates an ES256 key pair once as
 * extractable; the private key is at once wrapped with a key derived from the payer's passphrase
 * (PBKDF2-SHA256, 600,000 iterations → AES-256-GCM) into the export blob, then imported again as
 * non-extractable for daily use, and the extractable handle is dropped. IndexedDB keeps the
 * non-extractable CryptoKey (no script can read its bytes) and the wrapped blob beside it, which is
 * what an export file carries; an import unwraps the blob with the passphrase straight into a
 * non-extractable key. See docs/web.md.
 */
import { base64url } from '../../../packages/protocol/src/crypto.ts';
import { limits } from '../../../packages/protocol/src/limits.ts';

export const pbkdf2Iterations = limits.walletExportPbkdf2Iterations;
export const passphraseLengthMin = limits.walletExportPassphraseLengthMin;
const aad = new TextEncoder().encode('kessai-wallet-device-key-v1');

/** The private device key, encrypted under the payer's passphrase. */
export interface WrappedDeviceKey {
  kdf: 'PBKDF2-SHA256';
  iterations: number;
  salt: string;
  enc: 'A256GCM';
  iv: string;
  ciphertext: string;
}

/** The public half the authentication server registers (no private member). */
export interface DevicePublicJwk {
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
}

export interface DeviceKey {
  /** Non-extractable, usage `sign` only. */
  privateKey: CryptoKey;
  publicJwk: DevicePublicJwk;
  wrapped: WrappedDeviceKey;
}

function fromBase64url(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function random(length: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(length);
  crypto.getRandomValues(bytes);
  return bytes;
}

async function passphraseKey(passphrase: string, salt: Uint8Array<ArrayBuffer>, iterations: number): Promise<CryptoKey> {
  const material = await crypto.subtle.importKey('raw', new TextEncoder().encode(passphrase.normalize('NFC')), 'PBKDF2', false, ['deriveKey']);
  return crypto.subtle.deriveKey({ name: 'PBKDF2', hash: 'SHA-256', salt, iterations }, material, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
}

function importSigningKey(jwk: JsonWebKey): Promise<CryptoKey> {
  const { kty, crv, x, y, d } = jwk;
  return crypto.subtle.importKey('jwk', { kty, crv, x, y, d, ext: false }, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
}

function publicPart(jwk: JsonWebKey): DevicePublicJwk {
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || !jwk.x || !jwk.y) throw new Error('the device key is not a P-256 key');
  return { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y };
}

/** Creates the device key: wrapped under the passphrase for export, non-extractable for use. */
export async function createDeviceKey(passphrase: string): Promise<DeviceKey> {
  const pair = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const jwk = await crypto.subtle.exportKey('jwk', pair.privateKey);
  const salt = random(16);
  const iv = random(12);
  const wrappingKey = await passphraseKey(passphrase, salt, pbkdf2Iterations);
  const plaintext = new TextEncoder().encode(JSON.stringify({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, d: jwk.d }));
  const ciphertext = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: aad }, wrappingKey, plaintext));
  plaintext.fill(0);
  const wrapped: WrappedDeviceKey = { kdf: 'PBKDF2-SHA256', iterations: pbkdf2Iterations, salt: base64url(salt), enc: 'A256GCM', iv: base64url(iv), ciphertext: base64url(ciphertext) };
  const privateKey = await importSigningKey(jwk);
  return { privateKey, publicJwk: publicPart(jwk), wrapped };
}

export class WrongPassphraseError extends Error {
  constructor() {
    super('the passphrase does not open this wallet file');
  }
}

/** Opens an exported device key with the passphrase, straight into a non-extractable key. */
export async function unwrapDeviceKey(wrapped: WrappedDeviceKey, passphrase: string): Promise<DeviceKey> {
  if (wrapped.kdf !== 'PBKDF2-SHA256' || wrapped.enc !== 'A256GCM' || !Number.isInteger(wrapped.iterations) || wrapped.iterations < pbkdf2Iterations || wrapped.iterations > limits.walletExportPbkdf2IterationsMax) {
    throw new Error('the wallet file uses a key protection this wallet does not accept');
  }
  const wrappingKey = await passphraseKey(passphrase, fromBase64url(wrapped.salt), wrapped.iterations);
  let plaintext: Uint8Array;
  try {
    plaintext = new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv: fromBase64url(wrapped.iv), additionalData: aad }, wrappingKey, fromBase64url(wrapped.ciphertext)));
  } catch {
    throw new WrongPassphraseError();
  }
  const jwk = JSON.parse(new TextDecoder().decode(plaintext)) as JsonWebKey;
  plaintext.fill(0);
  const privateKey = await importSigningKey(jwk);
  return { privateKey, publicJwk: publicPart(jwk), wrapped };
}
