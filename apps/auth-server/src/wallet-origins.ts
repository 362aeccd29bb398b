/**
 * CORS for browser wallets served from their own origins (apps/wallet/src/host.ts): a page of a
 * configured wallet origin may call the routes a terminal uses — the directory, enrollment,
 * revocation by recovery code, the terminal API and this server's public keys — with the device
 * proof in `Authorization`. Any other origin gets no CORS headers, so a browser keeps its pages
 * from reading the answers. No cookies are involved (credentials are never allowed).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { KessaiError, limits } from '@kessai/protocol';
import type { KessaiApp } from '@kessai/service';

const walletRoutes = /^\/(v1\/(directory|enrollments|terminal\/.*|credentials\/[^/]+\/revoke)|\.well-known\/jwks\.json)$/;

export function allowWalletOrigins(app: KessaiApp, origins: readonly string[]): void {
  const allowed = new Set(origins.map((origin) => new URL(origin).origin));
  const allows = (request: FastifyRequest) => {
    const origin = request.headers.origin;
    return typeof origin === 'string' && allowed.has(origin) && walletRoutes.test(request.url.split('?')[0] ?? '') ? origin : undefined;
  };
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const origin = allows(request);
    if (origin) reply.header('access-control-allow-origin', origin).header('vary', 'origin');
  });
  app.options('/*', { schema: { hide: true } }, async (request, reply) => {
    const origin = allows(request);
    if (!origin) throw new KessaiError('not_found');
    return reply
      .code(204)
      .header('access-control-allow-methods', 'GET, POST')
      .header('access-control-allow-headers', 'authorization, content-type, accept')
      .header('access-control-max-age', String(limits.preflightMaxAgeSeconds))
      .send();
  });
}
