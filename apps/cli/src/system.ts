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
import type { SettlementConfig } from '@kessai/settlement-server';
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

export async function startSystem(options: SystemOptions) {
  const host = options.host ?? '127.0.0.1';
  const issuers = options.issuers ?? demoIssuers;
  const dataDir = path.resolve(options.dataDir);
  const url = (port: number) => `https://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`;
  const pki: DevPki = await loadOrCreateDevPki(path.join(dataDir, 'pki'), [
    { name: 'auth-server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usages: ['server', 'client'] },
    { name: 'settlement-server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usages: ['server'] },
    { name: 'shop', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usages: ['server'] },
    { name: 'wallet', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usages: ['server'] },
  ]);
  const tlsOf = (name: string) => {
    const leaf = pki.leaves[name];
    if (!leaf) throw new Error(`no certificate for ${name}`);
    return { keyPem: leaf.keyPem, certPem: leaf.certPem, caCertPem: pki.caCertPem };
  };
  const loggers: Logger[] = [];
  const logger = (name: string) => {
    const created = createLogger({ name, file: path.join(dataDir, 'logs', `${name}.log`), stdout: options.stdoutLogs ?? false });
    loggers.push(created);
    return created;
  };
  // Each role its own operator token (DESIGN.md §1): the bank's operator holds one the broker does not.
  const operatorTokens = {
    auth: await loadOrCreateOperatorToken(dataDir, 'auth'),
    shop: await loadOrCreateOperatorToken(dataDir, 'shop'),
    issuers: Object.fromEntries(await Promise.all(issuers.map(async (i) => [i.id, await loadOrCreateOperatorToken(dataDir, `settlement-${i.id}`)] as const))) as Record<string, string>,
  };
  const closers: Array<() => Promise<void>> = [];

  const reserved = {
    auth: await reservePort(host, options.ports?.auth),
    shop: await reservePort(host, options.ports?.shop),
    wallet: await reservePort(host, options.ports?.wallet),
    issuers: Object.fromEntries(await Promise.all(issuers.map(async (i) => [i.id, await reservePort(host, options.ports?.issuers[i.id])] as const))),
  };
  const releaseAll = () => Promise.all([reserved.auth, reserved.shop, reserved.wallet, ...Object.values(reserved.issuers)].map((r) => r.release()));
  const ports = { auth: reserved.auth.port, shop: reserved.shop.port, wallet: reserved.wallet.port, issuers: Object.fromEntries(Object.entries(reserved.issuers).map(([id, r]) => [id, r.port])) };
  try {
    const merchant = await merchantSecrets(path.join(dataDir, 'shop'));
    const listen = (role: Parameters<NonNullable<SystemOptions['beforeListen']>>[0], reservation: PortReservation) => ({ host, port: reservation.port, reservation, publicBaseUrl: url(reservation.port), beforeListen: (app: { addHook: KessaiApp['addHook'] }) => options.beforeListen?.(role, app) });
    const tuning = { ...(options.rateLimits ? { rateLimits: options.rateLimits } : {}), ...(options.serverTimeouts ? { serverTimeouts: options.serverTimeouts } : {}) };
    // Settlement servers (role 40), one per issuer.
    const settlements = [];
    for (const issuer of issuers) {
      const served = await serveSettlement({
        listen: listen(`settlement-${issuer.id}`, reserved.issuers[issuer.id]!),
        database: roleDb(options.databases?.issuers?.[issuer.id], dataDir, `settlement-${issuer.id}`),
        keysDir: path.join(dataDir, `settlement-${issuer.id}`, 'keys'),
        issuerId: issuer.id,
        name: issuer.name,
        conversionMode: issuer.conversionMode,
        cipher2: issuer.cipher2,
        logger: logger(`settlement-${issuer.id}`),
        // The demo cards: seeded here only, never by `kessai serve settlement`.
        seedCards: issuer.cards,
        // The demo merchant is onboarded at every demo bank, under the name payers are shown.
        merchants: [{ id: merchant.merchantId, name: demoMerchantName }],
        ...(options.credentialsPerCardMax !== undefined ? { credentialsPerCardMax: options.credentialsPerCardMax } : {}),
        ...(options.holdTimeoutSeconds !== undefined ? { holdTimeoutSeconds: options.holdTimeoutSeconds } : {}),
        ...(options.expiryIntervalMs !== undefined ? { expiryIntervalMs: options.expiryIntervalMs } : {}),
        ...(options.settlement ? { settlement: options.settlement } : {}),
        tls: tlsOf('settlement-server'),
        // Only the authentication server's certificate may call /internal (docs/threat-model.md).
        brokerCertificates: [certificateFingerprint(tlsOf('auth-server').certPem)],
        operatorToken: operatorTokens.issuers[issuer.id]!,
        ...tuning,
        ...(options.loadShedding?.settlement ? { loadShedding: options.loadShedding.settlement } : {}),
      });
      closers.push(served.close);
      settlements.push({ issuer, config: served.parts.config, app: served.app, url: served.url });
    }

    // The directory (the scheme operator's role, played here): signed from the issuers' current keys.
    const directoryKey = await loadOrCreateDirectoryKey(dataDir);
    const directory = new DirectorySigner(directoryKey, settlements.map((s) => ({ issuer: s.issuer, keys: s.config.keys })));

    // Authentication server (role 30).
    const authTls = tlsOf('auth-server');
    const authServed = await serveAuth({
      listen: listen('auth-server', reserved.auth),
      database: roleDb(options.databases?.auth, dataDir, 'auth'),
      keysDir: path.join(dataDir, 'auth', 'keys'),
      logger: logger('auth-server'),
      issuers: settlements.map((s) => ({ id: s.issuer.id, baseUrl: s.url, cardPrefixes: s.issuer.cardPrefixes })),
      merchants: [{ id: merchant.merchantId, name: demoMerchantName, apiKey: merchant.apiKey, webhookSecret: merchant.webhookSecret, webhookUrl: `${url(ports.shop)}/webhooks/kessai` }],
      directory: () => directory.current(),
      walletOrigins: [url(ports.wallet)],
      walletUrl: `${url(ports.wallet)}/wallet/`,
      tls: authTls,
      clientTls: { certPem: authTls.certPem, keyPem: authTls.keyPem },
      ...(options.workerIntervalMs ? { workerIntervalMs: options.workerIntervalMs } : {}),
      ...(options.authorizationDeadlineMs ? { authorizationDeadlineMs: options.authorizationDeadlineMs } : {}),
      ...(options.sseHeartbeatMs ? { sseHeartbeatMs: options.sseHeartbeatMs } : {}),
      operatorToken: operatorTokens.auth,
      ...tuning,
      ...(options.loadShedding?.auth ? { loadShedding: options.loadShedding.auth } : {}),
    });
    closers.push(authServed.close);
    const { db: authDb, ...auth } = authServed.parts;

    // The shop (role 50).
    const shopServed = await serveShop({
      listen: listen('shop', reserved.shop),
      database: roleDb(options.databases?.shop, dataDir, 'shop'),
      logger: logger('shop'),
      merchantApiKey: merchant.apiKey,
      authBaseUrl: url(ports.auth),
      caCertPem: pki.caCertPem,
      webhookSecrets: [merchant.webhookSecret, ...(merchant.previousWebhookSecrets ?? [])],
      issuers: Object.fromEntries(settlements.map((s) => [s.issuer.id, `${s.url}/.well-known/jwks.json`])),
      autoCapture: true,
      tls: tlsOf('shop'),
      operatorToken: operatorTokens.shop,
      ...tuning,
      ...(options.loadShedding?.shop ? { loadShedding: options.loadShedding.shop } : {}),
    });
    closers.push(shopServed.close);
    const { db: shopDb, ...shop } = shopServed.parts;

    // The browser wallet's own origin (role 10 in the browser): its pages and the directory key built in.
    const walletServed = await serveWalletHost({ listen: listen('wallet', reserved.wallet), logger: logger('wallet'), tls: tlsOf('wallet'), authBaseUrl: url(ports.auth), directoryKey: directoryKey.publicJwk, ...tuning });
    closers.push(walletServed.close);
    const walletHost = walletServed.app;

    const close = async () => {
      for (const closer of closers.reverse()) await closer().catch(() => undefined);
      for (const l of loggers) l.flush?.();
    };
    return {
      dataDir,
      pki,
      operatorTokens,
      merchant,
      directoryKey,
      auth: { ...auth, db: authDb, url: url(ports.auth) },
      settlements,
      shop: { ...shop, db: shopDb, url: url(ports.shop) },
      wallet: { app: walletHost, url: url(ports.wallet) },
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
