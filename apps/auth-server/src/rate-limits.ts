/**
 * Which rate-limit buckets (packages/service/src/rate-limit.ts) an authentication-server request
 * spends, decided before authentication from the route pattern and the Authorization header:
 * every request its source address; enrollment and credential recovery or revocation also their
 * own per-address bucket; the merchant API its API key's; the terminal API the credential its
 * device proof names.
 *
 * The credential bucket is keyed by the credential id the proof claims, before the proof is
 * verified: someone who knows a credential id can spend that device's budget (a nuisance bounded
 * by their own address bucket), and in return a flood of forged proofs costs no database work.
 */
import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { deviceProofSubject, idPattern, limits } from '@kessai/protocol';
import type { RateLimitName } from '@kessai/service';
import { deviceProofScheme } from './callers.ts';

const merchantRoute = /^\/v1\/payment-requests(\/|$)/;
const terminalRoute = /^\/v1\/terminal\//;
const recoveryRoute = /^\/v1\/credentials\/[^/]+\/(revoke|recover)/;

export function authRateLimitKeys(request: FastifyRequest): Array<[RateLimitName, string]> {
  const keys: Array<[RateLimitName, string]> = [['address', request.ip]];
  const route = request.routeOptions.url ?? '';
  const header = request.headers.authorization;
  if (route === '/v1/enrollments') keys.push(['enrollment', request.ip]);
  if (recoveryRoute.test(route)) keys.push(['recovery', request.ip]);
  if (merchantRoute.test(route) && typeof header === 'string' && header.startsWith('Bearer ')) {
    // The key's digest, not the key, is what this process keeps in memory.
    keys.push(['merchant', createHash('sha256').update(header.slice('Bearer '.length)).digest('base64url')]);
  }
  if (terminalRoute.test(route) && typeof header === 'string' && header.startsWith(`${deviceProofScheme} `) && header.length <= limits.joseLengthMax + deviceProofScheme.length + 1) {
    const credentialId = deviceProofSubject(header.slice(deviceProofScheme.length + 1));
    if (credentialId && idPattern('cred').test(credentialId)) keys.push(['credential', credentialId]);
  }
  return keys;
}
