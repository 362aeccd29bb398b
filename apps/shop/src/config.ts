/**
 * What the reference shop needs to start, built by its caller (`kessai serve`, `kessai start` or a test) and frozen.
 * buildShop never reads the environment and never opens a port.
 */
import type { Secret } from '@kessai/protocol';
import {
  requireHttpsUrl,
  type Db,
  type LoadSheddingConfig,
  type MigrationMode,
  type Logger,
  type RateLimitConfig,
  type ServerTimeouts,
} from '@kessai/service';

export interface ShopConfig {
  logger: Logger;
  /** An opened database; buildShop applies the shop's migrations to it. The caller closes it. */
  db: Db;
  /**
   * On start: 'apply' (default) applies pending migrations; 'verify' applies none and refuses to
   * start (migrations_pending) while any is pending, the operator migrating as a separate step
   * (`kessai db migrate`). Either way a changed or missing applied migration is refused.
   */
  migrations?: MigrationMode;
  /** The shop's API key at the authentication server (merchant API). */
  merchantApiKey: string | Secret<string>;
  /** The authentication server, e.g. https://127.0.0.1:8443. */
  authBaseUrl: string;
  /** The CA that issued the authentication and settlement servers' certificates. */
  caCertPem: string;
  /** Webhook signing secrets: the current one and, during a rotation, the previous one. */
  webhookSecrets: readonly string[];
  /**
   * Issuer id → jwks_uri of each settlement server whose authorizations this shop accepts
   * (step 408). From the merchant's own configuration, never from the authentication server.
   */
  issuers: Readonly<Record<string, string>>;
  /** Capture as soon as an order is paid (step 409); default true. */
  autoCapture?: boolean;
  /** Where the shop is reached; the webhook URL to register is `${publicBaseUrl}/webhooks/kessai`. */
  publicBaseUrl: string;
  /** Serve HTTPS with this key and certificate (the caller listens). */
  tls?: { keyPem: string; certPem: string; caCertPem: string };
  /** Bearer token of the operator endpoints (`/admin/v1/...`); without it they are not served. */
  operatorToken?: string;
  /** Rate limits other than limits.rateLimits (tests and the benchmark raise them), and their clock. */
  rateLimits?: RateLimitConfig;
  /** Shorter connection timeouts than limits.ts (tests watch them act); production leaves them out. */
  serverTimeouts?: Partial<ServerTimeouts>;
  /** How often the reconciler (reconciler.ts) runs; default limits.shopWorkerIntervalMsDefault, 0 turns it off. */
  workerIntervalMs?: number;
  /** In-flight limits per work class other than limits.inFlightMax (tests shrink them). */
  loadShedding?: LoadSheddingConfig;
}

/** A config after defineShopConfig: defaults applied, frozen. */
export type ResolvedShopConfig = Readonly<ShopConfig & { autoCapture: boolean }>;

export const webhookPath = '/webhooks/kessai';

/** Checks what a type cannot (https URLs, at least one secret and issuer) and freezes the config. */
export function defineShopConfig(config: ShopConfig): ResolvedShopConfig {
  requireHttpsUrl(config.authBaseUrl, 'ShopConfig.authBaseUrl');
  if (config.webhookSecrets.length === 0 || config.webhookSecrets.some((s) => s.length === 0))
    throw new TypeError('ShopConfig: webhookSecrets needs at least one non-empty secret');
  if (Object.keys(config.issuers).length === 0) throw new TypeError('ShopConfig: issuers is empty');
  for (const [issuer, jwksUri] of Object.entries(config.issuers))
    requireHttpsUrl(jwksUri, `ShopConfig.issuers[${issuer}]`);
  // The webhook URL registered at the authentication server is under it.
  requireHttpsUrl(config.publicBaseUrl, 'ShopConfig.publicBaseUrl');
  return Object.freeze({
    ...config,
    autoCapture: config.autoCapture ?? true,
    webhookSecrets: Object.freeze([...config.webhookSecrets]),
    issuers: Object.freeze({ ...config.issuers }),
  });
}

export function webhookUrl(config: Pick<ShopConfig, 'publicBaseUrl'>): string {
  return new URL(webhookPath, config.publicBaseUrl).href;
}
