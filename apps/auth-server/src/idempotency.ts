/**
 * Idempotency-Key with Stripe's semantics for merchant POSTs: the same key and the same request
 * answer the stored response (errors included); the same key with another request is
 * idempotency_key_reused; the same key while the first is running is
 * idempotency_request_in_progress, with Retry-After until its lease ends (a dead process's lease
 * runs out, and the retry runs again). A 5xx is not stored, so a retry runs again; nor is
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

/**
 * Runs `run` once per key. The in-progress claim is a lease (`locked_until`, idempotencyLeaseMs)
 * that this process renews every third of it while `run` is still going; a retry meanwhile is
 * idempotency_request_in_progress with Retry-After (seconds until the lease ends). A process that
 * died renews nothing: once its lease has ended the retry takes the key over and runs again.
 */
export function idempotent(
  db: Db,
  merchantId: string,
  key: string,
  hash: string,
  run: () => Promise<StoredResponse>,
): Promise<StoredResponse> {
  return idempotentAt(db, { merchantId, key, hash, clock: Date.now }, run);
}

/** idempotent() reading the time from `clock` (tests stand at a lease's end). */
export async function idempotentAt(
  db: Db,
  request: { merchantId: string; key: string; hash: string; clock: () => number },
  run: () => Promise<StoredResponse>,
): Promise<StoredResponse> {
  const { merchantId, key, hash, clock } = request;
  const leaseEnd = () => new Date(clock() + limits.idempotencyLeaseMs);
  const claimed = await db.query("insert into idempotency_keys (merchant_id, key, request_hash, state, locked_until) values ($1, $2, $3, 'in_progress', $4) on conflict do nothing returning key", [merchantId, key, hash, leaseEnd()]);
  if (claimed.length === 0) {
    const [row] = await db.query<{ request_hash: string; state: string; response_status: number; response_body: unknown; locked_until: Date | null }>('select request_hash, state, response_status, response_body, locked_until from idempotency_keys where merchant_id = $1 and key = $2', [merchantId, key]);
    if (!row) return idempotentAt(db, request, run);
    if (row.request_hash !== hash) throw new KessaiError('idempotency_key_reused');
    if (row.state === 'in_progress') {
      const leftMs = (row.locked_until ? new Date(row.locked_until).getTime() : 0) - clock();
      if (leftMs > 0) {
        const busy = new KessaiError('idempotency_request_in_progress');
        busy.retryAfterSeconds = Math.max(1, Math.ceil(leftMs / 1000));
        throw busy;
      }
      // Its process died mid-request (the lease ran out unrenewed): the work it saved is found again by the retry (save intent before calling out).
      await db.query("delete from idempotency_keys where merchant_id = $1 and key = $2 and state = 'in_progress' and (locked_until is null or locked_until <= $3)", [merchantId, key, new Date(clock())]);
      return idempotentAt(db, request, run);
    }
    return { status: row.response_status, body: row.response_body };
  }
  const renewal = setInterval(() => {
    db.query("update idempotency_keys set locked_until = $3 where merchant_id = $1 and key = $2 and state = 'in_progress'", [merchantId, key, leaseEnd()]).catch(() => undefined);
  }, limits.idempotencyLeaseMs / 3);
  let response: StoredResponse;
  try {
    response = await run();
  } catch (err) {
    if (!(err instanceof KessaiError) || err.status >= 500 || err.code === 'idempotency_key_reused') {
      // Only a claim still in progress: after a lease takeover, another process may have finished and stored its answer.
      await db.query("delete from idempotency_keys where merchant_id = $1 and key = $2 and state = 'in_progress'", [merchantId, key]);
      throw err;
    }
    response = { status: err.status, body: err.toProblem() };
  } finally {
    clearInterval(renewal);
  }
  await db.query("update idempotency_keys set state = 'done', locked_until = null, response_status = $3, response_body = $4::text::jsonb where merchant_id = $1 and key = $2 and state = 'in_progress'", [merchantId, key, response.status, JSON.stringify(response.body)]);
  return response;
}

export async function purgeIdempotencyKeys(db: Db, now: Date): Promise<void> {
  await db.query("delete from idempotency_keys where state = 'done' and created_at < $1", [new Date(now.getTime() - limits.idempotencyKeyTtlMs)]);
}
