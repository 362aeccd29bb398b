/** What a settlement server needs to start, built by its caller (`kessai serve`, `kessai start` or a test) and frozen. */
import type { KeyRing } from '@kessai/protocol';
import type { ConversionMode } from '@kessai/protocol';
import type { Db, LoadSheddingConfig, MigrationMode, Logger, RateLimitConfig, ServerTimeouts } from '@kessai/service';
import type { SettlementOptions } from './settlement/options.ts';
import type { CardKeys } from './card-vault.ts';

export interface SettlementConfig {
  issuerId: string;
  name: string;
  conversionMode: ConversionMode;
  /** The URL this server is reached at (for jwks_uri in its metadata). */
  publicBaseUrl: string;
  db: Db;
  /**
   * On start: 'apply' (default) applies pending migrations; 'verify' applies none and refuses to
   * start (migrations_pending) while any is pending, the operator migrating as a separate step
   * (`kessai db migrate`). Either way a changed or missing applied migration is refused.
   */
  migrations?: MigrationMode;
  logger: Logger;
  /** cipher 2 key(s) (use enc) and the signing key(s) for authorizations (use sig). */
  keys: KeyRing;
  /** The account store's card lookup and data keys (card-vault.ts, loadOrCreateCardKeys). */
  cardKeys: CardKeys;
  /** Merchants onboarded at start (kessai start's demo merchant); others through the operator API. */
  merchants?: ReadonlyArray<{ id: string; name: string }>;
  /** Active credentials per card (default limits.credentialsPerCardMax); the benchmark raises it. */
  credentialsPerCardMax?: number;
  tls?: { keyPem: string; certPem: string; caCertPem: string };
  /** SHA-256 fingerprints (hex, colons optional) of the broker certificates allowed on /internal; without it any CA-issued client certificate is. */
  brokerCertificates?: readonly string[];
  /** Authorization holds expire after this many seconds (default limits.holdTimeoutSecondsDefault). */
  holdTimeoutSeconds?: number;
  /** How often the expiry pass runs (default limits.expiryIntervalMsDefault); 0 turns the worker off. */
  expiryIntervalMs?: number;
  /** Bearer token of the operator endpoints (`/admin/v1/...`); without it they are not served. */
  operatorToken?: string;
  /** Rate limits other than limits.rateLimits (tests and the benchmark raise them), and their clock. */
  rateLimits?: RateLimitConfig;
  /** Settlement batches, fees and payouts (settlement/options.ts; docs/ledger.md). */
  settlement?: SettlementOptions;
  /** Shorter connection timeouts than limits.ts (tests watch them act); production leaves them out. */
  serverTimeouts?: Partial<ServerTimeouts>;
  /** In-flight limits per work class, and the deadline budget, other than limits.ts (tests shrink them). */
  loadShedding?: LoadSheddingConfig;
}

/** The variable that names an issuer's PostgreSQL database: `<ISSUER_ID>_DATABASE_URL`, upper case with `-` → `_` (docs/operations.md). */
export function issuerDatabaseEnv(issuerId: string): string {
  return `${issuerId.toUpperCase().replace(/-/g, '_')}_DATABASE_URL`;
}
