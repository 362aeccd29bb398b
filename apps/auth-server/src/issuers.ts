/**
 * The settlement servers this authentication server brokers for: routed by card range, each
 * described by the metadata and JWKS it publishes (conversion mode, cipher 2 key, signing keys).
 * Metadata is fetched over TLS on first use and refreshed after limits.issuerMetadataTtlMs.
 */
import { issuerMetadata, keyEntryFromJwk, KessaiError, KeyRing, limits, type IssuerMetadata, type JWK } from '@kessai/protocol';
import type { HttpClient } from '@kessai/sdk';
import { z } from 'zod';
import type { IssuerRoute } from './config.ts';

const jwks = z.object({ keys: z.array(z.record(z.string(), z.unknown())).max(limits.issuerJwksKeysMax) });

export interface Issuer {
  route: IssuerRoute;
  metadata: IssuerMetadata;
  keys: KeyRing;
}

export class IssuerDirectory {
  readonly #routes: readonly IssuerRoute[];
  readonly #http: HttpClient;
  readonly #cache = new Map<string, { issuer: Promise<Issuer>; fetchedAt: number }>();
  /** When each issuer's keys were last fetched again for an unknown kid. */
  readonly #kidRefetchedAt = new Map<string, number>();

  constructor(routes: readonly IssuerRoute[], http: HttpClient) {
    this.#routes = routes;
    this.#http = http;
  }

  /** The issuer whose longest card prefix matches, or issuer_unknown. */
  forCard(cardNumber: string): Promise<Issuer> {
    let best: IssuerRoute | undefined;
    let bestLength = 0;
    for (const route of this.#routes) {
      for (const prefix of route.cardPrefixes) {
        if (cardNumber.startsWith(prefix) && prefix.length > bestLength) {
          best = route;
          bestLength = prefix.length;
        }
      }
    }
    if (!best) throw new KessaiError('issuer_unknown');
    return this.byId(best.id);
  }

  byId(id: string): Promise<Issuer> {
    const route = this.#routes.find((r) => r.id === id);
    if (!route) throw new KessaiError('issuer_unknown');
    const cached = this.#cache.get(id);
    if (cached && Date.now() - cached.fetchedAt < limits.issuerMetadataTtlMs) return cached.issuer;
    const issuer = this.#fetch(route);
    this.#cache.set(id, { issuer, fetchedAt: Date.now() });
    issuer.catch(() => this.#cache.delete(id));
    return issuer;
  }

  /** The issuer with keys that know `kid`: its JWKS is fetched again when a rotated key is not in the cached one (at most once per issuerJwksRefetchCooldownMs). */
  async withKid(issuer: Issuer, kid: unknown): Promise<Issuer> {
    if (issuer.keys.byKid(kid)) return issuer;
    const last = this.#kidRefetchedAt.get(issuer.route.id);
    // Fetched again a moment ago (perhaps for this very kid, by a concurrent caller): use that fetch.
    if (last !== undefined && Date.now() - last < limits.issuerJwksRefetchCooldownMs) return this.byId(issuer.route.id);
    this.#kidRefetchedAt.set(issuer.route.id, Date.now());
    this.#cache.delete(issuer.route.id);
    return this.byId(issuer.route.id);
  }

  /** Drops the cached metadata and keys of an issuer (it retired a key): the next use fetches them again. */
  forget(id: string): void {
    this.#cache.delete(id);
  }

  async #fetch(route: IssuerRoute): Promise<Issuer> {
    const metadata = await this.#http.call('GET', `${route.baseUrl}/.well-known/kessai-issuer`, { schema: issuerMetadata, unavailable: 'issuer_unavailable' });
    if (metadata.issuer_id !== route.id) throw new KessaiError('issuer_unavailable', 'issuer metadata names another issuer');
    // Keys fetched over plain HTTP could be anyone's: the peer's jwks_uri is refused, never fetched.
    if (new URL(metadata.jwks_uri).protocol !== 'https:') throw new KessaiError('issuer_unavailable', 'issuer metadata names a jwks_uri that is not https:');
    const set = await this.#http.call('GET', metadata.jwks_uri, { schema: jwks, unavailable: 'issuer_unavailable' });
    const entries = await Promise.all(set.keys.map((jwk) => keyEntryFromJwk(jwk as JWK)));
    return { route, metadata, keys: new KeyRing(entries) };
  }
}
