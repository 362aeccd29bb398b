/**
 * The settlement server (role 40) as a Fastify app built from a frozen config. Public: its
 * metadata and JWKS. Internal (mutual TLS, the authentication server only): account checks
 * (step 303), authorizations (step 406–407), capture, void and refunds (step 409). A worker releases
 * expired holds every expiryIntervalMs.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import {
  accountCheckRequest,
  accountCheckResponse,
  authorizeRequest,
  authorizeResponse,
  issuerMetadata,
  isExpired,
  limits,
  paymentRequestId,
  settlementCaptureRequest,
  settlementCaptureResponse,
  settlementRefundRequest,
  settlementRefundResponse,
  voidRequest,
  type IssuerMetadata,
} from '@kessai/protocol';
import { createServer, migrate, requireClientCertificate } from '@kessai/service';
import type { SettlementConfig } from './config.ts';
import { authorize } from './authorize.ts';
import { settleHold } from './capture.ts';
import { findCard, openCredential } from './credential.ts';
import { startExpiryWorker } from './expiry.ts';
import { GroupCommit } from './ledger/group-commit.ts';
import { refund } from './refund.ts';
import { seedCards } from './seed.ts';

const migrationsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'migrations');

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

export async function buildSettlementServer(config: SettlementConfig) {
  await migrate(config.db, migrationsDir);
  const seeded = await seedCards(config);
  if (seeded > 0) config.logger.info({ cards: seeded }, 'seeded demo cards');
  const app = createServer({ logger: config.logger, ...(config.tls ? { tls: { ...config.tls, requestClientCertificate: true } } : {}) });
  const metadata = issuerMetadataOf(config);
  // Every ledger write of this server goes through one group commit (ledger/group-commit.ts).
  const ledger = new GroupCommit(config.db);
  const expiryIntervalMs = config.expiryIntervalMs ?? limits.expiryIntervalMsDefault;
  if (expiryIntervalMs > 0) {
    const worker = startExpiryWorker(ledger, config.logger, expiryIntervalMs);
    app.addHook('onClose', () => worker.stop());
  }

  app.get('/.well-known/kessai-issuer', { schema: { response: { 200: issuerMetadata } } }, async () => metadata);
  app.get('/.well-known/jwks.json', async () => config.keys.jwks());

  await app.register(async (plugin) => {
    const internal = plugin.withTypeProvider<ZodTypeProvider>();
    internal.addHook('onRequest', requireClientCertificate);
    const rid = z.strictObject({ rid: paymentRequestId });

    // Step 303: the enrollment's account check, on data already sealed for this server.
    internal.post('/internal/v1/account-checks', { schema: { body: accountCheckRequest, response: { 200: accountCheckResponse } } }, async (request) => {
      const credential = await openCredential(request.body.sealed_credential, config.keys, config.issuerId);
      const card = await findCard(config.db, credential, false);
      if (!card) return { status: 'account_not_found' as const };
      if (card.status === 'blocked') return { status: 'account_blocked' as const };
      if (isExpired(credential.expiry.expose(), new Date())) return { status: 'card_expired' as const };
      return { status: 'ok' as const };
    });

    internal.post('/internal/v1/authorizations', { schema: { body: authorizeRequest, response: { 200: authorizeResponse } } }, async (request) => ({
      authorization: await authorize(config, ledger, request.body, new Date()),
    }));

    internal.post('/internal/v1/authorizations/:rid/capture', { schema: { params: rid, body: settlementCaptureRequest, response: { 200: settlementCaptureResponse } } }, async (request) =>
      settleHold(config, ledger, request.params.rid, 'capture', request.body.amount_minor, new Date()),
    );

    internal.post('/internal/v1/authorizations/:rid/refunds', { schema: { params: rid, body: settlementRefundRequest, response: { 200: settlementRefundResponse } } }, async (request) =>
      refund(config, ledger, request.params.rid, request.body.refund_id, request.body.amount_minor, new Date()),
    );

    internal.post('/internal/v1/authorizations/:rid/void', { schema: { params: rid, body: voidRequest, response: { 200: settlementCaptureResponse } } }, async (request) =>
      settleHold(config, ledger, request.params.rid, 'void', undefined, new Date()),
    );
  });
  return app;
}
