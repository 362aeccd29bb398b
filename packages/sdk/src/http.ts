/**
 * Calls from one Kessai server to another: HTTPS through undici trusting Node's root certificates
 * plus the configured CA (the development CA, or an operator's private CA) — or, for mutual TLS to
 * a bank, only the pinned CA (`trust: 'pinned'`) — a timeout on every call, JSON checked against a
 * schema, and `traceparent` on every call (trace-context.ts). A peer's problem+json with a known
 * code is re-raised as that code, carrying the peer's Request-Id; anything else is `unavailable`.
 */
import { rootCertificates } from 'node:tls';
import { Agent, request } from 'undici';
import type { z } from 'zod';
import { KessaiError, isErrorCode, limits, type ErrorCode } from '@kessai/protocol';
import { outboundTraceparent } from './trace-context.ts';

export interface HttpClientOptions {
  /** A PEM bundle of extra CAs this client trusts. */
  caCertPem: string;
  /**
   * 'public' (default): Node's root certificates plus caCertPem, so a peer with a publicly issued
   * certificate is reached. 'pinned': caCertPem only — the broker's mutual TLS to its banks, whose
   * trust must not widen to every public CA.
   */
  trust?: 'public' | 'pinned';
  clientCertPem?: string;
  clientKeyPem?: string;
  timeoutMs?: number;
}

export interface CallOptions<T> {
  body?: unknown;
  headers?: Record<string, string>;
  schema: z.ZodType<T>;
  /** The code raised when the peer cannot be reached or answers with something unexpected. */
  unavailable: ErrorCode;
  /** This call's timeout, when it is not the client's (a deadline passed downstream). */
  timeoutMs?: number;
}

export class HttpClient {
  readonly #agent: Agent;
  readonly #timeoutMs: number;
  constructor(options: HttpClientOptions) {
    this.#timeoutMs = options.timeoutMs ?? limits.upstreamTimeoutMs;
    this.#agent = new Agent({
      connect: {
        ca: trustedCas(options.caCertPem, options.trust ?? 'public'),
        ...(options.clientCertPem ? { cert: options.clientCertPem, key: options.clientKeyPem } : {}),
        minVersion: 'TLSv1.2',
      },
      headersTimeout: this.#timeoutMs,
      bodyTimeout: this.#timeoutMs,
    });
  }

  async call<T>(method: 'GET' | 'POST', url: string, options: CallOptions<T>): Promise<T> {
    let status: number;
    let text: string;
    let retryAfter: unknown;
    let requestId: unknown;
    try {
      const response = await request(url, {
        method,
        dispatcher: this.#agent,
        headers: {
          accept: 'application/json',
          traceparent: outboundTraceparent(),
          ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
          ...options.headers,
        },
        ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
        signal: AbortSignal.timeout(options.timeoutMs ?? this.#timeoutMs),
        ...(options.timeoutMs === undefined
          ? {}
          : { headersTimeout: options.timeoutMs, bodyTimeout: options.timeoutMs }),
      });
      status = response.statusCode;
      retryAfter = response.headers['retry-after'];
      requestId = response.headers['request-id'];
      text = await response.body.text();
    } catch (err) {
      const failed = new KessaiError(options.unavailable, `${method} ${new URL(url).pathname} failed`);
      // No connection at all: the request was never sent, so the peer did nothing.
      if (neverConnected(err)) failed.notSent = true;
      throw failed;
    }
    const body = parseJson(text);
    const where = new URL(url).pathname;
    if (status >= 200 && status < 300) {
      const parsed = options.schema.safeParse(body);
      if (!parsed.success)
        throw withRequestId(unreadable(options.unavailable, where, status, parsed.error), undefined, requestId);
      return parsed.data;
    }
    const code = (body as { code?: unknown } | undefined)?.code;
    // A peer's documented code is kept (a 502 issuer_refused stays that); a 500 is the peer's bug, not an answer.
    if (status !== 500 && isErrorCode(code) && code !== 'internal_error')
      throw withRequestId(withRetryAfter(peerAnswer(code, body), retryAfter), body, requestId);
    // A code this client does not know yet (added after it was built) is named, so the caller can look it up.
    const named = typeof code === 'string' && /^[a-z][a-z0-9_]{0,63}$/.test(code) ? ` ${code}` : '';
    const failed = new KessaiError(options.unavailable, `${where} answered ${status}${named}`);
    failed.answeredStatus = status;
    throw withRequestId(failed, body, requestId);
  }

  /**
   * A GET whose successful answer is not JSON (a CSV report): its body as text and its content type; failures as in
   * call().
   */
  async text(
    url: string,
    options: { headers?: Record<string, string>; unavailable: ErrorCode },
  ): Promise<{ text: string; contentType: string }> {
    let status: number;
    let text: string;
    let contentType: string;
    try {
      const response = await request(url, {
        method: 'GET',
        dispatcher: this.#agent,
        headers: { accept: '*/*', traceparent: outboundTraceparent(), ...options.headers },
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      status = response.statusCode;
      contentType = String(response.headers['content-type'] ?? '');
      text = await response.body.text();
    } catch {
      throw new KessaiError(options.unavailable, `GET ${new URL(url).pathname} failed`);
    }
    if (status >= 200 && status < 300) return { text, contentType };
    const body = parseJson(text) as { code?: unknown; detail?: string } | undefined;
    if (status !== 500 && isErrorCode(body?.code) && body.code !== 'internal_error')
      throw new KessaiError(body.code, body.detail);
    throw new KessaiError(options.unavailable, `${new URL(url).pathname} answered ${status}`);
  }

  /** Opens a long-lived GET (server-sent events) and yields its body as text chunks. */
  async *stream(url: string, headers: Record<string, string>, signal: AbortSignal): AsyncGenerator<string> {
    const response = await request(url, {
      method: 'GET',
      dispatcher: this.#agent,
      headers: { accept: 'text/event-stream', traceparent: outboundTraceparent(), ...headers },
      signal,
      bodyTimeout: 0,
    });
    if (response.statusCode !== 200) {
      const body = parseJson(await response.body.text()) as { code?: unknown; detail?: string } | undefined;
      throw new KessaiError(isErrorCode(body?.code) ? body.code : 'unauthenticated', body?.detail);
    }
    response.body.setEncoding('utf8');
    for await (const chunk of response.body) yield chunk as string;
  }

  close(): Promise<void> {
    return this.#agent.close();
  }
}

/**
 * The CAs an outbound TLS connection trusts. undici's (and Node's) `ca` option REPLACES the root
 * certificates, so the public ones are listed back in unless the trust is pinned.
 */
export function trustedCas(caCertPem: string, trust: 'public' | 'pinned'): string[] {
  return trust === 'pinned' ? [caCertPem] : [...rootCertificates, caCertPem];
}

/** The peer's Request-Id (its problem body's `request_id`, else its header), when it is a short safe token. */
function withRequestId(err: KessaiError, body: unknown, header: unknown): KessaiError {
  const fromBody = (body as { request_id?: unknown } | undefined)?.request_id;
  const id = typeof fromBody === 'string' ? fromBody : header;
  if (typeof id === 'string' && new RegExp(`^[A-Za-z0-9._-]{1,${limits.requestIdLengthMax}}$`).test(id))
    err.requestId = id;
  return err;
}

/**
 * A successful answer whose body does not match the schema (a field missing or of another type): `errors[]` and the
 * message name where (JSON pointers and the schema's words, never the values).
 */
function unreadable(code: ErrorCode, where: string, status: number, error: z.ZodError): KessaiError {
  const errors = error.issues.map((issue) => ({
    path: `/${issue.path.map((part) => String(part)).join('/')}`,
    message: issue.message,
  }));
  const [first] = errors;
  const more = errors.length > 1 ? ` and ${errors.length - 1} more` : '';
  const failed = new KessaiError(
    code,
    `${where} answered a body this client cannot read (${first?.path}: ${first?.message}${more})`,
    errors,
  );
  failed.answeredStatus = status;
  return failed;
}

/** The peer's problem as a KessaiError: its code, detail and `errors[]` (where the request was wrong). */
function peerAnswer(code: ErrorCode, body: unknown): KessaiError {
  const { detail, errors } = body as { detail?: unknown; errors?: unknown };
  const answer = new KessaiError(
    code,
    typeof detail === 'string' ? detail : undefined,
    Array.isArray(errors) ? (errors as KessaiError['errors']) : undefined,
  );
  answer.fromPeer = true;
  return answer;
}

/** Errors (or their causes) that mean the connection was never made: nothing of the request reached the peer. */
const notConnectedCodes = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
]);
function neverConnected(err: unknown): boolean {
  for (
    let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0;
    e && depth < 4;
    e = e.cause as typeof e, depth++
  ) {
    if (typeof e.code === 'string' && notConnectedCodes.has(e.code)) return true;
  }
  return false;
}

/**
 * A relayed rate_limited, database_unavailable or overloaded keeps the peer's Retry-After (whole seconds, at most an
 * hour), so our own answer carries it on.
 */
const retryAfterCodes = new Set<ErrorCode>([
  'rate_limited',
  'database_unavailable',
  'overloaded',
  'idempotency_request_in_progress',
]);
function withRetryAfter(err: KessaiError, header: unknown): KessaiError {
  const seconds = typeof header === 'string' && /^\d{1,4}$/.test(header) ? Number(header) : undefined;
  if (seconds !== undefined && seconds <= 3_600 && retryAfterCodes.has(err.code)) err.retryAfterSeconds = seconds;
  return err;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
