/**
 * The chaos test's shop as its own OS process, so the test can SIGKILL it: the real buildShop (its
 * webhook receiver, fulfilment, auto-capture and reconciler) on the database, port and keys a JSON
 * config file names (the path is the first argument). Prints `{"listening":…}` once it accepts
 * connections (test/support/processes.ts waits for that line); SIGTERM stops it cleanly. Running
 * the shop as a service of its own is `kessai serve shop` (not yet built); this entry is for tests.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { buildShop } from '@kessai/shop';
import { createLogger, loadOrCreateDevPki, loadTestRateLimits, openDb, serveUntilSignalled, drainOptionsFromEnv } from '@kessai/service';

interface ShopProcessConfig {
  dataDir: string;
  databaseUrl: string;
  port: number;
  authBaseUrl: string;
  merchantApiKey: string;
  webhookSecret: string;
  issuers: Record<string, string>;
}

const config = JSON.parse(await readFile(process.argv[2]!, 'utf8')) as ShopProcessConfig;
const pki = await loadOrCreateDevPki(path.join(config.dataDir, 'pki'), [{ name: 'shop', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usages: ['server'] }]);
const leaf = pki.leaves.shop!;
const logger = createLogger({ name: 'shop', file: path.join(config.dataDir, 'logs', `shop-${process.pid}.log`) });
const db = await openDb({ url: config.databaseUrl });
const url = `https://127.0.0.1:${config.port}`;
const shop = await buildShop(
  Object.freeze({
    logger,
    db,
    merchantApiKey: config.merchantApiKey,
    authBaseUrl: config.authBaseUrl,
    caCertPem: pki.caCertPem,
    webhookSecrets: [config.webhookSecret],
    issuers: config.issuers,
    autoCapture: true,
    publicBaseUrl: url,
    tls: { keyPem: leaf.keyPem, certPem: leaf.certPem, caCertPem: pki.caCertPem },
    rateLimits: loadTestRateLimits,
  }),
);
await shop.app.listen({ port: config.port, host: '127.0.0.1' });
serveUntilSignalled(url, { app: shop, operations: shop.app.operations, db, logger }, drainOptionsFromEnv(process.env));
