/**
 * Idempotency-Key with Stripe's semantics for merchant POSTs: the same key and the same request
 * answer the stored response (errors included); the same key with another request is
 * idempotency_key_reused; the same key while the first is running is
 * idempotency_request_in_progress. A 5xx is not stored, so a retry runs again; nor is
 * idempotency_key_reused from the route itself (a refund key that names another refund, refunds.ts),
 * which says nothing of this request and must not bind the key to it. Keys are kept at least
 * idempotencyKeyTtlMs.
 */
import { KessaiError, limits, sha256Base64url } from '@kessai/protocol';
import type { Db } from '@kessai/service';

export interface StoredResponse {
  status: number;
  body: unknown;
}

export async function requestHash(method: string, path: string, body: unknown): Promise<string> {
  return sha256Base64url(`${method} ${path}\n${JSON.stringify(body ?? null)}`);
}

export function idempotencyKeyOf(headers: Record<string, unknown>): string {
  const key = headers['idempotency-key'];
  if (typeof key !== 'string' || key.length === 0) throw new KessaiError('idempotency_key_missing');
  if (key.length > limits.idempotencyKeyLengthMax || !/^[\x21-\x7e]+$/.test(key)) throw new KessaiError('validation_failed', 'Idempotency-Key must be 1–255 visible ASCII characters');
  return key;
}

export async function idempotent(db: Db, merchantId: string, key: string, hash: string, run: () => Promise<StoredResponse>): Promise<StoredResponse> {
  const claimed = await db.query("insert into idempotency_keys (merchant_id, key, request_hash, state) values ($1, $2, $3, 'in_progress') on conflict do nothing returning key", [merchantId, key, hash]);
  if (claimed.length === 0) {
    const [row] = await db.query<{ request_hash: string; state: string; response_status: number; response_body: unknown; created_at: Date }>('select request_hash, state, response_status, response_body, created_at from idempotency_keys where merchant_id = $1 and key = $2', [merchantId, key]);
    if (!row) return idempotent(db, merchantId, key, hash, run);
    if (row.request_hash !== hash) throw new KessaiError('idempotency_key_reused');
    if (row.state === 'in_progress') {
      if (Date.now() - row.created_at.getTime() < limits.idempotencyInProgressMsMax) throw new KessaiError('idempotency_request_in_progress');
      // Its process died mid-request: the work it saved is found again by the retry (save intent before calling out).
      await db.query("delete from idempotency_keys where merchant_id = $1 and key = $2 and state = 'in_progress' and created_at < $3", [merchantId, key, new Date(Date.now() - limits.idempotencyInProgressMsMax)]);
      return idempotent(db, merchantId, key, hash, run);
    }
    return { status: row.response_status, body: row.response_body };
  }
  let response: StoredResponse;
  try {
    response = await run();
  } catch (err) {
    if (!(err instanceof KessaiError) || err.status >= 500 || err.code === 'idempotency_key_reused') {
      await db.query('delete from idempotency_keys where merchant_id = $1 and key = $2', [merchantId, key]);
      throw err;
    }
    response = { status: err.status, body: err.toProblem() };
  }
  await db.query("update idempotency_keys set state = 'done', response_status = $3, response_body = $4::text::jsonb where merchant_id = $1 and key = $2", [merchantId, key, response.status, JSON.stringify(response.body)]);
  return response;
}

export async function purgeIdempotencyKeys(db: Db, now: Date): Promise<void> {
  await db.query("delete from idempotency_keys where state = 'done' and created_at < $1", [new Date(now.getTime() - limits.idempotencyKeyTtlMs)]);
}
