/**
 * One entry function per role: builds the server from a validated configuration and returns it
 * listening. `kessai serve <role>` calls them with what it read from the environment (resolve.ts);
 * `kessai start` (system.ts) calls the same functions in one process with the development PKI.
 */
// Each role's app is imported when that role is served: a process loads its own role only.
import type { AuthConfig, buildAuthServer } from '@kessai/auth-server';
import type { SettlementConfig } from '@kessai/settlement-server';
import type { buildShop, ShopConfig } from '@kessai/shop';
import type { WalletHostConfig } from '@kessai/wallet';
import { loadOrCreateKeyRing, openDb, reservePort, type Db, type DbTimeouts, type KessaiApp, type PortReservation } from '@kessai/service';
import type { KeyManagementAlgorithm } from '@kessai/protocol';

/** Where a role's database lives: a PostgreSQL URL, a PGlite folder, or (tests) a PGlite template to clone. */
export type DbSource = { url: string; poolSizeMax?: number; timeouts?: Partial<DbTimeouts> } | { pgliteTemplate: Blob } | { dataDir: string };

export interface Listen {
  host: string;
  /** 0: any free port. */
  port: number;
  /** A port already reserved by the caller (kessai start reserves every role's port first); released just before listening. */
  reservation?: PortReservation;
  /** The URL others reach this server by; default https://<host>:<port>. */
  publicBaseUrl?: string;
  /** Called with the server before it listens (tests add hooks to watch what crosses the wire). */
  beforeListen?: (app: { addHook: KessaiApp['addHook'] }) => void;
}

export interface Served<T> {
  app: KessaiApp;
  /** The public base URL. */
  url: string;
  parts: T;
  /** Closes the server, then its database. */
  close(): Promise<void>;
}

export function openRoleDb(source: DbSource): Promise<Db> {
  if ('url' in source) return openDb({ url: source.url, ...(source.poolSizeMax ? { poolSizeMax: source.poolSizeMax } : {}), ...(source.timeouts ? { timeouts: source.timeouts } : {}) });
  if ('pgliteTemplate' in source) return openDb({ pgliteTemplate: source.pgliteTemplate });
  return openDb({ dataDir: source.dataDir });
}

const wildcard = new Set(['0.0.0.0', '::', '[::]']);

/** Reserves the port, works out the public URL, opens the database; on a failure, undoes what it did. */
async function prepare(listen: Listen, database: DbSource | undefined): Promise<{ reservation: PortReservation; url: string; db: Db | undefined }> {
  const reservation = listen.reservation ?? (await reservePort(listen.host, listen.port === 0 ? undefined : listen.port));
  const urlHost = wildcard.has(listen.host) ? '127.0.0.1' : listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  const url = (listen.publicBaseUrl ?? `https://${urlHost}:${reservation.port}`).replace(/\/+$/, '');
  try {
    return { reservation, url, db: database ? await openRoleDb(database) : undefined };
  } catch (err) {
    await reservation.release();
    throw err;
  }
}

async function listenOn(app: KessaiApp, listen: Listen, reservation: PortReservation): Promise<void> {
  listen.beforeListen?.(app);
  await reservation.release();
  await app.listen({ port: reservation.port, host: listen.host });
}

async function failed(reservation: PortReservation, db: Db | undefined, err: unknown): Promise<never> {
  await reservation.release().catch(() => undefined);
  await db?.close().catch(() => undefined);
  throw err;
}

export interface ServeAuthConfig extends Omit<AuthConfig, 'db' | 'keys' | 'publicBaseUrl'> {
  listen: Listen;
  database: DbSource;
  /** cipher 1 and the request-signing key (created there on first start; every instance of one broker shares them). */
  keysDir: string;
}

/** The authentication server (role 30). */
export async function serveAuth(config: ServeAuthConfig): Promise<Served<Awaited<ReturnType<typeof buildAuthServer>> & { db: Db }>> {
  const { reservation, url, db } = await prepare(config.listen, config.database);
  try {
    const keys = await loadOrCreateKeyRing(config.keysDir, [
      { name: 'cipher1', use: 'enc' },
      { name: 'request-signing', use: 'sig' },
    ]);
    const { listen: _listen, database: _database, keysDir: _keysDir, ...rest } = config;
    const { buildAuthServer } = await import('@kessai/auth-server');
    const built = await buildAuthServer(Object.freeze({ ...rest, db: db!, keys, publicBaseUrl: url }));
    await listenOn(built.app, config.listen, reservation);
    return { app: built.app, url, parts: { ...built, db: db! }, close: async () => { await built.app.close().catch(() => undefined); await db!.close().catch(() => undefined); } };
  } catch (err) {
    return failed(reservation, db, err);
  }
}

export interface ServeSettlementConfig extends Omit<SettlementConfig, 'db' | 'keys' | 'cardKeys' | 'publicBaseUrl'> {
  listen: Listen;
  database: DbSource;
  /** Cipher 2's algorithm (the key is made for it on first start). */
  cipher2: KeyManagementAlgorithm;
  /** cipher 2, the authorization-signing key and the card vault's keys (every instance of one bank shares them). */
  keysDir: string;
}

/** A settlement server (role 40): one bank. */
export async function serveSettlement(config: ServeSettlementConfig): Promise<Served<{ config: SettlementConfig; db: Db }>> {
  const { reservation, url, db } = await prepare(config.listen, config.database);
  try {
    const { listen: _listen, database: _database, keysDir, cipher2, ...rest } = config;
    const { buildSettlementServer, loadOrCreateCardKeys } = await import('@kessai/settlement-server');
    const settlementConfig: SettlementConfig = Object.freeze({
      ...rest,
      db: db!,
      publicBaseUrl: url,
      keys: await loadOrCreateKeyRing(keysDir, [
        { name: 'cipher2', use: 'enc', alg: cipher2 },
        { name: 'authorization-signing', use: 'sig' },
      ]),
      cardKeys: await loadOrCreateCardKeys(keysDir),
    });
    const app = await buildSettlementServer(settlementConfig);
    await listenOn(app, config.listen, reservation);
    return { app, url, parts: { config: settlementConfig, db: db! }, close: async () => { await app.close().catch(() => undefined); await db!.close().catch(() => undefined); } };
  } catch (err) {
    return failed(reservation, db, err);
  }
}

export interface ServeShopConfig extends Omit<ShopConfig, 'db' | 'publicBaseUrl'> {
  listen: Listen;
  database: DbSource;
}

/** The reference shop (role 50). */
export async function serveShop(config: ServeShopConfig): Promise<Served<Awaited<ReturnType<typeof buildShop>> & { db: Db }>> {
  const { reservation, url, db } = await prepare(config.listen, config.database);
  try {
    const { listen: _listen, database: _database, ...rest } = config;
    const { buildShop } = await import('@kessai/shop');
    const shop = await buildShop(Object.freeze({ ...rest, db: db!, publicBaseUrl: url }));
    await listenOn(shop.app, config.listen, reservation);
    return { app: shop.app, url, parts: { ...shop, db: db! }, close: async () => { await shop.close().catch(() => undefined); await db!.close().catch(() => undefined); } };
  } catch (err) {
    return failed(reservation, db, err);
  }
}

export interface ServeWalletHostConfig extends WalletHostConfig {
  listen: Listen;
}

/** The browser wallet's own origin (role 10 in a browser): its pages and the directory key built in. */
export async function serveWalletHost(config: ServeWalletHostConfig): Promise<Served<Record<string, never>>> {
  const { reservation, url } = await prepare(config.listen, undefined);
  try {
    const { listen: _listen, ...rest } = config;
    const { buildWalletHost } = await import('@kessai/wallet');
    const app = await buildWalletHost(Object.freeze(rest));
    await listenOn(app, config.listen, reservation);
    return { app, url, parts: {}, close: async () => { await app.close().catch(() => undefined); } };
  } catch (err) {
    return failed(reservation, undefined, err);
  }
}
