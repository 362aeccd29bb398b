/**
 * Revoking a credential: by the payer with the recovery code from any device (no device key: the
 * storage may be lost), or by the operator (`/admin/v1/…`, operator token). Both answer the
 * revocation record; revoking twice answers the first revocation again. Either is relayed to the
 * issuer's registry (revocation-relay.ts).
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { credentialId, credentialRevocation, revokeCredentialRequest, Secret } from '@kessai/protocol';
import { requireOperator } from '@kessai/service';
import type { AuthContext } from '../context.ts';
import { revokeByOperator, revokeWithRecoveryCode } from '../revocation.ts';
import { relayRevocation } from '../revocation-relay.ts';

const byId = z.strictObject({ id: credentialId });

export async function credentialRoutes(plugin: FastifyInstance, context: AuthContext): Promise<void> {
  const app = plugin.withTypeProvider<ZodTypeProvider>();
  const { config } = context;

  const summary = 'Revoke a credential with its recovery code';
  app.post('/v1/credentials/:id/revoke', { schema: { summary, operationId: 'revokeCredential', params: byId, body: revokeCredentialRequest, response: { 200: credentialRevocation } } }, async (request) => {
    const revoked = await revokeWithRecoveryCode(config.db, request.params.id, new Secret(request.body.recovery_code), request.ip, new Date());
    await relayRevocation(context, revoked.credential_id, 'payer');
    request.log.info({ credential: revoked.credential_id, by: revoked.revoked_by }, 'credential revoked');
    return revoked;
  });

  const operatorToken = config.operatorToken;
  if (!operatorToken) return;
  await app.register(async (admin) => {
    const routes = admin.withTypeProvider<ZodTypeProvider>();
    routes.addHook('onRequest', requireOperator(operatorToken));
    routes.post('/admin/v1/credentials/:id/revoke', { schema: { summary: 'Revoke a credential (operator)', operationId: 'adminRevokeCredential', params: byId, response: { 200: credentialRevocation } } }, async (request) => {
      const revoked = await revokeByOperator(config.db, request.params.id, new Date());
      await relayRevocation(context, revoked.credential_id, 'operator');
      request.log.info({ credential: revoked.credential_id, by: revoked.revoked_by }, 'credential revoked');
      return revoked;
    });
  });
}
