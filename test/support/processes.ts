/**
 * Roles as their own OS processes for the tests, each `kessai serve <role>` (support/serve.ts)
 * configured from environment variables only. `roleEnv` lays out a data folder as `kessai start`
 * makes it — the development CA and leaves in `<dataDir>/pki`, each role's keys, database and
 * operator token under `<dataDir>/<role>` — and writes the files the role's variables point at;
 * for a demo issuer it imports the demo cards into an empty account store first, as an operator
 * would before starting the bank. startInstance waits for the `{"listening":…}` line;
 * stopInstance sends SIGTERM (SIGKILL after 5 s).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createServer } from 'node:net';
import { certificateFingerprint, loadOrCreateDevPki, loadOrCreateOperatorToken, operatorTokenPath, type DbTimeouts, type LoadSheddingConfig, type RateLimitConfig } from '@kessai/service';
import { demoIssuers } from '@kessai/cli/demo-data';
import { directoryFileOf } from '@kessai/cli/directory';
import type { IssuerRoute, MerchantSeed } from '@kessai/auth-server';
import { pgliteFolderFromTemplate, seedBankCards, startServe, type Served, type ServeRoleName } from './serve.ts';

export type Instance = Served;

interface Common {
  /** The data folder shared by the test's roles (pki/, <role>/, logs/). */
  dataDir: string;
  databaseUrl?: string;
  host?: string;
  /** 0 or absent: any free port. */
  port?: number;
  publicBaseUrl?: string;
  operatorToken?: string;
  /** Log file `<dataDir>/logs/<logName>.log` (default `<role>-<n>`). */
  logName?: string;
  poolSizeMax?: number;
  dbTimeouts?: Partial<DbTimeouts>;
  rateLimits?: Omit<RateLimitConfig, 'now'>;
  loadShedding?: LoadSheddingConfig;
}

export interface AuthRole extends Common {
  issuers: IssuerRoute[];
  merchants: MerchantSeed[];
  workerIntervalMs?: number;
  authorizationDeadlineMs?: number;
  serverTiming?: boolean;
  /** Default `<dataDir>/directory/directory.jws` (publishDirectoryFile writes it there). */
  directoryFile?: string;
}

export interface SettlementRole extends Common {
  /** A demo issuer (apps/cli/src/demo-data.ts): its description, and its cards imported before the first start. */
  issuerId: string;
  merchants?: Array<{ id: string; name: string }>;
  credentialsPerCardMax?: number;
  holdTimeoutSeconds?: number;
  /** Default: the data folder's auth-server certificate. */
  brokerCertificates?: string[];
}

export interface ShopRole extends Common {
  authBaseUrl: string;
  merchantApiKey: string;
  webhookSecret: string;
  issuers: Record<string, string>;
}

const devLeaves = [
  { name: 'auth-server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usages: ['server', 'client'] as Array<'server' | 'client'> },
  { name: 'settlement-server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usages: ['server'] as Array<'server' | 'client'> },
  { name: 'shop', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usages: ['server'] as Array<'server' | 'client'> },
];

let logCount = 0;

/** The variables of one role, its files written under `<dataDir>/<folder>`. */
async function commonEnv(role: ServeRoleName, folder: string, leafName: string, options: Common, fileKeys: Record<string, unknown>): Promise<Record<string, string>> {
  const dataDir = path.resolve(options.dataDir);
  const roleDir = path.join(dataDir, folder);
  const tlsDir = path.join(roleDir, 'tls');
  await mkdir(tlsDir, { recursive: true, mode: 0o700 });
  const pki = await loadOrCreateDevPki(path.join(dataDir, 'pki'), devLeaves);
  const leaf = pki.leaves[leafName]!;
  const write = async (name: string, content: string) => {
    const file = path.join(roleDir, name);
    await writeFile(file, content, { mode: 0o600 });
    return file;
  };
  if (!options.databaseUrl) await pgliteFolderFromTemplate(path.join(roleDir, 'db'));
  const [certFile, keyFile, caFile] = await Promise.all([write('tls/cert.pem', leaf.certPem), write('tls/key.pem', leaf.keyPem), write('tls/ca.pem', pki.caCertPem)]);
  const tokenFile = options.operatorToken !== undefined ? await write('operator-token', `${options.operatorToken}\n`) : (await loadOrCreateOperatorToken(dataDir, folder), operatorTokenPath(dataDir, folder));
  const tuning = Object.fromEntries(Object.entries({ poolSizeMax: options.poolSizeMax, dbTimeouts: options.dbTimeouts, rateLimits: options.rateLimits, loadShedding: options.loadShedding, ...fileKeys }).filter(([, value]) => value !== undefined));
  return {
    KESSAI_HOST: options.host ?? '127.0.0.1',
    KESSAI_PORT: String(options.port ?? 0),
    ...(options.publicBaseUrl ? { KESSAI_PUBLIC_BASE_URL: options.publicBaseUrl } : {}),
    KESSAI_TLS_CERT_FILE: certFile,
    KESSAI_TLS_KEY_FILE: keyFile,
    KESSAI_TLS_CA_FILE: caFile,
    KESSAI_DATA_DIR: roleDir,
    ...(options.databaseUrl ? { KESSAI_DATABASE_URL: options.databaseUrl } : {}),
    KESSAI_OPERATOR_TOKEN_FILE: tokenFile,
    KESSAI_LOG_FILE: path.join(dataDir, 'logs', `${options.logName ?? `${role}-${++logCount}`}.log`),
    ...(Object.keys(tuning).length > 0 ? { KESSAI_CONFIG_FILE: await write(`${role}-config.json`, JSON.stringify(tuning)) } : {}),
  };
}

/** An authentication server's variables: keys in `<dataDir>/auth/keys` (shared by every instance on this data folder). */
export async function authEnv(options: AuthRole): Promise<Record<string, string>> {
  const env = await commonEnv('auth', 'auth', 'auth-server', options, { workerIntervalMs: options.workerIntervalMs, authorizationDeadlineMs: options.authorizationDeadlineMs, serverTiming: options.serverTiming });
  const merchants = path.join(env.KESSAI_DATA_DIR!, 'merchants.json');
  await writeFile(merchants, JSON.stringify(options.merchants), { mode: 0o600 });
  return { ...env, KESSAI_ISSUERS: JSON.stringify(options.issuers), KESSAI_DIRECTORY_FILE: options.directoryFile ?? directoryFileOf(path.resolve(options.dataDir)), KESSAI_MERCHANTS_FILE: merchants };
}

/** A demo issuer's settlement server: its variables, and its demo cards imported into an empty account store. */
export async function settlementEnv(options: SettlementRole): Promise<Record<string, string>> {
  const issuer = demoIssuers.find((i) => i.id === options.issuerId);
  if (!issuer) throw new TypeError(`not a demo issuer: ${options.issuerId}`);
  const env = await commonEnv('settlement', `settlement-${issuer.id}`, 'settlement-server', options, { credentialsPerCardMax: options.credentialsPerCardMax, bankHoldTimeoutSeconds: options.holdTimeoutSeconds });
  const pki = await loadOrCreateDevPki(path.join(path.resolve(options.dataDir), 'pki'), devLeaves);
  const merchants = path.join(env.KESSAI_DATA_DIR!, 'merchants.json');
  await writeFile(merchants, JSON.stringify(options.merchants ?? []), { mode: 0o600 });
  const full = {
    ...env,
    KESSAI_BANK_ID: issuer.id,
    KESSAI_BANK_NAME: issuer.name,
    KESSAI_BANK_CONVERSION_MODE: issuer.conversionMode,
    KESSAI_BANK_CIPHER2: issuer.cipher2,
    KESSAI_BROKER_CERT_FINGERPRINTS: (options.brokerCertificates ?? [certificateFingerprint(pki.leaves['auth-server']!.certPem)]).join(','),
    KESSAI_MERCHANTS_FILE: merchants,
  };
  await seedBankCards(full, issuer.cards);
  return full;
}

/** The reference shop's variables. */
export async function shopEnv(options: ShopRole): Promise<Record<string, string>> {
  const env = await commonEnv('shop', 'shop', 'shop', options, {});
  const dir = env.KESSAI_DATA_DIR!;
  await writeFile(path.join(dir, 'api-key'), `${options.merchantApiKey}\n`, { mode: 0o600 });
  await writeFile(path.join(dir, 'webhook-secrets'), `${options.webhookSecret}\n`, { mode: 0o600 });
  return { ...env, KESSAI_AUTH_URL: options.authBaseUrl, KESSAI_MERCHANT_API_KEY_FILE: path.join(dir, 'api-key'), KESSAI_WEBHOOK_SECRETS_FILE: path.join(dir, 'webhook-secrets'), KESSAI_ISSUER_JWKS: JSON.stringify(options.issuers) };
}

/** Starts `kessai serve <role>` with `env` and waits for its `listening` line. */
export async function startInstance(role: ServeRoleName, env: Record<string, string>): Promise<Instance> {
  return startServe(role, env);
}

/** SIGTERM, then SIGKILL if it has not exited within 5 s; resolves to its exit code (null if killed). */
export async function stopInstance(instance: Instance | undefined): Promise<number | null> {
  if (!instance) return null;
  return instance.stop('SIGTERM', 5_000);
}

export { freePort } from '@kessai/service';

/**
 * Holds a killed server's port until it is started again (`release()` just before): other tests
 * running meanwhile take free ports for their own processes, and one could take this one. A
 * connection made to it meanwhile is closed at once, as a refused one would be.
 */
export async function holdPort(port: number, host = '127.0.0.1'): Promise<{ release(): Promise<void> }> {
  const holder = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => holder.once('error', reject).listen(port, host, resolve));
  return { release: () => new Promise<void>((done) => holder.close(() => done())) };
}
