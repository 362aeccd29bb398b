/**
 * Starts the whole Kessai system in this process: one authentication server, one settlement
 * server per demo issuer, the shop and the browser wallet's host — each its own Fastify server on its own port, talking to
 * the others over real HTTPS (mutual TLS between broker and issuers) with a development CA
 * generated on first start. A thin development launcher: it makes the dev PKI, the demo keys and
 * data, then calls each role's entry function (serve/roles.ts), the same ones `kessai serve` calls.
 * Used by `kessai start`, `kessai demo`, the tests and the benchmark.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { importDemoCards, type SettlementConfig } from '@kessai/settlement-server';
import { certificateFingerprint, createLogger, type KessaiApp, loadOrCreateDevPki, loadOrCreateOperatorToken, readIfExists, reservePort, writePrivateFile, type DevPki, type LoadSheddingConfig, type Logger, type PortReservation, type RateLimitConfig, type ServerTimeouts } from '@kessai/service';
import { newId } from '@kessai/protocol';
import { demoIssuers, demoMerchantName, type DemoIssuer } from './demo-data.ts';
import { DirectorySigner, loadOrCreateDirectoryKey } from './directory.ts';
import { serveAuth, serveSettlement, serveShop, serveWalletHost } from './serve/roles.ts';

export type { DbSource } from './serve/roles.ts';
import type { DbSource } from './serve/roles.ts';

export interface SystemOptions {
  dataDir: string;
  host?: string;
  /** Fixed ports, or 0 for any free port. */
  ports?: { auth: number; shop: number; wallet?: number; issuers: Record<string, number> };
  /** Where each role's database lives; default: a PGlite folder under dataDir. */
  databases?: { auth?: DbSource; shop?: DbSource; issuers?: Record<string, DbSource> };
  issuers?: DemoIssuer[];
  stdoutLogs?: boolean;
  workerIntervalMs?: number;
  /** The broker's deadline for an authorization at the issuer (default limits.authorizationDeadlineMs). */
  authorizationDeadlineMs?: number;
  /** The authentication server's event-stream keep-alive (and credential re-check) interval. */
  sseHeartbeatMs?: number;
  /** Settlement servers: authorization holds expire after this long; the expiry pass runs this often. */
  holdTimeoutSeconds?: number;
  expiryIntervalMs?: number;
  /** Settlement servers: business-day time zone, default fees, closing schedule, clock (tests move it forward). */
  settlement?: SettlementConfig['settlement'];
  /** Called with each server before it listens (tests add hooks to watch what crosses the wire). */
  beforeListen?: (role: 'auth-server' | 'shop' | 'wallet' | `settlement-${string}`, app: { addHook: KessaiApp['addHook'] }) => void;
  /** Every server's rate limits other than limits.rateLimits (tests and the benchmark raise them). */
  rateLimits?: RateLimitConfig;
  /** Settlement servers: active credentials per card other than limits.credentialsPerCardMax (the test suites enroll one card many times). */
  credentialsPerCardMax?: number;
  /** Every server's connection timeouts other than limits.ts (tests shorten them). */
  serverTimeouts?: Partial<ServerTimeouts>;
  /** Each role's in-flight limits other than limits.inFlightMax (tests shrink them). */
  loadShedding?: { auth?: LoadSheddingConfig; shop?: LoadSheddingConfig; settlement?: LoadSheddingConfig };
}

export interface MerchantSecrets {
  merchantId: string;
  apiKey: string;
  webhookSecret: string;
  /** Secrets rotated away from (`kessai keys rotate --key webhook-secret`) that the shop still accepts until they are retired. */
  previousWebhookSecrets?: string[];
}

export const defaultPorts = { auth: 8443, shop: 8446, wallet: 8447, issuers: { 'sakura-bank': 8444, 'fuji-bank': 8445 } as Record<string, number> };

async function merchantSecrets(dir: string): Promise<MerchantSecrets> {
  const file = path.join(dir, 'merchant.json');
  const stored = await readIfExists(file);
  if (stored) return JSON.parse(stored) as MerchantSecrets;
  const secrets = { merchantId: newId('mer'), apiKey: `sk_test_${randomBytes(24).toString('base64url')}`, webhookSecret: `whsec_${randomBytes(24).toString('base64url')}` };
  await writePrivateFile(file, `${JSON.stringify(secrets, null, 2)}\n`);
  return secrets;
}

/** A role's database: the one given, else a PGlite folder under the data folder. */
function roleDb(source: DbSource | undefined, dataDir: string, role: string): DbSource {
  return source ?? { dataDir: path.join(dataDir, role, 'db') };
}

type Role = Parameters<NonNullable<SystemOptions['beforeListen']>>[0];

/** What every role's start shares: the options, the folders, the development PKI, loggers, operator tokens, ports. */
interface SystemContext {
  options: SystemOptions;
  host: string;
  dataDir: string;
  pki: DevPki;
  operatorTokens: Awaited<ReturnType<typeof operatorTokensOf>>;
  reserved: Awaited<ReturnType<typeof reservePorts>>;
  loggers: Logger[];
  closers: Array<() => Promise<void>>;
  tuning: { rateLimits?: RateLimitConfig; serverTimeouts?: Partial<ServerTimeouts> };
}

const devLeaf = (name: string, usages: Array<'server' | 'client'>) => ({
  name, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usages,
});

function urlOf(ctx: Pick<SystemContext, 'host'>, port: number): string {
  return `https://${ctx.host === '0.0.0.0' ? '127.0.0.1' : ctx.host}:${port}`;
}

function tlsOf(ctx: Pick<SystemContext, 'pki'>, name: string) {
  const leaf = ctx.pki.leaves[name];
  if (!leaf) throw new Error(`no certificate for ${name}`);
  return { keyPem: leaf.keyPem, certPem: leaf.certPem, caCertPem: ctx.pki.caCertPem };
}

function loggerOf(ctx: SystemContext, name: string): Logger {
  const file = path.join(ctx.dataDir, 'logs', `${name}.log`);
  const created = createLogger({ name, file, stdout: ctx.options.stdoutLogs ?? false });
  ctx.loggers.push(created);
  return created;
}

function listenOf(ctx: SystemContext, role: Role, reservation: PortReservation) {
  const beforeListen = (app: { addHook: KessaiApp['addHook'] }) => ctx.options.beforeListen?.(role, app);
  const { port } = reservation;
  return { host: ctx.host, port, reservation, publicBaseUrl: urlOf(ctx, port), beforeListen };
}

/** Each role its own operator token: the bank's operator holds one the broker does not. */
async function operatorTokensOf(dataDir: string, issuers: readonly DemoIssuer[]) {
  const tokenOf = async (i: DemoIssuer) => [i.id, await loadOrCreateOperatorToken(dataDir, `settlement-${i.id}`)] as const;
  const perIssuer = await Promise.all(issuers.map(tokenOf));
  return {
    auth: await loadOrCreateOperatorToken(dataDir, 'auth'),
    shop: await loadOrCreateOperatorToken(dataDir, 'shop'),
    issuers: Object.fromEntries(perIssuer) as Record<string, string>,
  };
}

async function reservePorts(host: string, ports: SystemOptions['ports'], issuers: readonly DemoIssuer[]) {
  const portOf = async (i: DemoIssuer) => [i.id, await reservePort(host, ports?.issuers[i.id])] as const;
  const perIssuer = await Promise.all(issuers.map(portOf));
  return {
    auth: await reservePort(host, ports?.auth),
    shop: await reservePort(host, ports?.shop),
    wallet: await reservePort(host, ports?.wallet),
    issuers: Object.fromEntries(perIssuer),
  };
}

/**
 * Settlement servers (role 40), one per issuer, each with the demo cards imported through the bank
 * operator's own import.
 */
async function startSettlements(ctx: SystemContext, issuers: readonly DemoIssuer[], merchant: MerchantSecrets) {
  const { options, dataDir } = ctx;
  const settlements = [];
  for (const issuer of issuers) {
    const role = `settlement-${issuer.id}` as const;
    const served = await serveSettlement({
      listen: listenOf(ctx, role, ctx.reserved.issuers[issuer.id]!),
      database: roleDb(options.databases?.issuers?.[issuer.id], dataDir, role),
      keysDir: path.join(dataDir, role, 'keys'),
      issuerId: issuer.id,
      name: issuer.name,
      conversionMode: issuer.conversionMode,
      cipher2: issuer.cipher2,
      logger: loggerOf(ctx, role),
      // The demo merchant is onboarded at every demo bank, under the name payers are shown.
      merchants: [{ id: merchant.merchantId, name: demoMerchantName }],
      ...(options.credentialsPerCardMax !== undefined ? { credentialsPerCardMax: options.credentialsPerCardMax } : {}),
      ...(options.holdTimeoutSeconds !== undefined ? { holdTimeoutSeconds: options.holdTimeoutSeconds } : {}),
      ...(options.expiryIntervalMs !== undefined ? { expiryIntervalMs: options.expiryIntervalMs } : {}),
      ...(options.settlement ? { settlement: options.settlement } : {}),
      tls: tlsOf(ctx, 'settlement-server'),
      // Only the authentication server's certificate may call /internal (docs/threat-model.md).
      brokerCertificates: [certificateFingerprint(tlsOf(ctx, 'auth-server').certPem)],
      operatorToken: ctx.operatorTokens.issuers[issuer.id]!,
      ...ctx.tuning,
      ...(options.loadShedding?.settlement ? { loadShedding: options.loadShedding.settlement } : {}),
    });
    ctx.closers.push(served.close);
    // A second start finds the demo cards unchanged; `kessai serve` imports none.
    const imported = await importDemoCards(served.parts.db, served.parts.config.cardKeys, issuer.cards);
    if (imported > 0) served.parts.config.logger.info({ cards: imported }, 'demo cards imported');
    settlements.push({ issuer, config: served.parts.config, app: served.app, url: served.url });
  }
  return settlements;
}

type Settlements = Awaited<ReturnType<typeof startSettlements>>;

/** The authentication server (role 30), with the directory the scheme operator (played here) signs. */
async function startAuth(
  ctx: SystemContext, settlements: Settlements, merchant: MerchantSecrets, directory: DirectorySigner,
) {
  const { options, reserved } = ctx;
  const authTls = tlsOf(ctx, 'auth-server');
  const walletUrl = urlOf(ctx, reserved.wallet.port);
  const webhookUrl = `${urlOf(ctx, reserved.shop.port)}/webhooks/kessai`;
  const served = await serveAuth({
    listen: listenOf(ctx, 'auth-server', reserved.auth),
    database: roleDb(options.databases?.auth, ctx.dataDir, 'auth'),
    keysDir: path.join(ctx.dataDir, 'auth', 'keys'),
    logger: loggerOf(ctx, 'auth-server'),
    issuers: settlements.map((s) => ({ id: s.issuer.id, baseUrl: s.url, cardPrefixes: s.issuer.cardPrefixes })),
    merchants: [{
      id: merchant.merchantId, name: demoMerchantName, apiKey: merchant.apiKey, webhookSecret: merchant.webhookSecret, webhookUrl,
    }],
    directory: () => directory.current(),
    walletOrigins: [walletUrl],
    walletUrl: `${walletUrl}/wallet/`,
    tls: authTls,
    clientTls: { certPem: authTls.certPem, keyPem: authTls.keyPem },
    ...(options.workerIntervalMs ? { workerIntervalMs: options.workerIntervalMs } : {}),
    ...(options.authorizationDeadlineMs ? { authorizationDeadlineMs: options.authorizationDeadlineMs } : {}),
    ...(options.sseHeartbeatMs ? { sseHeartbeatMs: options.sseHeartbeatMs } : {}),
    operatorToken: ctx.operatorTokens.auth,
    ...ctx.tuning,
    ...(options.loadShedding?.auth ? { loadShedding: options.loadShedding.auth } : {}),
  });
  ctx.closers.push(served.close);
  return served.parts;
}

/** The shop (role 50). */
async function startShop(ctx: SystemContext, settlements: Settlements, merchant: MerchantSecrets) {
  const { options } = ctx;
  const served = await serveShop({
    listen: listenOf(ctx, 'shop', ctx.reserved.shop),
    database: roleDb(options.databases?.shop, ctx.dataDir, 'shop'),
    logger: loggerOf(ctx, 'shop'),
    merchantApiKey: merchant.apiKey,
    authBaseUrl: urlOf(ctx, ctx.reserved.auth.port),
    caCertPem: ctx.pki.caCertPem,
    webhookSecrets: [merchant.webhookSecret, ...(merchant.previousWebhookSecrets ?? [])],
    issuers: Object.fromEntries(settlements.map((s) => [s.issuer.id, `${s.url}/.well-known/jwks.json`])),
    autoCapture: true,
    tls: tlsOf(ctx, 'shop'),
    operatorToken: ctx.operatorTokens.shop,
    ...ctx.tuning,
    ...(options.loadShedding?.shop ? { loadShedding: options.loadShedding.shop } : {}),
  });
  ctx.closers.push(served.close);
  return served.parts;
}

/** The browser wallet's own origin (role 10 in the browser): its pages and the directory key built in. */
async function startWalletHost(ctx: SystemContext, directoryKey: Awaited<ReturnType<typeof loadOrCreateDirectoryKey>>) {
  const served = await serveWalletHost({
    listen: listenOf(ctx, 'wallet', ctx.reserved.wallet),
    logger: loggerOf(ctx, 'wallet'),
    tls: tlsOf(ctx, 'wallet'),
    authBaseUrl: urlOf(ctx, ctx.reserved.auth.port),
    directoryKey: directoryKey.publicJwk,
    ...ctx.tuning,
  });
  ctx.closers.push(served.close);
  return served.app;
}

async function systemContext(options: SystemOptions, issuers: readonly DemoIssuer[]): Promise<SystemContext> {
  const host = options.host ?? '127.0.0.1';
  const dataDir = path.resolve(options.dataDir);
  const pki = await loadOrCreateDevPki(path.join(dataDir, 'pki'), [
    devLeaf('auth-server', ['server', 'client']),
    devLeaf('settlement-server', ['server']),
    devLeaf('shop', ['server']),
    devLeaf('wallet', ['server']),
  ]);
  const operatorTokens = await operatorTokensOf(dataDir, issuers);
  const reserved = await reservePorts(host, options.ports, issuers);
  const tuning = {
    ...(options.rateLimits ? { rateLimits: options.rateLimits } : {}),
    ...(options.serverTimeouts ? { serverTimeouts: options.serverTimeouts } : {}),
  };
  return { options, host, dataDir, pki, operatorTokens, reserved, loggers: [], closers: [], tuning };
}

/**
 * Starts every role: the settlement servers first (the broker lists them), then the broker, the shop
 * and the wallet's host.
 */
export async function startSystem(options: SystemOptions) {
  const issuers = options.issuers ?? demoIssuers;
  const ctx = await systemContext(options, issuers);
  const { dataDir, reserved, closers } = ctx;
  const reservations = [reserved.auth, reserved.shop, reserved.wallet, ...Object.values(reserved.issuers)];
  const releaseAll = () => Promise.all(reservations.map((r) => r.release()));
  try {
    const merchant = await merchantSecrets(path.join(dataDir, 'shop'));
    const settlements = await startSettlements(ctx, issuers, merchant);
    // The directory (the scheme operator's role, played here): signed from the issuers' current keys.
    const directoryKey = await loadOrCreateDirectoryKey(dataDir);
    const signed = settlements.map((s) => ({ issuer: s.issuer, keys: s.config.keys }));
    const directory = new DirectorySigner(directoryKey, signed);
    const { db: authDb, ...auth } = await startAuth(ctx, settlements, merchant, directory);
    const { db: shopDb, ...shop } = await startShop(ctx, settlements, merchant);
    const walletHost = await startWalletHost(ctx, directoryKey);
    const close = async () => {
      for (const closer of closers.reverse()) await closer().catch(() => undefined);
      for (const l of ctx.loggers) l.flush?.();
    };
    return {
      dataDir,
      pki: ctx.pki,
      operatorTokens: ctx.operatorTokens,
      merchant,
      directoryKey,
      auth: { ...auth, db: authDb, url: urlOf(ctx, reserved.auth.port) },
      settlements,
      shop: { ...shop, db: shopDb, url: urlOf(ctx, reserved.shop.port) },
      wallet: { app: walletHost, url: urlOf(ctx, reserved.wallet.port) },
      logFiles: { auth: path.join(dataDir, 'logs', 'auth-server.log'), shop: path.join(dataDir, 'logs', 'shop.log') },
      close,
    };
  } catch (err) {
    await releaseAll();
    for (const closer of closers.reverse()) await closer().catch(() => undefined);
    throw err;
  }
}

export type KessaiSystem = Awaited<ReturnType<typeof startSystem>>;
