/**
 * The four schemas of `kessai serve <role>` (docs/operations.md, "Configuration"): the keys every
 * role shares, then each role's own. Paths of secrets end in `File`: a secret is never a value in
 * the environment. Tuning keys (rate limits, load shedding, database timeouts) are file keys.
 */
import { z } from 'zod';
import { limits } from '@kessai/protocol';
import { bankDescription } from '@kessai/settlement-server/bank';
import { workClasses, type RateLimitName, type WorkClass } from '@kessai/service';
import type { EnvKind, RoleSchema } from './loader.ts';

export const serveRoles = ['auth', 'settlement', 'shop', 'wallet-host'] as const;
export type ServeRole = (typeof serveRoles)[number];

/** The port each role listens on when KESSAI_PORT is not given (the ports `kessai start` uses). */
export const defaultServePorts: Readonly<Record<ServeRole, number>> = { auth: 8443, settlement: 8444, shop: 8446, 'wallet-host': 8447 };

const filePath = z.string().min(1);
/** An https: URL: one problem, "Invalid URL" or "must be an https:// URL". */
export const httpsUrl = z.string().superRefine((value, ctx) => {
  let protocol: string;
  try {
    protocol = new URL(value).protocol;
  } catch {
    ctx.addIssue({ code: 'custom', message: 'Invalid URL' });
    return;
  }
  if (protocol !== 'https:') ctx.addIssue({ code: 'custom', message: 'must be an https:// URL' });
});
const fingerprint = z.string().regex(/^([0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}$/, 'must be a SHA-256 fingerprint (64 hex digits, colons optional)');
const positiveMs = z.number().int().positive();
const rateLimit = z.strictObject({ perMinute: z.number().positive(), burst: z.number().int().positive() });

/** Keys every role shares. */
const common = {
  host: z.string().min(1).default('0.0.0.0'),
  port: z.number().int().min(0).max(65_535).optional(),
  publicBaseUrl: httpsUrl.optional(),
  tlsCertFile: filePath,
  tlsKeyFile: filePath,
  tlsCaFile: filePath.optional(),
  databaseUrl: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL').optional(),
  dataDir: filePath.optional(),
  keysDir: filePath.optional(),
  operatorTokenFile: filePath.optional(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  logFile: filePath.optional(),
  /** `apply` (default): migrate on start; `verify`: refuse to start while a migration is pending (run `kessai db migrate` first). */
  dbMigrations: z.enum(['apply', 'verify']).default('apply'),
  // File keys: tuning that production leaves out or measures first (docs/operations.md).
  poolSizeMax: z.number().int().positive().max(limits.configPoolSizeMax).optional(),
  dbTimeouts: z.strictObject({ connectMs: positiveMs, statementMs: positiveMs, queryMs: positiveMs, idleInTransactionMs: positiveMs, listenHeartbeatMs: positiveMs }).partial().optional(),
  rateLimits: z
    .strictObject({
      limits: z.partialRecord(z.enum(Object.keys(limits.rateLimits) as [RateLimitName, ...RateLimitName[]]), rateLimit).optional(),
      keysMax: z.number().int().positive().optional(),
    })
    .optional(),
  loadShedding: z
    .strictObject({
      inFlightMax: z.partialRecord(z.enum(workClasses as [WorkClass, ...WorkClass[]]), z.number().int().positive().max(limits.configInFlightMax)).optional(),
      deadlineBudgetMsMin: z.number().int().nonnegative().max(limits.authorizationDeadlineMs).optional(),
    })
    .optional(),
  serverTimeouts: z.strictObject({ tlsHandshakeMs: positiveMs, connectionIdleMs: positiveMs, requestMs: positiveMs, requestCheckMs: positiveMs, keepAliveMs: positiveMs }).partial().optional(),
};
const commonKinds: Record<string, EnvKind> = { port: 'int', poolSizeMax: 'int', dbTimeouts: 'json', rateLimits: 'json', loadShedding: 'json', serverTimeouts: 'json' };

const wildcardHosts = new Set(['0.0.0.0', '::', '[::]']);

/** What a type cannot say about the common keys: the folder a role needs, and a public URL when it cannot be derived. */
function checkCommon(config: { host: string; publicBaseUrl?: string | undefined; databaseUrl?: string | undefined; keysDir?: string | undefined; dataDir?: string | undefined }, ctx: z.core.$RefinementCtx): void {
  if (config.publicBaseUrl === undefined && wildcardHosts.has(config.host)) ctx.addIssue({ code: 'custom', path: ['publicBaseUrl'], message: `required when KESSAI_HOST is ${config.host} (the URL others reach this server by)` });
  if (config.dataDir === undefined && (config.databaseUrl === undefined || config.keysDir === undefined)) ctx.addIssue({ code: 'custom', path: ['dataDir'], message: 'required unless both KESSAI_DATABASE_URL and KESSAI_KEYS_DIR are given' });
}

function roleSchema<S extends z.ZodRawShape, T>(role: ServeRole, shape: S, kinds: Record<string, EnvKind>, refine: (config: z.infer<z.ZodObject<S>>, ctx: z.core.$RefinementCtx) => void, subFiles?: RoleSchema<T>['subFiles']): RoleSchema<z.infer<z.ZodObject<S>>> {
  const object = z.strictObject(shape);
  return {
    role,
    schema: object.superRefine((config, ctx) => refine(config as z.infer<z.ZodObject<S>>, ctx)) as unknown as z.ZodType<z.infer<z.ZodObject<S>>>,
    keys: Object.keys(shape),
    kinds: { ...commonKinds, ...kinds },
    ...(subFiles ? { subFiles } : {}),
  };
}

const issuerRoute = z.strictObject({
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be a lower-case issuer id'),
  baseUrl: httpsUrl,
  cardPrefixes: z.array(z.string().regex(/^\d{1,11}$/, 'must be 1–11 digits')).min(1).max(limits.directoryCardRangesMax),
});

export const authSchema = roleSchema(
  'auth',
  {
    ...common,
    issuers: z.array(issuerRoute).min(1).max(limits.directoryIssuersMax),
    directoryFile: filePath,
    walletOrigins: z.array(httpsUrl).max(20).optional(),
    walletUrl: httpsUrl.optional(),
    clientCertFile: filePath.optional(),
    clientKeyFile: filePath.optional(),
    merchantsFile: filePath.optional(),
    workerIntervalMs: positiveMs.optional(),
    authorizationDeadlineMs: positiveMs.max(limits.authorizationDeadlineMs * 10).optional(),
    sseHeartbeatMs: positiveMs.optional(),
    serverTiming: z.boolean().optional(),
  },
  { issuers: 'json', walletOrigins: 'csv', workerIntervalMs: 'int', authorizationDeadlineMs: 'int', sseHeartbeatMs: 'int', serverTiming: 'bool' },
  (config, ctx) => {
    checkCommon(config, ctx);
    if ((config.clientCertFile === undefined) !== (config.clientKeyFile === undefined)) ctx.addIssue({ code: 'custom', path: [config.clientCertFile === undefined ? 'clientCertFile' : 'clientKeyFile'], message: 'KESSAI_CLIENT_CERT_FILE and KESSAI_CLIENT_KEY_FILE go together' });
  },
);
export type AuthEnvConfig = z.infer<typeof authSchema.schema>;

/** The bank's description: the keys of `bankDescription` (apps/settlement-server/src/bank.ts, one home), as KESSAI_BANK_* or KESSAI_BANK_FILE keys. */
const bank = bankDescription.shape;

export const settlementSchema = roleSchema(
  'settlement',
  {
    ...common,
    bankFile: filePath.optional(),
    bankId: bank.id,
    bankName: bank.name,
    // The broker routes by card range (KESSAI_ISSUERS) and the directory lists them; the bank itself does not need them.
    bankCardRanges: bank.cardRanges.optional(),
    bankConversionMode: bank.conversionMode,
    bankCipher2: bank.cipher2.default('ECDH-ES+A256KW'),
    bankHoldTimeoutSeconds: bank.holdTimeoutSeconds,
    bankFees: bank.fees,
    bankBusinessDayTimeZone: bank.businessDayTimeZone,
    brokerCertFingerprints: z.array(fingerprint).min(1).max(20),
    merchantsFile: filePath.optional(),
    credentialsPerCardMax: z.number().int().positive().max(limits.configCredentialsPerCardMax).optional(),
    expiryIntervalMs: z.number().int().nonnegative().optional(),
  },
  { bankHoldTimeoutSeconds: 'int', bankCardRanges: 'csv', bankFees: 'json', brokerCertFingerprints: 'csv', credentialsPerCardMax: 'int', expiryIntervalMs: 'int' },
  checkCommon,
  [{ key: 'bankFile', prefix: 'bank' }],
);
export type SettlementEnvConfig = z.infer<typeof settlementSchema.schema>;

export const shopSchema = roleSchema(
  'shop',
  {
    ...common,
    authUrl: httpsUrl,
    merchantApiKeyFile: filePath,
    webhookSecretsFile: filePath,
    issuerJwks: z.record(z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/), httpsUrl).refine((issuers) => Object.keys(issuers).length > 0, 'must name at least one issuer'),
    autoCapture: z.boolean().default(true),
    workerIntervalMs: z.number().int().nonnegative().optional(),
  },
  { issuerJwks: 'json', autoCapture: 'bool', workerIntervalMs: 'int' },
  checkCommon,
);
export type ShopEnvConfig = z.infer<typeof shopSchema.schema>;

export const walletHostSchema = roleSchema(
  'wallet-host',
  {
    ...common,
    authUrl: httpsUrl,
    directoryKeyFile: filePath,
  },
  {},
  (config, ctx) => {
    // The wallet host keeps no database and no keys: only a public URL to derive.
    if (config.publicBaseUrl === undefined && wildcardHosts.has(config.host)) ctx.addIssue({ code: 'custom', path: ['publicBaseUrl'], message: `required when KESSAI_HOST is ${config.host} (the URL others reach this server by)` });
  },
);
export type WalletHostEnvConfig = z.infer<typeof walletHostSchema.schema>;
