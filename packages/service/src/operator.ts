/**
 * Operator endpoints (`/admin/v1/...` on every server): closing a settlement day, rotating keys,
 * revoking credentials, onboarding merchants, unlocking cards, verifying the audit log. They are
 * authenticated by `Authorization: Bearer <operator token>`, one token per role — the bank's
 * operator holds a token no other role has (DESIGN.md §1: each role has its own operator
 * credentials) — kept in the role's folder as an owner-only file (`<role>/operator-token`) and
 * compared in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import path from 'node:path';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { KessaiError } from '@kessai/protocol';
import { readIfExists, writePrivateFile } from './files.ts';
import { setAuditActor } from './audit-actor.ts';

export const operatorTokenFile = 'operator-token';

/** Where a role's operator token lives: `<data>/<role>/operator-token` (role: auth, shop, settlement-<issuer>). */
export function operatorTokenPath(dataDir: string, role: string): string {
  if (!/^[a-z][a-z0-9-]{0,80}$/.test(role)) throw new TypeError(`not a role folder: ${role}`);
  return path.join(dataDir, role, operatorTokenFile);
}

/** Reads a role's operator token, creating one (32 random bytes, base64url) on first use. */
export async function loadOrCreateOperatorToken(dataDir: string, role: string): Promise<string> {
  const file = operatorTokenPath(dataDir, role);
  const stored = (await readIfExists(file))?.trim();
  if (stored) return stored;
  const token = `op_${randomBytes(32).toString('base64url')}`;
  await writePrivateFile(file, `${token}\n`);
  return token;
}

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/**
 * The operator's identity in audit rows and logs: `operator:` and the first 12 characters of the
 * token's SHA-256 (base64url) — names which credential acted, never the credential itself.
 */
export function operatorIdentity(token: string): string {
  return `operator:${digest(token).toString('base64url').slice(0, 12)}`;
}

/** An onRequest hook that refuses every request without the operator's bearer token (`unauthenticated`). */
export function requireOperator(token: string) {
  if (token.length < 16) throw new TypeError('operator token must be at least 16 characters');
  const expected = digest(token);
  const identity = operatorIdentity(token);
  return async function operatorOnly(request: FastifyRequest, _reply: FastifyReply): Promise<void> {
    const header = request.headers.authorization;
    const presented = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice('Bearer '.length) : '';
    // Hashing both sides first makes the comparison constant-time whatever the lengths.
    if (!timingSafeEqual(digest(presented), expected)) throw new KessaiError('unauthenticated', 'this endpoint requires the operator token');
    setAuditActor(request, identity);
  };
}
