/**
 * The reference e-shop (role 50) as a Fastify app built from a frozen config: a catalogue, carts,
 * checkout into a payment request (steps 401–402), and fulfilment on the issuer's verified
 * authorization (steps 408–409), learnt from signed webhooks or by polling. It stores no personal
 * data of the payer. The caller listens; tests call it with inject().
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { apiKeyLivemode, limits } from '@kessai/protocol';
import { AuthorizationVerifier, MerchantClient } from '@kessai/sdk';
import {
  byAddress,
  classifyWork,
  createRateLimiters,
  createServer,
  registerOpenApi,
  migrationsReadiness,
  prepareSchema,
  rateLimitHook,
  registerWebPages,
  setUpAuditLog,
  shedLoad,
  type Db,
  type KessaiApp,
} from '@kessai/service';
import { seedCatalogue } from './catalogue.ts';
import { defineShopConfig, type ResolvedShopConfig, type ShopConfig } from './config.ts';
import { Fulfilment } from './fulfilment.ts';
import { reconcileOrders } from './reconciler.ts';
import { registerCartRoutes } from './routes/carts.ts';
import { registerCheckoutRoute } from './routes/checkout.ts';
import { registerOrderRoutes } from './routes/orders.ts';
import { registerProductRoutes } from './routes/products.ts';
import { registerSettlementRoutes } from './routes/settlements.ts';
import { registerWebhookRoute } from './routes/webhooks.ts';

export const migrationsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'migrations');

/** What the routes share. */
export interface ShopContext {
  config: ResolvedShopConfig;
  db: Db;
  merchant: MerchantClient;
  fulfilment: Fulfilment;
}

export interface Shop {
  app: KessaiApp;
  /**
   * One reconciler pass (reconciler.ts) as of `now`; the worker runs it every workerIntervalMs, tests call it with
   * their own clock.
   */
  reconcile(now: Date): Promise<number>;
  /** Stops the app and the worker, waits for background captures and closes the HTTP clients (not the database). */
  close(): Promise<void>;
}

export async function buildShop(input: ShopConfig): Promise<Shop> {
  const config = defineShopConfig(input);
  await prepareSchema(config.db, migrationsDir, config.migrations);
  const seeded = await seedCatalogue(config.db);
  if (seeded > 0) config.logger.info({ products: seeded }, 'seeded the catalogue');

  const merchant = new MerchantClient({
    baseUrl: config.authBaseUrl,
    apiKey: config.merchantApiKey,
    caCertPem: config.caCertPem,
  });
  const verifier = new AuthorizationVerifier({ issuers: config.issuers, caCertPem: config.caCertPem });
  const fulfilment = new Fulfilment({
    db: config.db,
    merchant,
    verifier,
    autoCapture: config.autoCapture,
    logger: config.logger,
    livemode: apiKeyLivemode(
      typeof config.merchantApiKey === 'string' ? config.merchantApiKey : config.merchantApiKey.expose(),
    ),
  });
  const context: ShopContext = { config, db: config.db, merchant, fulfilment };

  const app = createServer({
    logger: config.logger,
    db: config.db,
    ...(config.operatorToken ? { metricsToken: config.operatorToken } : {}),
    ...(config.tls ? { tls: config.tls } : {}),
    ...(config.serverTimeouts ? { timeouts: config.serverTimeouts } : {}),
  });
  await registerOpenApi(app, {
    title: 'Kessai demo shop',
    description: "The demo merchant's storefront API and its webhook endpoint.",
    routeSecurity: [
      ['/admin/', 'operatorToken'],
      ['/metrics', 'operatorToken'],
      ['/api/settlements', 'operatorToken'],
    ],
    routeTags: [
      ['/api/settlements', 'settlements'],
      ['/api/', 'storefront'],
      ['/webhooks/', 'webhooks'],
    ],
  });
  // First of all hooks: a request over its class's in-flight limit is refused before any work. A new cart and
  // checkout start a payment (intake); webhooks are payment work (the broker retries a refused one).
  shedLoad(
    app,
    classifyWork({ 'POST /api/carts': 'intake', 'POST /api/carts/:id/checkout': 'intake' }),
    config.loadShedding,
    config.logger,
  );
  app.operations.readinessChecks.push(migrationsReadiness(config.db, migrationsDir)); // the schema (/readyz)
  app.addHook('onRequest', rateLimitHook(createRateLimiters(config.rateLimits), byAddress));
  await setUpAuditLog(app, config.db, config.logger, config.operatorToken);
  registerProductRoutes(app, context);
  registerCartRoutes(app, context);
  registerCheckoutRoute(app, context);
  registerOrderRoutes(app, context);
  await registerWebhookRoute(app, context);
  await registerSettlementRoutes(app, context);
  registerWebPages(app, 'shop', { home: 'store' }); // the storefront at /store/ (docs/web.md)

  const reconcile = (now: Date) => reconcileOrders(config.db, fulfilment, config.logger, now);
  runReconciler(app, config, reconcile);
  return {
    app,
    reconcile,
    async close() {
      await app.close();
      await fulfilment.close();
      await Promise.all([merchant.close(), verifier.close()]);
    },
  };
}

/** The reconciler's worker: a pass every workerIntervalMs once the server is ready (none at 0), one at a time. */
function runReconciler(app: KessaiApp, config: ResolvedShopConfig, reconcile: (now: Date) => Promise<unknown>): void {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  const tick = () => {
    if (running) return;
    running = reconcile(new Date())
      .catch((err: unknown) => config.logger.error({ err }, 'reconciler pass failed'))
      .finally(() => (running = undefined));
  };
  const intervalMs = config.workerIntervalMs ?? limits.shopWorkerIntervalMsDefault;
  app.addHook('onReady', async () => {
    if (intervalMs > 0) timer = setInterval(tick, intervalMs);
  });
  app.addHook('onClose', async () => {
    clearInterval(timer);
    await running;
  });
}
