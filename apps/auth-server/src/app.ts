/**
 * The authentication server (role 30) as a Fastify app built from a frozen config: enrollment
 * (301–305), the merchant API (402, 407 polling, 409), the terminal API (403–404, 408), and a
 * worker that delivers webhooks, expires requests and returns stuck ones to pending.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { directoryResponse, merchantNameProblem, publicJwkSet } from '@kessai/protocol';
import { HttpClient } from '@kessai/sdk';
import { classifyWork, createRateLimiters, createServer, registerOpenApi, migrationsReadiness, prepareSchema, rateLimitHook, registerWebPages, setUpAuditLog, shedLoad, keyAdminRoutes } from '@kessai/service';
import { checkAuthConfig, type AuthConfig } from './config.ts';
import { adminConsoleRoutes } from './admin-console.ts';
import type { AuthContext } from './context.ts';
import { brokerMetrics } from './metrics.ts';
import { brokerReadinessChecks } from './readiness.ts';
import { IssuerDirectory } from './issuers.ts';
import { authRateLimitKeys } from './rate-limits.ts';
import { createPushHub } from './push.ts';
import { registerServerTiming } from './server-timing.ts';
import { credentialRoutes } from './routes/credentials.ts';
import { enrollmentRoutes } from './routes/enrollments.ts';
import { paymentLinkRoutes, paymentRequestRoutes } from './routes/payment-requests.ts';
import { settlementRoutes } from './routes/settlements.ts';
import { eventStreamRoutes } from './routes/event-stream.ts';
import { terminalRoutes } from './routes/terminal.ts';
import { webhookEventRoutes } from './routes/webhook-events.ts';
import { merchantListRoutes } from './routes/merchant-lists.ts';
import { webhookSecretRoutes } from './webhook-secrets.ts';
import { brokerMerchantRoutes, createMerchant, merchantExists } from './merchants.ts';
import { allowWalletOrigins } from './wallet-origins.ts';
import { WebhookDispatcher } from './webhooks.ts';
import { runWorker, startableWorker, workerIntervalMsDefault } from './worker.ts';

/** The authentication server's migrations (`kessai db`, readiness checks). */
export const migrationsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'migrations');

/**
 * The merchants of the config (main.ts's file), each created when missing through the operator's
 * own createMerchant (merchants.ts); one that exists is left as the operator made it, so a rolled
 * key or rotated secret is not brought back. Several processes may start at once.
 */
async function registerConfiguredMerchants(config: AuthConfig): Promise<void> {
  for (const merchant of config.merchants ?? []) {
    // A look-alike name would reach every payer's confirmation screen: refuse to start with it.
    const problem = merchantNameProblem(merchant.name);
    if (problem) throw new TypeError(`merchant ${merchant.id} cannot be registered: ${problem}`);
    if (await merchantExists(config.db, merchant.id)) continue;
    try {
      await createMerchant(config.db, { id: merchant.id, name: merchant.name, webhookUrl: merchant.webhookUrl, apiKey: merchant.apiKey, webhookSecret: merchant.webhookSecret });
    } catch (err) {
      if (await merchantExists(config.db, merchant.id)) continue; // another process created it meanwhile
      throw err;
    }
  }
}

/** The broker's work classes: the defaults of classifyWork; a new payment request is intake; the terminals' and merchants' event streams are bounded by sseStreamsMax and their per-caller limits instead. */
const brokerWork = classifyWork({ 'POST /v1/payment-requests': 'intake', 'GET /v1/terminal/events': 'exempt', 'GET /v1/events/stream': 'exempt' });

/** Every route of the broker: keys and directory, wallets, merchants, terminals, the operator's. */
async function registerBrokerRoutes(app: ReturnType<typeof createServer>, context: AuthContext): Promise<void> {
  const { config } = context;
  const jwksSchema = {
    summary: "The broker's public signing keys",
    description: 'Terminals verify the signed payment requests with them.',
    operationId: 'getJwks',
    response: { 200: publicJwkSet },
  };
  app.get('/.well-known/jwks.json', { schema: jwksSchema }, async () => {
    const { keys } = config.keys.jwks();
    return publicJwkSet.parse({ keys: keys.filter((key) => key.use === 'sig') }); // public members only, or it fails
  });
  // The signed issuer directory, relayed as it is (terminals verify it with their pinned directory key).
  app.get('/v1/directory', { schema: { summary: 'The signed issuer directory', operationId: 'getDirectory', response: { 200: directoryResponse } } }, async () => ({ directory: await config.directory() }));
  await app.register((plugin) => enrollmentRoutes(plugin, context));
  await app.register((plugin) => credentialRoutes(plugin, context));
  await app.register((plugin) => keyAdminRoutes(plugin, config.keys, config.operatorToken)); // key rotation (packages/service/src/key-admin.ts)
  await app.register((plugin) => webhookSecretRoutes(plugin, config.db, config.operatorToken)); // webhook-secret rotation (webhook-secrets.ts)
  await app.register((plugin) => brokerMerchantRoutes(plugin, config.db, config.operatorToken)); // merchants, their API keys (merchants.ts)
  await app.register((plugin) => paymentRequestRoutes(plugin, context));
  await app.register((plugin) => terminalRoutes(plugin, context));
  await app.register((plugin) => paymentLinkRoutes(plugin, context));
  await app.register((plugin) => settlementRoutes(plugin, context));
  await app.register((plugin) => merchantListRoutes(plugin, context)); // the merchant's payment requests, refunds and events, paged (routes/merchant-lists.ts)
  await app.register((plugin) => eventStreamRoutes(plugin, context)); // the merchant's events as server-sent events, for `kessai listen` (routes/event-stream.ts)
  await app.register((plugin) => webhookEventRoutes(plugin, context)); // the merchant's webhook events and their resend (routes/webhook-events.ts)
  // The operator console at /console/ (docs/web.md). The browser wallet is served from its own origin (apps/wallet/src/host.ts).
  registerWebPages(app, 'auth-server', { home: 'console' });
  if (config.operatorToken) await app.register((plugin) => adminConsoleRoutes(plugin, config));
}

/** The broker's OpenAPI document: who may call each prefix, and its tags (packages/service/src/openapi.ts). */
const brokerOpenApi: Parameters<typeof registerOpenApi>[1] = {
  title: 'Kessai authentication server',
  description: 'The merchant API, the wallet and terminal API, and the operator admin API of the broker.',
  routeSecurity: [
    ['/admin/', 'operatorToken'],
    ['/metrics', 'operatorToken'],
    ['/v1/terminal/', 'walletDevice'],
    ['/v1/payment-requests', 'merchantKey'],
    ['/v1/refunds', 'merchantKey'],
    ['/v1/events', 'merchantKey'],
    ['/v1/settlement-batches', 'merchantKey'],
    ['/v1/webhook-events', 'merchantKey'],
  ],
  routeTags: [
    ['/v1/terminal/', 'terminal'],
    ['/v1/enrollments', 'wallet'],
    ['/v1/credentials/', 'wallet'],
    ['/v1/directory', 'wallet'],
    ['/pay/', 'wallet'],
    ['/v1/', 'merchant'],
  ],
};

export async function buildAuthServer(config: AuthConfig) {
  checkAuthConfig(config);
  await prepareSchema(config.db, migrationsDir, config.migrations);
  await registerConfiguredMerchants(config);
  const http = new HttpClient({ trust: 'pinned', caCertPem: config.tls.caCertPem, clientCertPem: config.clientTls.certPem, clientKeyPem: config.clientTls.keyPem });
  const context: AuthContext = { config, http, issuers: new IssuerDirectory(config.issuers, http), hub: await createPushHub(config) };
  const app = createServer({ logger: config.logger, db: config.db, ...(config.operatorToken ? { metricsToken: config.operatorToken } : {}), tls: config.tls, ...(config.serverTimeouts ? { timeouts: config.serverTimeouts } : {}) });
  await registerOpenApi(app, brokerOpenApi);
  // First of all hooks: a request over its class's in-flight limit is refused before any work (load-shedding.ts).
  shedLoad(app, brokerWork, config.loadShedding, config.logger);
  const metrics = brokerMetrics(app.operations.metrics.registry, config.db); // payments by state, webhooks (metrics.ts)
  const dispatcher = new WebhookDispatcher(config.db, config.logger, config.tls.caCertPem, (outcome) => metrics.webhookAttempt(outcome));
  if (config.serverTiming) registerServerTiming(app);
  app.addHook('onRequest', rateLimitHook(createRateLimiters(config.rateLimits), authRateLimitKeys));
  await setUpAuditLog(app, config.db, config.logger, config.operatorToken);
  allowWalletOrigins(app, config.walletOrigins ?? []);
  app.operations.readinessChecks.push(...brokerReadinessChecks(context), migrationsReadiness(config.db, migrationsDir)); // keys, directory, issuers (readiness.ts); the schema

  await registerBrokerRoutes(app, context);

  const worker = startableWorker(context, dispatcher, config.workerIntervalMs ?? workerIntervalMsDefault); // worker.ts
  app.addHook('onReady', async () => worker.start());
  app.addHook('onClose', async () => {
    await worker.stop();
    await dispatcher.close();
    await context.hub.close();
    await http.close();
  });
  return {
    app,
    context,
    runWorker: () => runWorker(context, dispatcher, new Date()),
    /** One webhook delivery pass as of `now` (tests advance their own clock through the retry schedule). */
    deliverWebhooks: (now: Date) => dispatcher.deliverDue(now),
  };
}
