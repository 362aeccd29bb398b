/**
 * The authentication server (role 30) as a Fastify app built from a frozen config: enrollment
 * (301–305), the merchant API (402, 407 polling, 409), the terminal API (403–404, 408), and a
 * worker that delivers webhooks, expires requests and returns stuck ones to pending.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { directoryResponse, limits, merchantNameProblem } from '@kessai/protocol';
import { HttpClient } from '@kessai/sdk';
import { classifyWork, createRateLimiters, createServer, registerOpenApi, logPassFailure, migrationsReadiness, prepareSchema, rateLimitHook, registerWebPages, setUpAuditLog, shedLoad, keyAdminRoutes } from '@kessai/service';
import type { KessaiApp } from '@kessai/service';
import { checkAuthConfig, type AuthConfig } from './config.ts';
import { adminConsoleRoutes } from './admin-console.ts';
import type { AuthContext } from './context.ts';
import { purgeIdempotencyKeys } from './idempotency.ts';
import { sweepOldEvents } from './merchant-lists.ts';
import { syncHolds } from './hold-sync.ts';
import { resolveInDoubt } from './in-doubt.ts';
import { transition } from './payment-state.ts';
import { brokerMetrics } from './metrics.ts';
import { brokerReadinessChecks } from './readiness.ts';
import { relayPendingRevocations } from './revocation-relay.ts';
import { IssuerDirectory } from './issuers.ts';
import type { PaymentRequestRow } from './payment-requests.ts';
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

/** The one writer of expiry: each pending request past its expiry turns `expired`, its event queued in the same statement (payment-state.ts). */
async function expirePending(context: AuthContext, now: Date): Promise<void> {
  const { config } = context;
  const due = await config.db.query<PaymentRequestRow>("select * from payment_requests where status = 'pending' and expires_at <= $1 order by expires_at limit $2", [now, limits.expiryBatchMax]);
  for (const row of due) await transition(config.db, row, 'expired', {}, { publicBaseUrl: config.publicBaseUrl, now });
}

/** The broker's work classes: the defaults of classifyWork; a new payment request is intake; the terminals' and merchants' event streams are bounded by sseStreamsMax and their per-caller limits instead. */
const brokerWork = classifyWork({ 'POST /v1/payment-requests': 'intake', 'GET /v1/terminal/events': 'exempt', 'GET /v1/events/stream': 'exempt' });

/** When each context's worker last deleted expired device proofs and idempotency keys (epoch ms). */
const lastPurges = new WeakMap<AuthContext, number>();

/** Expired device proofs and idempotency keys, and events past their retention, deleted at most every limits.brokerPurgeIntervalMs. */
async function purgeExpired(context: AuthContext, now: Date): Promise<void> {
  const last = lastPurges.get(context);
  if (last !== undefined && now.getTime() - last < limits.brokerPurgeIntervalMs && now.getTime() >= last) return;
  lastPurges.set(context, now.getTime());
  await context.config.db.query('delete from device_proofs where expires_at < $1', [now]);
  await purgeIdempotencyKeys(context.config.db, now);
  await sweepOldEvents(context.config.db, now);
}

/** One pass of the background work; exported so tests can run it without waiting. */
export async function runWorker(context: AuthContext, dispatcher: WebhookDispatcher, now: Date): Promise<void> {
  await expirePending(context, now);
  await purgeExpired(context, now);
  await dispatcher.deliverDue(now);
  // After the deliveries, so a slow issuer delays no webhook: authorizations whose answer was lost
  // (in-doubt.ts: asked about, adopted or reversed), then the issuer's state of approved holds (hold-sync.ts).
  await resolveInDoubt(context, now);
  await syncHolds(context, now);
  await relayPendingRevocations(context);
}

export async function buildAuthServer(config: AuthConfig) {
  checkAuthConfig(config);
  await prepareSchema(config.db, migrationsDir, config.migrations);
  await registerConfiguredMerchants(config);
  const http = new HttpClient({ trust: 'pinned', caCertPem: config.tls.caCertPem, clientCertPem: config.clientTls.certPem, clientKeyPem: config.clientTls.keyPem });
  const context: AuthContext = { config, http, issuers: new IssuerDirectory(config.issuers, http), hub: await createPushHub(config) };
  const app = createServer({ logger: config.logger, db: config.db, ...(config.operatorToken ? { metricsToken: config.operatorToken } : {}), tls: config.tls, ...(config.serverTimeouts ? { timeouts: config.serverTimeouts } : {}) });
  await registerOpenApi(app, {
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
  });
  // First of all hooks: a request over its class's in-flight limit is refused before any work (load-shedding.ts).
  shedLoad(app, brokerWork, config.loadShedding, config.logger);
  const metrics = brokerMetrics(app.operations.metrics.registry, config.db); // payments by state, webhooks (metrics.ts)
  const dispatcher = new WebhookDispatcher(config.db, config.logger, config.tls.caCertPem, (outcome) => metrics.webhookAttempt(outcome));
  if (config.serverTiming) registerServerTiming(app);
  app.addHook('onRequest', rateLimitHook(createRateLimiters(config.rateLimits), authRateLimitKeys));
  await setUpAuditLog(app, config.db, config.logger, config.operatorToken);
  allowWalletOrigins(app, config.walletOrigins ?? []);
  app.operations.readinessChecks.push(...brokerReadinessChecks(context), migrationsReadiness(config.db, migrationsDir)); // keys, directory, issuers (readiness.ts); the schema

  app.get('/.well-known/jwks.json', async () => {
    const { keys } = config.keys.jwks();
    return { keys: keys.filter((key) => key.use === 'sig') };
  });
  // The signed issuer directory, relayed as it is (terminals verify it with their pinned directory key).
  app.get('/v1/directory', { schema: { response: { 200: directoryResponse } } }, async () => ({ directory: await config.directory() }));
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

  runWorkerLoop(app, context, dispatcher);
  return {
    app,
    context,
    runWorker: () => runWorker(context, dispatcher, new Date()),
    /** One webhook delivery pass as of `now` (tests advance their own clock through the retry schedule). */
    deliverWebhooks: (now: Date) => dispatcher.deliverDue(now),
  };
}

/** The worker: a pass every workerIntervalMs once the server is ready, one at a time; on close, the clients close. */
function runWorkerLoop(app: KessaiApp, context: AuthContext, dispatcher: WebhookDispatcher): void {
  const { config } = context;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  const tick = () => {
    if (running) return;
    running = runWorker(context, dispatcher, new Date())
      .catch((err: unknown) => logPassFailure(config.logger, err, 'worker pass failed'))
      .finally(() => (running = undefined));
  };
  app.addHook('onReady', async () => {
    timer = setInterval(tick, config.workerIntervalMs ?? 200);
  });
  app.addHook('onClose', async () => {
    clearInterval(timer);
    await running;
    await dispatcher.close();
    await context.hub.close();
    await context.http.close();
  });
}
