/**
 * The issuer directory (DESIGN.md §1 and §3): the scheme operator's signed list of issuers — id,
 * name, card ranges, conversion mode, cipher 2 algorithm and public keys — as a compact JWS
 * (ES256, typ kessai-directory+jws). A wallet is installed with the directory's public key and
 * takes every issuer key from a directory that key verifies, never from a URL or key the
 * authentication server hands it: whoever relays the directory cannot change a byte of it.
 */
import { z } from 'zod';
import { keyEntryFromJwk, KeyRing, signJson, typ, verifyJson, type JWK } from './crypto.ts';
import { KessaiError } from './errors.ts';
import { limits } from './limits.ts';

const publicJwk = z
  .looseObject({ kty: z.enum(['EC', 'RSA']), kid: z.string().min(1).max(200), use: z.enum(['sig', 'enc']), alg: z.string().min(1).max(32) })
  .refine((jwk) => !('d' in jwk), 'a directory lists public keys only');

export const directoryIssuer = z.strictObject({
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/),
  name: z.string().min(1).max(limits.stringLengthMax),
  /** Card-number prefixes; the longest prefix that matches a card wins. */
  card_ranges: z.array(z.string().regex(/^[0-9]{1,11}$/)).min(1).max(limits.directoryCardRangesMax),
  conversion_mode: z.enum(['reseal', 'pass_through']),
  cipher2_alg: z.enum(['ECDH-ES+A256KW', 'RSA-OAEP-256']),
  /** The issuer's public keys, current first: enc (cipher 2, PIN blocks), sig (authorizations, registrations). */
  keys: z.array(publicJwk).min(2).max(limits.directoryKeysPerIssuerMax),
});
export type DirectoryIssuer = z.infer<typeof directoryIssuer>;

export const directoryPayload = z.strictObject({
  v: z.literal(1),
  iat: z.number().int(),
  issuers: z.array(directoryIssuer).max(limits.directoryIssuersMax),
});
export type DirectoryPayload = z.infer<typeof directoryPayload>;

/** What `GET /v1/directory` answers (relayed by the authentication server; signed by the directory). */
export const directoryResponse = z.strictObject({ directory: z.string().min(1).max(limits.joseLengthMax * 4) });

/** Signs an issuer list with the directory key (the scheme operator's; `kessai start` holds it in development). */
export async function signDirectory(issuers: DirectoryIssuer[], privateKey: CryptoKey, kid: string, now: Date): Promise<string> {
  const payload: DirectoryPayload = { v: 1, iat: Math.floor(now.getTime() / 1000), issuers };
  directoryPayload.parse(payload);
  return signJson(payload, privateKey, { typ: typ.directory, kid });
}

/** A directory verified with the pinned key, with each issuer's keys imported. */
export class Directory {
  readonly payload: DirectoryPayload;
  readonly #rings = new Map<string, Promise<KeyRing>>();
  private constructor(payload: DirectoryPayload) {
    this.payload = payload;
  }

  /** Verifies `jws` with the pinned directory key; anything else is directory_invalid. */
  static async verify(jws: string, directoryKey: CryptoKey): Promise<Directory> {
    const { value } = await verifyJson(jws, directoryKey, typ.directory, 'directory_invalid');
    const parsed = directoryPayload.safeParse(value);
    if (!parsed.success) throw new KessaiError('directory_invalid', 'the directory does not match its schema');
    return new Directory(parsed.data);
  }

  issuer(id: string): DirectoryIssuer {
    const found = this.payload.issuers.find((issuer) => issuer.id === id);
    if (!found) throw new KessaiError('directory_invalid', `the directory does not list the issuer ${id}`);
    return found;
  }

  /** The issuer whose longest card range matches, or issuer_unknown. */
  issuerForCard(cardNumber: string): DirectoryIssuer {
    let best: DirectoryIssuer | undefined;
    let bestLength = 0;
    for (const issuer of this.payload.issuers) {
      for (const range of issuer.card_ranges) {
        if (cardNumber.startsWith(range) && range.length > bestLength) {
          best = issuer;
          bestLength = range.length;
        }
      }
    }
    if (!best) throw new KessaiError('issuer_unknown');
    return best;
  }

  /** The issuer's keys as the directory lists them (current first for each use). */
  keys(id: string): Promise<KeyRing> {
    let ring = this.#rings.get(id);
    if (!ring) {
      const issuer = this.issuer(id);
      ring = Promise.all(issuer.keys.map((jwk) => keyEntryFromJwk(jwk as JWK))).then((entries) => new KeyRing(entries));
      ring.catch(() => this.#rings.delete(id));
      this.#rings.set(id, ring);
    }
    return ring;
  }
}
