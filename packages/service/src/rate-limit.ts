/**
 * Rate limits keyed by string (a source address, a merchant's API key, a credential id): one
 * GCRA limiter per named limit (a token bucket stored as one number per key, its "theoretical
 * arrival time"), answered as `rate_limited` (429) with a `Retry-After` header.
 *
 * Limits:
 * - Buckets live in this process's memory: two processes behind one address each allow the full
 *   rate, so N processes allow N times the configured rate. A deployment that needs one budget
 *   across processes puts the limit in front of them (a proxy) or divides the rates by N.
 * - Each limiter tracks at most `keysMax` keys. A full limiter first forgets keys whose bucket has
 *   refilled (nothing is lost: a full bucket and a missing key are the same), then the key least
 *   recently used, which starts again with a full burst; the per-address limit still bounds a
 *   caller who cycles through keys to get there.
 */
import { peerCertificateOf } from './peer-certificate.ts';
import type { TLSSocket } from 'node:tls';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { KessaiError, limits } from '@kessai/protocol';
import { isOperationsRequest } from './operations.ts';
import { sendProblem } from './server.ts';

/** A sustained rate and the burst allowed on top of it from a full bucket. */
export interface RateLimit {
  perMinute: number;
  burst: number;
}

export type RateLimitName = keyof typeof limits.rateLimits;

/** Per-server overrides of limits.rateLimits (tests and the benchmark raise them), and the clock. */
export interface RateLimitConfig {
  limits?: Partial<Record<RateLimitName, RateLimit>>;
  /** Keys tracked per limiter (default limits.rateLimitKeysMax). */
  keysMax?: number;
  /** Milliseconds since the epoch; tests pass a clock they move. */
  now?: () => number;
}

export type RateDecision = { allowed: true } | { allowed: false; retryAfterSeconds: number };

/** Generic cell rate algorithm (ITU-T I.371): `burst` requests at once, then one per emission interval. */
export class RateLimiter {
  readonly #intervalMs: number;
  readonly #burst: number;
  readonly #keysMax: number;
  readonly #now: () => number;
  /** key → theoretical arrival time (ms); Map order is least recently updated first. */
  readonly #arrivals = new Map<string, number>();

  constructor(limit: RateLimit, options: { keysMax?: number; now?: () => number } = {}) {
    if (!(limit.perMinute > 0) || !Number.isInteger(limit.burst) || limit.burst < 1) throw new TypeError('RateLimiter: perMinute must be > 0 and burst an integer ≥ 1');
    const keysMax = options.keysMax ?? limits.rateLimitKeysMax;
    if (!Number.isInteger(keysMax) || keysMax < 1) throw new TypeError('RateLimiter: keysMax must be an integer ≥ 1');
    this.#intervalMs = 60_000 / limit.perMinute;
    this.#burst = limit.burst;
    this.#keysMax = keysMax;
    this.#now = options.now ?? Date.now;
  }

  /** Spends one request of `key`'s budget, or says how many whole seconds until one is free. */
  take(key: string): RateDecision {
    const now = this.#now();
    const arrival = Math.max(this.#arrivals.get(key) ?? now, now) + this.#intervalMs;
    const waitMs = arrival - now - this.#burst * this.#intervalMs;
    if (waitMs > 0) return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
    this.#arrivals.delete(key);
    if (this.#arrivals.size >= this.#keysMax) this.#evict(now);
    this.#arrivals.set(key, arrival);
    return { allowed: true };
  }

  /** Keys tracked now (for tests of the bound). */
  get size(): number {
    return this.#arrivals.size;
  }

  #evict(now: number): void {
    for (const [key, arrival] of this.#arrivals) {
      if (arrival > now) break;
      this.#arrivals.delete(key);
    }
    if (this.#arrivals.size >= this.#keysMax) {
      const oldest = this.#arrivals.keys().next();
      if (!oldest.done) this.#arrivals.delete(oldest.value);
    }
  }
}

/** One limiter per named limit, each with the server's override or the default of limits.ts. */
export type RateLimiters = Record<RateLimitName, RateLimiter>;

export function createRateLimiters(config: RateLimitConfig = {}): RateLimiters {
  const options = { ...(config.keysMax !== undefined ? { keysMax: config.keysMax } : {}), ...(config.now ? { now: config.now } : {}) };
  const names = Object.keys(limits.rateLimits) as RateLimitName[];
  return Object.fromEntries(names.map((name) => [name, new RateLimiter(config.limits?.[name] ?? limits.rateLimits[name], options)])) as RateLimiters;
}

/**
 * An onRequest hook that spends one request from each bucket `keysOf` names and answers
 * `rate_limited` with `Retry-After` when any of them is empty. Runs before authentication, so a
 * flood costs no database work.
 */
export function rateLimitHook(limiters: RateLimiters, keysOf: (request: FastifyRequest) => Array<[RateLimitName, string]>) {
  return async function rateLimited(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    if (isOperationsRequest(request)) return undefined; // /livez, /readyz, /metrics: the operator's probes, never limited
    for (const [name, key] of keysOf(request)) {
      const decision = limiters[name].take(key);
      if (!decision.allowed) {
        request.log.info({ limit: name }, 'rate limited');
        return sendProblem(reply.header('retry-after', String(decision.retryAfterSeconds)), new KessaiError('rate_limited', `the ${name} rate limit is spent; retry after ${decision.retryAfterSeconds} s`));
      }
    }
    return undefined;
  };
}

/** Spends one request of `key`'s `name` bucket inside a route (a key known only after parsing), or throws rate_limited with its Retry-After. */
export function spendRateLimit(limiters: RateLimiters, name: RateLimitName, key: string): void {
  const decision = limiters[name].take(key);
  if (decision.allowed) return;
  const error = new KessaiError('rate_limited', `the ${name} rate limit is spent; retry after ${decision.retryAfterSeconds} s`);
  error.retryAfterSeconds = decision.retryAfterSeconds;
  throw error;
}

/** The bucket every server has: one per source address. */
export const byAddress = (request: FastifyRequest): Array<[RateLimitName, string]> => [['address', request.ip]];

/**
 * The settlement server's buckets: per source address, except for a peer holding a certificate
 * of the Kessai CA (the authentication server). It calls from one address on behalf of every payer
 * and already spends their buckets, per merchant, credential and address, before calling.
 */
export const byAddressExceptCertifiedPeers = (request: FastifyRequest): Array<[RateLimitName, string]> => {
  const socket = request.raw.socket as Partial<TLSSocket>;
  const certificate = socket.authorized ? peerCertificateOf(socket) : undefined;
  return certificate ? [] : byAddress(request);
};

/**
 * Limits high enough never to answer 429 to the test suites and the benchmark, which send
 * thousands of requests from 127.0.0.1 through a handful of credentials; never for production.
 */
export const loadTestRateLimits: RateLimitConfig = {
  limits: Object.fromEntries((Object.keys(limits.rateLimits) as RateLimitName[]).map((name) => [name, { perMinute: 60_000_000, burst: 1_000_000 }])),
};
