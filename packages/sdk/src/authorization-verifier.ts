/**
 * Step 408, the merchant's own check: before it fulfils an order, the shop verifies the settlement
 * server's signed authorization with that issuer's public keys — fetched over HTTPS from a jwks_uri
 * the merchant configured, never from anything the authentication server says — and checks that it
 * was given for this payment request, merchant, amount and currency. A compromised authentication
 * server therefore cannot make a shop ship goods that no bank authorized.
 */
import { z } from 'zod';
import { base64url as joseBase64url } from 'jose';
import {
  KessaiError,
  authorizationPayload,
  keyEntryFromJwk,
  limits,
  readHeader,
  toPublicJwk,
  typ,
  verifyJson,
  type AuthorizationPayload,
  type JWK,
} from '@kessai/protocol';
import { HttpClient } from './http.ts';

/** A JWKS is refetched for an unknown kid at most this often per issuer (as jose's remote JWKS does). */
export const jwksCooldownMs = limits.merchantJwksCooldownMs;
/** Keys older than this are refetched before use; if the refetch fails the old keys still serve. */
export const jwksCacheMaxAgeMs = limits.merchantJwksCacheMaxAgeMs;
/** A JWKS with more keys than this is refused. */
export const jwksKeysMax = limits.merchantJwksKeysMax;

export type AuthorizationRefusal =
  /** Not a compact JWS with a JSON payload naming its issuer and a kid. */
  | 'malformed'
  /** `iss` is not one of the issuers this merchant trusts. */
  | 'issuer_unknown'
  /** The issuer's JWKS could not be fetched (transient: try again later). */
  | 'jwks_unavailable'
  /** No signing key with this kid in the issuer's JWKS, even after a refetch. */
  | 'key_unknown'
  /** Bad signature, algorithm outside the allow-list, or the wrong typ. */
  | 'signature_invalid'
  /** Signed, but the payload is not an authorization. */
  | 'payload_invalid'
  /** Signed for another payment request, merchant, amount or currency. */
  | 'mismatch';

export class AuthorizationVerificationError extends Error {
  readonly reason: AuthorizationRefusal;
  constructor(reason: AuthorizationRefusal, detail?: string) {
    super(detail ? `authorization refused (${reason}): ${detail}` : `authorization refused (${reason})`);
    this.name = 'AuthorizationVerificationError';
    this.reason = reason;
  }
  /** True when a later attempt may succeed (the issuer's keys were unreachable). */
  get transient(): boolean {
    return this.reason === 'jwks_unavailable';
  }
}

export interface AuthorizationVerifierOptions {
  /** Issuer id → jwks_uri (https), from the merchant's own configuration. */
  issuers: Readonly<Record<string, string>>;
  /** The CA that issued the settlement servers' certificates. */
  caCertPem: string;
  timeoutMs?: number;
  /** Clock for the cache and the cooldown (tests). */
  now?: () => number;
}

export interface ExpectedAuthorization {
  rid: string;
  mid: string;
  amountMinor: bigint;
  currency: string;
}

interface IssuerKeys {
  keys: Map<string, CryptoKey>;
  fetchedAtMs: number;
}

const jwksDocument = z.looseObject({ keys: z.array(z.record(z.string(), z.unknown())).max(jwksKeysMax) });

export class AuthorizationVerifier {
  readonly #issuers: Map<string, string>;
  readonly #http: HttpClient;
  readonly #now: () => number;
  readonly #cache = new Map<string, IssuerKeys>();
  readonly #inflight = new Map<string, Promise<IssuerKeys>>();
  readonly #lastAttemptMs = new Map<string, number>();

  constructor(options: AuthorizationVerifierOptions) {
    this.#issuers = new Map();
    for (const [issuer, uri] of Object.entries(options.issuers)) {
      if (new URL(uri).protocol !== 'https:')
        throw new TypeError(`AuthorizationVerifier: jwks_uri of ${issuer} must be https`);
      this.#issuers.set(issuer, uri);
    }
    if (this.#issuers.size === 0) throw new TypeError('AuthorizationVerifier: no issuers configured');
    this.#http = new HttpClient({
      caCertPem: options.caCertPem,
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    });
    this.#now = options.now ?? Date.now;
  }

  /**
   * Returns the verified payload (approved or declined: the caller decides what a decline means),
   * or throws AuthorizationVerificationError. The checks run in this order:
   * 1. well-formed, names a kid and an issuer; 2. the issuer is configured; 3. the kid is in that
   * issuer's JWKS; 4. ES256 signature and typ; 5. payload schema; 6. rid, mid, amt, cur as expected.
   */
  async verify(jws: string, expected: ExpectedAuthorization): Promise<AuthorizationPayload> {
    const { kid, iss } = unverifiedIssuerAndKid(jws);
    const jwksUri = this.#issuers.get(iss);
    if (!jwksUri) throw new AuthorizationVerificationError('issuer_unknown');
    const key = await this.#key(iss, jwksUri, kid);
    if (!key) throw new AuthorizationVerificationError('key_unknown');

    let value: unknown;
    try {
      ({ value } = await verifyJson(jws, key, typ.authorization, 'approval_invalid'));
    } catch (err) {
      if (err instanceof KessaiError) throw new AuthorizationVerificationError('signature_invalid');
      throw err;
    }
    const parsed = authorizationPayload.safeParse(value);
    if (!parsed.success) throw new AuthorizationVerificationError('payload_invalid');
    const payload = parsed.data;

    const differs = [
      payload.iss !== iss && 'iss',
      payload.rid !== expected.rid && 'rid',
      payload.mid !== expected.mid && 'mid',
      payload.amt !== expected.amountMinor.toString() && 'amt',
      payload.cur !== expected.currency && 'cur',
    ].filter((field): field is string => field !== false);
    if (differs.length > 0) throw new AuthorizationVerificationError('mismatch', differs.join(', '));
    return payload;
  }

  close(): Promise<void> {
    return this.#http.close();
  }

  /** The issuer's signing key with this kid: cached, refetched when stale or (once per cooldown) when unknown. */
  async #key(issuer: string, jwksUri: string, kid: string): Promise<CryptoKey | undefined> {
    const cached = this.#cache.get(issuer);
    const now = this.#now();
    const fresh = cached !== undefined && now - cached.fetchedAtMs < jwksCacheMaxAgeMs;
    if (fresh && cached.keys.has(kid)) return cached.keys.get(kid);

    const lastAttempt = this.#lastAttemptMs.get(issuer);
    const coolingDown = lastAttempt !== undefined && now - lastAttempt < jwksCooldownMs;
    if (fresh && coolingDown) return undefined; // unknown kid, and we asked the issuer only just now
    if (cached && coolingDown) return cached.keys.get(kid);

    try {
      return (await this.#fetch(issuer, jwksUri)).keys.get(kid);
    } catch (err) {
      if (!(err instanceof KessaiError)) throw err;
      if (cached?.keys.has(kid)) return cached.keys.get(kid); // stale keys beat no keys
      throw new AuthorizationVerificationError('jwks_unavailable', err.message);
    }
  }

  #fetch(issuer: string, jwksUri: string): Promise<IssuerKeys> {
    const running = this.#inflight.get(issuer);
    if (running) return running;
    this.#lastAttemptMs.set(issuer, this.#now());
    const fetching = (async () => {
      const document = await this.#http.call('GET', jwksUri, {
        schema: jwksDocument,
        unavailable: 'issuer_unavailable',
      });
      const entry: IssuerKeys = { keys: await signingKeys(document.keys as JWK[]), fetchedAtMs: this.#now() };
      this.#cache.set(issuer, entry);
      return entry;
    })().finally(() => this.#inflight.delete(issuer));
    this.#inflight.set(issuer, fetching);
    return fetching;
  }
}

/** The ES256 signing keys of a JWKS by kid; encryption keys and anything outside the allow-list are skipped. */
async function signingKeys(jwks: JWK[]): Promise<Map<string, CryptoKey>> {
  const keys = new Map<string, CryptoKey>();
  for (const jwk of jwks) {
    if (jwk.use !== 'sig' || jwk.alg !== 'ES256' || typeof jwk.kid !== 'string') continue;
    try {
      keys.set(jwk.kid, (await keyEntryFromJwk(toPublicJwk(jwk))).publicKey);
    } catch {
      // A key we cannot import is a key we do not trust; the others still serve.
    }
  }
  return keys;
}

/** The kid (header) and iss (payload) of a compact JWS, read before anything is verified. */
function unverifiedIssuerAndKid(jws: string): { kid: string; iss: string } {
  const parts = jws.split('.');
  if (parts.length !== 3 || jws.length > limits.joseLengthMax) throw new AuthorizationVerificationError('malformed');
  let header: Record<string, unknown>;
  let claims: unknown;
  try {
    header = readHeader(jws, 'approval_invalid');
    claims = JSON.parse(new TextDecoder().decode(joseBase64url.decode(parts[1] ?? '')));
  } catch {
    throw new AuthorizationVerificationError('malformed');
  }
  const iss = (claims as { iss?: unknown } | null)?.iss;
  if (typeof header.kid !== 'string' || typeof iss !== 'string') throw new AuthorizationVerificationError('malformed');
  return { kid: header.kid, iss };
}
