/**
 * A document sealed under a passphrase, as a compact JWE that any JOSE library opens with it:
 * `PBES2-HS512+A256KW` (PBKDF2-HMAC-SHA-512; the iteration count and a random 16-byte salt in the
 * protected header, RFC 7518 §4.8) wrapping an `A256GCM` content key. The key backups of
 * packages/service (key-backup.ts) are written and read here, so that jose stays in this package.
 */
import { CompactEncrypt, compactDecrypt, decodeProtectedHeader, errors } from 'jose';

export const passphraseJweAlg = 'PBES2-HS512+A256KW';
export const passphraseJweEnc = 'A256GCM';

/** Seals `plaintext` under `passphrase` with `iterations` PBKDF2 iterations; `cty` says what it is. */
export async function sealWithPassphrase(
  plaintext: Uint8Array,
  passphrase: string,
  options: { cty: string; iterations: number },
): Promise<string> {
  return new CompactEncrypt(plaintext)
    .setProtectedHeader({ alg: passphraseJweAlg, enc: passphraseJweEnc, cty: options.cty })
    .setKeyManagementParameters({ p2c: options.iterations, p2s: crypto.getRandomValues(new Uint8Array(16)) })
    .encrypt(new TextEncoder().encode(passphrase));
}

/** The protected header of a compact JWE, read without a key; undefined when `jwe` is not one. */
export function passphraseJweHeader(jwe: string): Record<string, unknown> | undefined {
  try {
    return decodeProtectedHeader(jwe);
  } catch {
    return undefined;
  }
}

/**
 * Opens a sealed document with at most `iterationsMax` PBKDF2 iterations: its plaintext, else
 * `wrong_passphrase` (AES key unwrap and GCM fail alike for a wrong passphrase and an altered
 * document) or `damaged` (anything else).
 */
export async function openWithPassphrase(
  jwe: string,
  passphrase: string,
  iterationsMax: number,
): Promise<Uint8Array | 'wrong_passphrase' | 'damaged'> {
  try {
    const { plaintext } = await compactDecrypt(jwe, new TextEncoder().encode(passphrase), {
      keyManagementAlgorithms: [passphraseJweAlg],
      contentEncryptionAlgorithms: [passphraseJweEnc],
      maxPBES2Count: iterationsMax,
    });
    return plaintext;
  } catch (err) {
    return err instanceof errors.JWEDecryptionFailed ? 'wrong_passphrase' : 'damaged';
  }
}
