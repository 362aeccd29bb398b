/**
 * The settlement server (role 40) as a Fastify app built from a frozen config. Public: its
 * metadata and JWKS. Internal (mutual TLS, the authentication server only): enrollments (step
 * 303: the issuer verifies the cardholder and registers the credential), revocations, credential states,
 * authorizations (step 406–407), capture, void and refunds (step 409). Operator (its own token):
 * merchants, credentials, cards, keys, settlement. A worker releases
 * expired holds every expiryIntervalMs.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import {
  authorizeRequest,
  credentialId,
  issuerEnrollmentRequest,
  issuerEnrollmentResponse,
  issuerRevocation,
  issuerRevocationRequest,
  authorizeResponse,
  issuerMetadata,
  limits,
  paymentRequestId,
  publicJwkSet,
  settlementCaptureRequest,
  settlementCaptureResponse,
  settlementRefundRequest,
  settlementAuthorizationStatus,
  settlementReversal,
  settlementReversalRequest,
  settlementRefundResponse,
  voidRequest,
  type IssuerMetadata,
} from '@kessai/protocol';
import { byAddressExceptCertifiedPeers, classifyWork, deadlineOf, requireHttpsUrl, createRateLimiters, createServer, registerOpenApi, keysReadiness, migrationsReadiness, prepareSchema, rateLimitHook, registerWebPages, setUpAuditLog, shedLoad, keyAdminRoutes } from '@kessai/service';
import type { KessaiApp } from '@kessai/service';
import type { SettlementConfig } from './config.ts';
import { adminCardRoutes } from './admin-cards.ts';
import { adminConsoleRoutes } from './admin-console.ts';
import { authorize } from './authorize.ts';
import { authorizationStatus } from './authorization-status.ts';
import { reverse } from './reversal.ts';
import { settleHold } from './capture.ts';
import { enrollCredential } from './enroll.ts';
import { startExpiryWorker } from './expiry.ts';
import { GroupCommit } from './ledger/group-commit.ts';
import { merchantRoutes, onboardMerchant } from './merchants.ts';
import { adminAccountRoutes } from './admin-accounts.ts';
import { internalCallerCheck } from './internal-callers.ts';
import { bankMetrics } from './metrics.ts';
import { refund } from './refund.ts';
import { credentialStatusRoutes } from './credential-status.ts';
import { credentialAdminRoutes, revokeCredential } from './registry.ts';
import { renewedCredential } from './renew.ts';
import { registerSettlement } from './settlement/routes.ts';

/** The settlement server's migrations (`kessai db`, readiness checks). */
export const migrationsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'migrations');

export function issuerMetadataOf(config: SettlementConfig): IssuerMetadata {
  const enc = config.keys.current('enc');
  return {
    issuer_id: config.issuerId,
    name: config.name,
    conversion_mode: config.conversionMode,
    cipher2: { alg: enc.alg as IssuerMetadata['cipher2']['alg'], enc: 'A256GCM' },
    jwks_uri: `${config.publicBaseUrl}/.well-known/jwks.json`,
  };
}

/**
 * The bank's work classes: the defaults of classifyWork, except the reversal and the status
 * inquiry, which get the control class of their own — the broker's in-doubt worker and hold sync
 * resolve payments with them, so payment load must never starve them.
 */
const bankWork = classifyWork({
  'POST /internal/v1/authorizations/:rid/reversal': 'control',
  'GET /internal/v1/authorizations/:rid': 'control',
});

export async function buildSettlementServer(config: SettlementConfig) {
  // Its metadata's jwks_uri is under it: brokers fetch this issuer's keys there.
  requireHttpsUrl(config.publicBaseUrl, 'SettlementConfig.publicBaseUrl');
  await prepareSchema(config.db, migrationsDir, config.migrations);
  for (const merchant of config.merchants ?? []) await onboardMerchant(config.db, merchant);
  const app = createServer({ logger: config.logger, db: config.db, ...(config.operatorToken ? { metricsToken: config.operatorToken } : {}), ...(config.tls ? { tls: { ...config.tls, requestClientCertificate: true } } : {}), ...(config.serverTimeouts ? { timeouts: config.serverTimeouts } : {}) });
  await registerOpenApi(app, { title: 'Kessai settlement server', description: "A bank's internal API (called by the broker over mutual TLS) and its operator API.", routeSecurity: [['/admin/', 'operatorToken'], ['/metrics', 'operatorToken'], ['/internal/', 'mutualTls']] });
  // First of all hooks: over its class's in-flight limit, or with too little of the broker's deadline left, a request is refused before any work.
  shedLoad(app, bankWork, config.loadShedding, config.logger);
  app.operations.readinessChecks.push(keysReadiness(config.keys, ['enc', 'sig']), migrationsReadiness(config.db, migrationsDir)); // cipher 2 and the authorization-signing key; the schema
  const limiters = createRateLimiters(config.rateLimits);
  app.addHook('onRequest', rateLimitHook(limiters, byAddressExceptCertifiedPeers));
  // Every /internal route, whichever module registers it: mutual TLS with the pinned broker certificate only.
  app.addHook('onRequest', internalCallerCheck(config));
  const audit = await setUpAuditLog(app, config.db, config.logger, config.operatorToken);
  // Every ledger write of this server goes through one group commit (ledger/group-commit.ts).
  const metrics = bankMetrics(app.operations.metrics.registry); // authorizations, ledger batches (metrics.ts)
  const ledger = new GroupCommit(config.db, { onBatch: (jobs, seconds) => metrics.ledgerBatch(jobs, seconds) });
  startExpiry(app, config, ledger);

  registerWellKnownRoutes(app, config);

  await app.register(async (plugin) => {
    const internal = plugin.withTypeProvider<ZodTypeProvider>();
    const rid = z.strictObject({ rid: paymentRequestId });

    // Step 303: enrollment — the issuer verifies the card and the PIN and registers the credential (enroll.ts).
    internal.post('/internal/v1/enrollments', { schema: { summary: 'Register a credential: verify the card and PIN (step 303)', operationId: 'registerCredential', body: issuerEnrollmentRequest, response: { 200: issuerEnrollmentResponse } } }, async (request) => ({
      registration: await enrollCredential(config, limiters, request.body, new Date()),
    }));

    // Revocation relayed by the authentication server (the payer's recovery code, the broker operator): it ends in the registry.
    internal.post('/internal/v1/credentials/:id/revoke', { schema: { summary: 'Revoke a credential (relayed by the broker)', operationId: 'revokeCredential', params: z.strictObject({ id: credentialId }), body: issuerRevocationRequest, response: { 200: issuerRevocation } } }, async (request) =>
      revokeCredential(config.db, request.params.id, request.body.revoked_by),
    );

    internal.post('/internal/v1/authorizations', { schema: { summary: 'Authorize a payment: a signed decision and a hold (steps 405–406)', operationId: 'authorize', body: authorizeRequest, response: { 200: authorizeResponse } } }, async (request, reply) => {
      // The broker's deadline (Kessai-Deadline-Ms), counted from the request's arrival: no hold is placed once it has passed.
      const { payload: decided, jws } = await authorize(config, ledger, limiters, request.body, new Date(), deadlineOf(request.headers, Date.now() - reply.elapsedTime));
      metrics.authorizationDecided(decided.decision, decided.code);
      void audit.record({ actor: 'system', action: 'authorization.decided', resource: `${decided.rid} ${decided.aid}`, outcome: decided.code ? `${decided.decision} ${decided.code}` : decided.decision, origin: request.ip });
      return { authorization: jws, ...(await renewedCredential(config, request.body.sealed_credential)) };
    });

    internal.post('/internal/v1/authorizations/:rid/capture', { schema: { summary: 'Capture a hold (step 409)', operationId: 'captureAuthorization', params: rid, body: settlementCaptureRequest, response: { 200: settlementCaptureResponse } } }, async (request) =>
      settleHold(config, ledger, request.params.rid, 'capture', request.body.amount_minor, new Date()),
    );

    internal.post('/internal/v1/authorizations/:rid/refunds', { schema: { summary: 'Refund a captured authorization', operationId: 'refundAuthorization', params: rid, body: settlementRefundRequest, response: { 200: settlementRefundResponse } } }, async (request) =>
      refund(config, ledger, request.params.rid, request.body, new Date()),
    );

    internal.post('/internal/v1/authorizations/:rid/void', { schema: { summary: 'Void a hold', operationId: 'voidAuthorization', params: rid, body: voidRequest, response: { 200: settlementCaptureResponse } } }, async (request) =>
      settleHold(config, ledger, request.params.rid, 'void', undefined, new Date()),
    );

    // A reversal: the authentication server cannot complete this authorization, or expires it uncaptured (reversal.ts).
    internal.post('/internal/v1/authorizations/:rid/reversal', { schema: { summary: 'Reverse an authorization the broker cannot complete', operationId: 'reverseAuthorization', params: rid, body: settlementReversalRequest, response: { 200: settlementReversal } } }, async (request) =>
      reverse(config, ledger, request.params.rid, request.body.nonce, new Date()),
    );

    // The status inquiry: how the authentication server resolves an answer it lost, and learns that a hold expired (authorization-status.ts).
    internal.get('/internal/v1/authorizations/:rid', { schema: { summary: "An authorization's status (in-doubt resolution, hold sync)", operationId: 'getAuthorizationStatus', params: rid, response: { 200: settlementAuthorizationStatus } } }, async (request) => authorizationStatus(config.db, request.params.rid, new Date()));
  });
  await registerOperatorRoutes(app, config, ledger);
  return app;
}

/** The issuer's public face: its metadata and its public keys. */
function registerWellKnownRoutes(app: KessaiApp, config: SettlementConfig): void {
  const metadata = issuerMetadataOf(config);
  const metadataSchema = {
    summary: "The issuer's metadata",
    operationId: 'getIssuerMetadata',
    response: { 200: issuerMetadata },
  };
  app.get('/.well-known/kessai-issuer', { schema: metadataSchema }, async () => metadata);
  // Public keys only: the directory's operator lists them (wallets take them from the signed directory), shops verify authorizations with them.
  const jwksSchema = {
    summary: "The issuer's public keys",
    description: 'Signing (authorizations) and encryption (cipher 2) keys.',
    operationId: 'getJwks',
    response: { 200: publicJwkSet },
  };
  // Public members only, or it fails.
  app.get('/.well-known/jwks.json', { schema: jwksSchema }, async () => publicJwkSet.parse(config.keys.jwks()));
}

/** The expiry worker (expiry.ts) ends holds past their time, unless the config turns it off (0). */
function startExpiry(app: KessaiApp, config: SettlementConfig, ledger: GroupCommit): void {
  const expiryIntervalMs = config.expiryIntervalMs ?? limits.expiryIntervalMsDefault;
  if (expiryIntervalMs > 0) {
    const worker = startExpiryWorker(ledger, config.logger, expiryIntervalMs);
    app.addHook('onClose', () => worker.stop());
  }
}

/** The bank operator's routes and console, merchant onboarding and settlement (not /internal). */
async function registerOperatorRoutes(app: KessaiApp, config: SettlementConfig, ledger: GroupCommit): Promise<void> {
  if (config.operatorToken) await app.register((plugin) => adminConsoleRoutes(plugin, config));
  if (config.operatorToken) await app.register((plugin) => adminCardRoutes(plugin, config));
  if (config.operatorToken) await app.register((plugin) => adminAccountRoutes(plugin, config)); // the account import (accounts-import.ts)
  await app.register((plugin) => merchantRoutes(plugin, config, config.db)); // merchant onboarding (merchants.ts)
  await app.register((plugin) => credentialAdminRoutes(plugin, config)); // the issuer operator's revocation (registry.ts)
  await app.register((plugin) => credentialStatusRoutes(plugin, config)); // the registry's state, for the payer
  await app.register((plugin) => keyAdminRoutes(plugin, config.keys, config.operatorToken)); // key rotation (packages/service/src/key-admin.ts)
  await app.register((plugin) => registerSettlement(plugin, config, ledger)); // settlement batches, fees, payouts, reports (docs/ledger.md)
  registerWebPages(app, 'settlement-server', { home: 'console' }); // the operator console at /console/ (docs/web.md)
}
