/**
 * The SDK's retries (as stripe-node): a network error (the call got no answer), 409 (the same
 * Idempotency-Key still in progress), 429, 500, 502 and 503 are tried again up to `maxNetworkRetries`
 * times, after a jittered exponential back-off — or the server's Retry-After when it sent one.
 * A POST keeps its Idempotency-Key across the tries, so a retry never does the work twice.
 */
import { KessaiError } from '@kessai/protocol';

export interface RetryOptions {
  maxNetworkRetries: number;
  /** The first back-off; doubled at each try, capped at maxDelayMs (defaults 500 ms and 5 s). */
  initialDelayMs?: number;
  maxDelayMs?: number;
}

const retriedStatuses = new Set([409, 429, 502, 503]);

/** Whether an error is worth another try: no answer at all, or an answer that says "later". */
export function isRetryable(err: unknown): err is KessaiError {
  if (!(err instanceof KessaiError)) return false;
  // No answer, or a 5xx one: tried again. An unreadable body, or a 4xx code it does not know, would come back the same.
  if (!err.fromPeer)
    return err.code === 'broker_unavailable' && (err.answeredStatus === undefined || err.answeredStatus >= 500);
  // A peer's 409 is retried only when it means "in progress", not a state conflict.
  if (err.status === 409) return err.code === 'idempotency_request_in_progress';
  return retriedStatuses.has(err.status) && err.code !== 'issuer_refused';
}

/** The wait before try `attempt` (1-based): Retry-After when given, else jittered exponential back-off. */
export function retryDelayMs(attempt: number, err: KessaiError, options: RetryOptions): number {
  const max = options.maxDelayMs ?? 5_000;
  if (err.retryAfterSeconds !== undefined) return Math.min(err.retryAfterSeconds * 1000, 60_000);
  const base = Math.min((options.initialDelayMs ?? 500) * 2 ** (attempt - 1), max);
  // Half fixed, half random ("equal jitter"): tries from many clients spread out.
  return base / 2 + Math.random() * (base / 2);
}

export async function retrying<T>(options: RetryOptions, call: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      if (attempt > options.maxNetworkRetries || !isRetryable(err)) throw err;
      await new Promise((resolve) => setTimeout(resolve, retryDelayMs(attempt, err, options)));
    }
  }
}
