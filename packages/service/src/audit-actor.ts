/** Who made a request, once it is authenticated: set by the authentication hooks, read by the audit log (audit.ts). */
import type { FastifyRequest } from 'fastify';

const actors = new WeakMap<FastifyRequest, string>();

/** Names who made the request once it is authenticated (`merchant:mer_…`, `credential:cred_…`, `operator:<token id>`). */
export function setAuditActor(request: FastifyRequest, actor: string): void {
  actors.set(request, actor);
}

export function auditActorOf(request: FastifyRequest): string | undefined {
  return actors.get(request);
}
