/**
 * One authentication server (role 30) as its own OS process, so several can run on one
 * PostgreSQL database (the push channel then goes through LISTEN/NOTIFY, push.ts).
 *
 *   tsx apps/auth-server/src/main.ts <config.json>      (or KESSAI_AUTH_CONFIG=<config.json>)
 *
 * The JSON file names the database (or AUTH_DATABASE_URL), the data folder laid out as
 * `kessai start` makes it (pki/ with the auth-server certificate, auth/keys/ with cipher 1 and the
 * request-signing key: every instance must share them), the port, the settlement servers, the
 * merchants and the signed issuer directory file it relays to terminals. Once listening it prints one JSON line `{"listening":"https://…","pid":…}` on stdout;
 * SIGTERM or SIGINT drains it (process-main.ts; KESSAI_DRAIN_READINESS_DELAY_MS and
 * KESSAI_DRAIN_TIMEOUT_MS shorten the drain's limits).
 */
import { readFile } from 'node:fs/promises';
import { KessaiError } from '@kessai/protocol';
import path from 'node:path';
import { createLogger, loadOrCreateDevPki, loadOrCreateKeyRing, openDb, reservePort, serveUntilSignalled, drainOptionsFromEnv, type DbTimeouts, type DrainOptions, type LoadSheddingConfig, type RateLimitConfig } from '@kessai/service';
import { buildAuthServer } from './app.ts';
import type { IssuerRoute, MerchantSeed } from './config.ts';

interface MainConfig {
  databaseUrl?: string;
  dataDir: string;
  host?: string;
  port?: number;
  /** Default: https://<host>:<port actually bound>. */
  publicBaseUrl?: string;
  issuers: IssuerRoute[];
  merchants: MerchantSeed[];
  workerIntervalMs?: number;
  authorizationDeadlineMs?: number;
  operatorToken?: string;
  /** Name of the log file under <dataDir>/logs (default auth-server-<pid>). */
  logName?: string;
  poolSizeMax?: number;
  /** PostgreSQL timeouts shorter than limits.ts (db…Ms), for tests that watch a database fault; production leaves them out. */
  dbTimeouts?: Partial<DbTimeouts>;
  /** Rate limits other than limits.rateLimits (the benchmark raises them). */
  rateLimits?: RateLimitConfig;
  /** Server-Timing headers (server-timing.ts), for the benchmark. */
  serverTiming?: boolean;
  /** In-flight limits per work class other than limits.inFlightMax (a larger machine, measured with `npm run bench -- --overload`). */
  loadShedding?: LoadSheddingConfig;
  /** The signed issuer directory this server relays (default <dataDir>/directory/directory.jws, written by the directory's operator). */
  directoryFile?: string;
}

const file = process.argv[2] ?? process.env.KESSAI_AUTH_CONFIG;
if (!file) {
  console.error('usage: main.ts <config.json> (or KESSAI_AUTH_CONFIG)');
  process.exit(2);
}
const options = JSON.parse(await readFile(file, 'utf8')) as MainConfig;
let drainOptions: DrainOptions;
try {
  drainOptions = drainOptionsFromEnv(process.env);
} catch (err) {
  console.error(`auth-server: ${(err as Error).message}`);
  process.exit(2);
}
const databaseUrl = options.databaseUrl ?? process.env.AUTH_DATABASE_URL;
const dataDir = path.resolve(options.dataDir);
const host = options.host ?? '127.0.0.1';
const directoryFile = options.directoryFile ?? path.join(dataDir, 'directory', 'directory.jws');
const pki = await loadOrCreateDevPki(path.join(dataDir, 'pki'), [{ name: 'auth-server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usages: ['server', 'client'] }]);
const leaf = pki.leaves['auth-server']!;
const db = await openDb(databaseUrl ? { url: databaseUrl, ...(options.poolSizeMax ? { poolSizeMax: options.poolSizeMax } : {}), ...(options.dbTimeouts ? { timeouts: options.dbTimeouts } : {}) } : { dataDir: path.join(dataDir, 'auth', 'db') });
const logger = createLogger({ name: 'auth-server', file: path.join(dataDir, 'logs', `${options.logName ?? `auth-server-${process.pid}`}.log`) });
const keys = await loadOrCreateKeyRing(path.join(dataDir, 'auth', 'keys'), [
  { name: 'cipher1', use: 'enc' },
  { name: 'request-signing', use: 'sig' },
]);
// The public URL goes into the config (payment links, jwks URL): port 0 is reserved first and held until the server listens.
const reservation = await reservePort(host, options.port);
const port = reservation.port;
const publicBaseUrl = options.publicBaseUrl ?? `https://${host}:${port}`;
const { app } = await buildAuthServer(
  Object.freeze({
    db,
    logger,
    keys,
    publicBaseUrl,
    issuers: options.issuers,
    merchants: options.merchants,
    // Read at each request: the directory's operator replaces the file when an issuer's keys change.
    directory: () => readFile(directoryFile, 'utf8').then((text) => text.trim()).catch(() => Promise.reject(new KessaiError('issuer_unavailable', 'no issuer directory to relay'))),
    tls: { keyPem: leaf.keyPem, certPem: leaf.certPem, caCertPem: pki.caCertPem },
    clientTls: { certPem: leaf.certPem, keyPem: leaf.keyPem },
    ...(options.workerIntervalMs ? { workerIntervalMs: options.workerIntervalMs } : {}),
    ...(options.authorizationDeadlineMs ? { authorizationDeadlineMs: options.authorizationDeadlineMs } : {}),
    ...(options.operatorToken ? { operatorToken: options.operatorToken } : {}),
    ...(options.rateLimits ? { rateLimits: options.rateLimits } : {}),
    ...(options.loadShedding ? { loadShedding: options.loadShedding } : {}),
    ...(options.serverTiming ? { serverTiming: true } : {}),
  }),
);
await reservation.release();
await app.listen({ port, host });
serveUntilSignalled(`https://${host}:${port}`, { app, db, logger }, drainOptions);
