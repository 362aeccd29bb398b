/**
 * The authentication server (role 30) as a Fastify app built from a frozen config: enrollment
 * (301–305), the merchant API (402, 407 polling, 409), the terminal API (403–404, 408), and a
 * worker that delivers webhooks, expires requests and returns stuck ones to pending.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { limits, sha256Base64url } from '@kessai/protocol';
import { HttpClient } from '@kessai/sdk';
import { createServer, migrate } from '@kessai/service';
import type { AuthConfig } from './config.ts';
import type { AuthContext } from './context.ts';
import { purgeIdempotencyKeys } from './idempotency.ts';
import { IssuerDirectory } from './issuers.ts';
import { merchantView, type PaymentRequestRow } from './payment-requests.ts';
import { PushHub } from './push.ts';
import { enrollmentRoutes } from './routes/enrollments.ts';
import { paymentLinkRoutes, paymentRequestRoutes } from './routes/payment-requests.ts';
import { terminalRoutes } from './routes/terminal.ts';
import { enqueueEvent, WebhookDispatcher } from './webhooks.ts';

const migrationsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'migrations');

async function seedMerchants(config: AuthConfig): Promise<void> {
  for (const merchant of config.merchants) {
    await config.db.query(
      `insert into merchants (id, name, api_key_hash, webhook_url, webhook_secret) values ($1, $2, $3, $4, $5)
       on conflict (id) do update set name = excluded.name, api_key_hash = excluded.api_key_hash, webhook_url = excluded.webhook_url, webhook_secret = excluded.webhook_secret`,
      [merchant.id, merchant.name, await sha256Base64url(merchant.apiKey), merchant.webhookUrl ?? null, merchant.webhookSecret],
    );
  }
}

/** One pass of the background work; exported so tests can run it without waiting. */
export async function runWorker(context: AuthContext, dispatcher: WebhookDispatcher, now: Date): Promise<void> {
  const { config } = context;
  const expired = await config.db.query<PaymentRequestRow>("update payment_requests set status = 'expired', updated_at = now() where status = 'pending' and expires_at <= $1 returning *", [now]);
  for (const row of expired) await enqueueEvent(config.db, 'payment_request.expired', merchantView(row, config.publicBaseUrl), now);
  // A request left `authorizing` by a crash goes back to pending; the issuer answers a new approval with its stored decision.
  await config.db.query("update payment_requests set status = 'pending', credential_id = null, issuer_id = null where status = 'authorizing' and updated_at < $1", [new Date(now.getTime() - 3 * limits.upstreamTimeoutMs)]);
  await config.db.query('delete from device_proofs where expires_at < $1', [now]);
  await purgeIdempotencyKeys(config.db, now);
  await dispatcher.deliverDue(now);
}

export async function buildAuthServer(config: AuthConfig) {
  await migrate(config.db, migrationsDir);
  await seedMerchants(config);
  const http = new HttpClient({ caCertPem: config.tls.caCertPem, clientCertPem: config.clientTls.certPem, clientKeyPem: config.clientTls.keyPem });
  const context: AuthContext = { config, http, issuers: new IssuerDirectory(config.issuers, http), hub: new PushHub() };
  const dispatcher = new WebhookDispatcher(config.db, config.logger, config.tls.caCertPem);
  const app = createServer({ logger: config.logger, tls: config.tls });

  app.get('/.well-known/jwks.json', async () => {
    const { keys } = config.keys.jwks();
    return { keys: keys.filter((key) => key.use === 'sig') };
  });
  await app.register((plugin) => enrollmentRoutes(plugin, context));
  await app.register((plugin) => paymentRequestRoutes(plugin, context));
  await app.register((plugin) => terminalRoutes(plugin, context));
  await app.register((plugin) => paymentLinkRoutes(plugin, context));

  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  const tick = () => {
    if (running) return;
    running = runWorker(context, dispatcher, new Date())
      .catch((err: unknown) => config.logger.error({ err }, 'worker pass failed'))
      .finally(() => (running = undefined));
  };
  app.addHook('onReady', async () => {
    timer = setInterval(tick, config.workerIntervalMs ?? 200);
  });
  app.addHook('onClose', async () => {
    clearInterval(timer);
    await running;
    await dispatcher.close();
    await http.close();
  });
  return { app, context, runWorker: () => runWorker(context, dispatcher, new Date()) };
}
