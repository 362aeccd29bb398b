/** What an authentication server needs to start, built by its caller (`kessai serve`, `kessai start` or a test) and frozen. */
import type { KeyRing } from '@kessai/protocol';
import { requireHttpsUrl, type Db, type LoadSheddingConfig, type MigrationMode, type Logger, type RateLimitConfig, type ServerTimeouts } from '@kessai/service';

export interface IssuerRoute {
  id: string;
  /** Where its settlement server listens (https://…). */
  baseUrl: string;
  /** Card-number prefixes this issuer serves; the longest matching prefix wins. */
  cardPrefixes: string[];
}

export interface MerchantSeed {
  id: string;
  name: string;
  apiKey: string;
  webhookUrl?: string;
  webhookSecret: string;
}

export interface AuthConfig {
  db: Db;
  /**
   * On start: 'apply' (default) applies pending migrations; 'verify' applies none and refuses to
   * start (migrations_pending) while any is pending, the operator migrating as a separate step
   * (`kessai db migrate`). Either way a changed or missing applied migration is refused.
   */
  migrations?: MigrationMode;
  logger: Logger;
  /** cipher 1 (use enc) and the signing key for payment-request views (use sig). */
  keys: KeyRing;
  publicBaseUrl: string;
  issuers: readonly IssuerRoute[];
  /**
   * Merchants registered at start when missing (main.ts's file; `kessai serve auth` has none: the
   * operator creates merchants, merchants.ts). A key or secret rotated away from is not brought back.
   */
  merchants?: readonly MerchantSeed[];
  tls: { keyPem: string; certPem: string; caCertPem: string };
  /** Client certificate for mutual TLS to the settlement servers. */
  clientTls: { certPem: string; keyPem: string };
  /** How often the outbox and expiry sweeper run. */
  workerIntervalMs?: number;
  /** The deadline of an authorization at the issuer (default limits.authorizationDeadlineMs); tests shorten it. */
  authorizationDeadlineMs?: number;
  /** Keep-alive interval of the terminals' event streams, each also a re-check of the credential (default limits.sseHeartbeatMs). */
  sseHeartbeatMs?: number;
  /** Bearer token of the operator endpoints (`/admin/v1/...`); without it they are not served. */
  operatorToken?: string;
  /** Rate limits other than limits.rateLimits (tests and the benchmark raise them), and their clock. */
  rateLimits?: RateLimitConfig;
  /**
   * The issuer directory this server relays to terminals (`GET /v1/directory`): a JWS signed by the
   * directory key, which this server cannot change without every wallet refusing it.
   */
  directory: () => Promise<string>;
  /**
   * Origins of browser wallets (their own hosts, apps/wallet/src/host.ts) allowed to call the
   * terminal API, enrollment, revocation and the directory from a page (CORS).
   */
  walletOrigins?: readonly string[];
  /** The browser wallet's page (https://…/wallet/): where a payment link opened in a browser is sent. */
  walletUrl?: string;
  /** Send Server-Timing headers (server-timing.ts): for the benchmark. */
  serverTiming?: boolean;
  /** Shorter connection timeouts than limits.ts (tests watch them act); production leaves them out. */
  serverTimeouts?: Partial<ServerTimeouts>;
  /** In-flight limits per work class other than limits.inFlightMax (tests shrink them). */
  loadShedding?: LoadSheddingConfig;
}

/** What a type cannot say: every URL the server publishes, calls or delivers to is https:. Throws a TypeError naming the field. */
export function checkAuthConfig(config: AuthConfig): void {
  requireHttpsUrl(config.publicBaseUrl, 'AuthConfig.publicBaseUrl');
  for (const issuer of config.issuers) requireHttpsUrl(issuer.baseUrl, `AuthConfig.issuers[${issuer.id}].baseUrl`);
  for (const merchant of config.merchants ?? []) if (merchant.webhookUrl !== undefined) requireHttpsUrl(merchant.webhookUrl, `AuthConfig.merchants[${merchant.id}].webhookUrl`);
}
