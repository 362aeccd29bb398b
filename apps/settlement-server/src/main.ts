/**
 * One settlement server (role 40) as its own OS process: one issuer per process, so two banks can
 * sit behind one authentication server (routed by card range) and each can be stopped alone.
 *
 *   tsx apps/settlement-server/src/main.ts <config.json>      (or KESSAI_SETTLEMENT_CONFIG=<config.json>)
 *
 * The JSON names a demo issuer by id (apps/cli/src/demo-data.ts: its name, conversion mode, cipher
 * 2 algorithm and seed cards; a full issuer description is not accepted yet, the seed balances are
 * bigints), the database (or <ISSUER_ID>_DATABASE_URL, else PGlite under the data folder), the data
 * folder laid out as `kessai start` makes it (pki/, settlement-<issuer>/keys/) and the port (0: a
 * free one, reserved before the server is built and held until it listens). Once listening it prints one JSON line
 * `{"listening":"https://…","pid":…}` on stdout; SIGTERM or SIGINT drains it (process-main.ts; KESSAI_DRAIN_READINESS_DELAY_MS
 * and KESSAI_DRAIN_TIMEOUT_MS shorten the drain's limits). A missing or invalid
 * config exits with code 2.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { limits } from '@kessai/protocol';
import { certificateFingerprint, createLogger, loadOrCreateDevPki, loadOrCreateKeyRing, loadOrCreateOperatorToken, openDb, reservePort, serveUntilSignalled, drainOptionsFromEnv, workClasses, type DrainOptions, type RateLimitName, type WorkClass } from '@kessai/service';
import { demoIssuers } from '@kessai/cli/demo-data';
import { buildSettlementServer } from './app.ts';
import { loadOrCreateCardKeys } from './card-vault.ts';
import { issuerDatabaseEnv } from './config.ts';

const rateLimit = z.strictObject({ perMinute: z.number().positive(), burst: z.number().int().positive() });
const dbTimeoutMs = z.number().int().positive();
const mainConfig = z.strictObject({
  /** A demo issuer's id: sakura-bank or fuji-bank. */
  issuerId: z.enum(demoIssuers.map((i) => i.id) as [string, ...string[]]),
  dataDir: z.string().min(1),
  databaseUrl: z.string().min(1).optional(),
  host: z.string().min(1).optional(),
  port: z.number().int().min(0).max(65_535).optional(),
  /** Default: https://<host>:<port>. */
  publicBaseUrl: z.url().optional(),
  /** Default: the role's own `settlement-<issuer>/operator-token` in the data folder (created if missing), as `kessai start` does. */
  operatorToken: z.string().min(16).optional(),
  /** SHA-256 fingerprints of the broker certificates allowed on /internal; default: the data folder's auth-server certificate. */
  brokerCertificates: z.array(z.string().min(1)).min(1).optional(),
  /** Name of the log file under <dataDir>/logs (default settlement-<issuer>-<pid>). */
  logName: z.string().regex(/^[A-Za-z0-9._-]+$/).optional(),
  poolSizeMax: z.number().int().positive().optional(),
  /** PostgreSQL timeouts shorter than limits.ts (db…Ms), for tests that watch a database fault; production leaves them out. */
  dbTimeouts: z
    .strictObject({ connectMs: dbTimeoutMs, statementMs: dbTimeoutMs, queryMs: dbTimeoutMs, idleInTransactionMs: dbTimeoutMs, listenHeartbeatMs: dbTimeoutMs })
    .partial()
    .optional(),
  /** Merchants onboarded at start (others through the operator API, POST /admin/v1/merchants). */
  merchants: z.array(z.strictObject({ id: z.string().regex(/^mer_[0-9a-hjkmnp-tv-z]{26}$/), name: z.string().min(1).max(200) })).max(1_000).optional(),
  /** Active credentials per card (default limits.credentialsPerCardMax; the benchmark enrolls more terminals on one card). */
  credentialsPerCardMax: z.number().int().positive().optional(),
  /** How long an authorization hold lasts before it expires on its own, this bank's choice (default limits.holdTimeoutSecondsDefault, 7 days). */
  holdTimeoutSeconds: z.number().int().min(limits.holdTimeoutSecondsMin).max(limits.holdTimeoutSecondsMax).optional(),
  /** Rate limits other than limits.rateLimits (the benchmark raises them). */
  rateLimits: z
    .strictObject({
      limits: z.partialRecord(z.enum(Object.keys(limits.rateLimits) as [RateLimitName, ...RateLimitName[]]), rateLimit).optional(),
      keysMax: z.number().int().positive().optional(),
    })
    .optional(),
  /** In-flight limits per work class and the deadline budget other than limits.ts (a larger machine, measured with `npm run bench -- --overload`). */
  loadShedding: z
    .strictObject({
      inFlightMax: z.partialRecord(z.enum(workClasses as [WorkClass, ...WorkClass[]]), z.number().int().positive().max(100_000)).optional(),
      deadlineBudgetMsMin: z.number().int().nonnegative().max(limits.authorizationDeadlineMs).optional(),
    })
    .optional(),
});

function refuse(message: string): never {
  console.error(`settlement-server: ${message}`);
  process.exit(2);
}

async function readConfig(file: string | undefined): Promise<z.infer<typeof mainConfig>> {
  if (!file) refuse('usage: main.ts <config.json> (or KESSAI_SETTLEMENT_CONFIG)');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    refuse(`cannot read the config ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    refuse(`the config ${file} is not JSON`);
  }
  const parsed = mainConfig.safeParse(json);
  if (!parsed.success) refuse(`invalid config ${file}: ${z.prettifyError(parsed.error).replace(/\n/g, '; ')}`);
  return parsed.data;
}

const options = await readConfig(process.argv[2] ?? process.env.KESSAI_SETTLEMENT_CONFIG);
let drainOptions: DrainOptions = {};
try {
  drainOptions = drainOptionsFromEnv(process.env);
} catch (err) {
  refuse((err as Error).message);
}
const issuer = demoIssuers.find((i) => i.id === options.issuerId)!;
const databaseUrl = options.databaseUrl ?? process.env[issuerDatabaseEnv(issuer.id)];
const dataDir = path.resolve(options.dataDir);
const host = options.host ?? '127.0.0.1';
// The URL (jwks_uri in the metadata) is built into the server before it listens: port 0 is reserved first.
const reservation = await reservePort(host, options.port);
const port = reservation.port;
const roleDir = path.join(dataDir, `settlement-${issuer.id}`);
const pki = await loadOrCreateDevPki(path.join(dataDir, 'pki'), [
  { name: 'auth-server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usages: ['server', 'client'] },
  { name: 'settlement-server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usages: ['server'] },
]);
const leaf = pki.leaves['settlement-server']!;
const db = await openDb(databaseUrl ? { url: databaseUrl, ...(options.poolSizeMax ? { poolSizeMax: options.poolSizeMax } : {}), ...(options.dbTimeouts ? { timeouts: options.dbTimeouts } : {}) } : { dataDir: path.join(roleDir, 'db') });
const logger = createLogger({ name: `settlement-${issuer.id}`, file: path.join(dataDir, 'logs', `${options.logName ?? `settlement-${issuer.id}-${process.pid}`}.log`) });
const app = await buildSettlementServer(
  Object.freeze({
    issuerId: issuer.id,
    name: issuer.name,
    conversionMode: issuer.conversionMode,
    publicBaseUrl: options.publicBaseUrl ?? `https://${host}:${port}`,
    db,
    logger,
    keys: await loadOrCreateKeyRing(path.join(roleDir, 'keys'), [
      { name: 'cipher2', use: 'enc', alg: issuer.cipher2 },
      { name: 'authorization-signing', use: 'sig' },
    ]),
    cardKeys: await loadOrCreateCardKeys(path.join(roleDir, 'keys')),
    seedCards: issuer.cards,
    ...(options.merchants ? { merchants: options.merchants } : {}),
    ...(options.credentialsPerCardMax ? { credentialsPerCardMax: options.credentialsPerCardMax } : {}),
    ...(options.holdTimeoutSeconds ? { holdTimeoutSeconds: options.holdTimeoutSeconds } : {}),
    tls: { keyPem: leaf.keyPem, certPem: leaf.certPem, caCertPem: pki.caCertPem },
    // Only the authentication server's certificate may call /internal (docs/threat-model.md), as in `kessai start`.
    brokerCertificates: options.brokerCertificates ?? [certificateFingerprint(pki.leaves['auth-server']!.certPem)],
    operatorToken: options.operatorToken ?? (await loadOrCreateOperatorToken(dataDir, `settlement-${issuer.id}`)),
    ...(options.rateLimits ? { rateLimits: options.rateLimits } : {}),
    ...(options.loadShedding ? { loadShedding: options.loadShedding } : {}),
  }),
);
await reservation.release();
await app.listen({ port, host });
serveUntilSignalled(`https://${host}:${port}`, { app, db, logger }, drainOptions);
