/**
 * The broker's own readiness checks (/readyz, packages/service/src/operations.ts), beside the
 * database: its keys, the signed issuer directory it relays, and the issuers' published keys.
 */
import { directoryPayload, limits, readJwsPayload } from '@kessai/protocol';
import { keysReadiness, type ReadinessCheck } from '@kessai/service';
import type { AuthContext } from './context.ts';

export function brokerReadinessChecks(context: AuthContext): ReadinessCheck[] {
  const { config, issuers } = context;
  return [
    // cipher 1 (enc) and the request-signing key (sig).
    keysReadiness(config.keys, ['enc', 'sig']),
    {
      // Readable, a directory by its schema, not dated in the future, and listing every issuer this
      // broker routes to: a directory older than the routes would leave terminals unable to pay one.
      // (The signature is the wallets' to check: the broker holds no directory key.)
      name: 'directory',
      check: async () => {
        const payload = directoryPayload.parse(readJwsPayload(await config.directory(), 'internal_error'));
        if (payload.iat * 1000 > Date.now() + limits.clockSkewMs) throw new Error('the directory is dated in the future');
        const listed = new Set(payload.issuers.map((issuer) => issuer.id));
        const missing = config.issuers.filter((route) => !listed.has(route.id));
        if (missing.length > 0) throw new Error(`the directory lists no entry for ${missing.length} routed issuer(s)`);
      },
    },
    {
      // The issuers' metadata and keys, cached for their TTL (issuers.ts): fresh or fetched again now.
      // Ready when at least one issuer's are: one bank down must not take every broker out of the
      // load balancer, which would stop the other banks' payments too.
      name: 'issuers',
      check: async () => {
        if (config.issuers.length === 0) return;
        await Promise.any(config.issuers.map((route) => issuers.byId(route.id)));
      },
    },
  ];
}
