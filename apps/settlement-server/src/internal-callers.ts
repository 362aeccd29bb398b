/**
 * Who may call the bank's /internal routes: a caller with a client certificate of the development
 * CA (mutual TLS), and, when the bank pins its brokers (`brokerCertificates`), only one of those
 * certificates. The route's pattern is checked, not the raw URL: a percent-encoded path
 * (`/%69nternal/…`) reaches the same route; a path no route has is not_found.
 */
import { requireClientCertificate, requirePinnedClientCertificate } from '@kessai/service';
import type { FastifyRequest } from 'fastify';
import type { SettlementConfig } from './config.ts';

/** An onRequest hook for every /internal route, whichever module registers it. */
export function internalCallerCheck(
  config: Pick<SettlementConfig, 'brokerCertificates'>,
): (request: FastifyRequest) => Promise<void> {
  const pinned = config.brokerCertificates;
  const pinnedBroker = pinned ? requirePinnedClientCertificate(pinned) : undefined;
  return async (request) => {
    if (!request.routeOptions.url?.startsWith('/internal/')) return;
    await requireClientCertificate(request);
    await pinnedBroker?.(request);
  };
}
