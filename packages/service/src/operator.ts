/**
 * Operator endpoints (`/admin/v1/...` on every server): closing a settlement day, rotating keys,
 * revoking credentials, unlocking cards, verifying the audit log. They are authenticated by
 * `Authorization: Bearer <operator token>`, one token per system, kept in the data folder as an
 * owner-only file (`operator-token`) and compared in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import path from 'node:path';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { KessaiError } from '@kessai/protocol';
import { readIfExists, writePrivateFile } from './files.ts';

export const operatorTokenFile = 'operator-token';

/** Reads the data folder's operator token, creating one (32 random bytes, base64url) on first use. */
export async function loadOrCreateOperatorToken(dataDir: string): Promise<string> {
  const file = path.join(dataDir, operatorTokenFile);
  const stored = (await readIfExists(file))?.trim();
  if (stored) return stored;
  const token = `op_${randomBytes(32).toString('base64url')}`;
  await writePrivateFile(file, `${token}\n`);
  return token;
}

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/** An onRequest hook that refuses every request without the operator's bearer token (`unauthenticated`). */
export function requireOperator(token: string) {
  if (token.length < 16) throw new TypeError('operator token must be at least 16 characters');
  const expected = digest(token);
  return async function operatorOnly(request: FastifyRequest, _reply: FastifyReply): Promise<void> {
    const header = request.headers.authorization;
    const presented = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice('Bearer '.length) : '';
    // Hashing both sides first makes the comparison constant-time whatever the lengths.
    if (!timingSafeEqual(digest(presented), expected)) throw new KessaiError('unauthenticated', 'this endpoint requires the operator token');
  };
}
