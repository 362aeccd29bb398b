/**
 * Calls from one Kessai server to another: HTTPS through undici with the development CA (and a
 * client certificate for mutual TLS), a timeout on every call, JSON checked against a schema.
 * A peer's problem+json with a known code is re-raised as that code; anything else is `unavailable`.
 */
import { Agent, request } from 'undici';
import type { z } from 'zod';
import { KessaiError, isErrorCode, limits, type ErrorCode } from '@kessai/protocol';

export interface HttpClientOptions {
  caCertPem: string;
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
        ca: options.caCertPem,
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
    try {
      const response = await request(url, {
        method,
        dispatcher: this.#agent,
        headers: { accept: 'application/json', ...(options.body === undefined ? {} : { 'content-type': 'application/json' }), ...options.headers },
        ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
        signal: AbortSignal.timeout(options.timeoutMs ?? this.#timeoutMs),
        ...(options.timeoutMs === undefined ? {} : { headersTimeout: options.timeoutMs, bodyTimeout: options.timeoutMs }),
      });
      status = response.statusCode;
      retryAfter = response.headers['retry-after'];
      text = await response.body.text();
    } catch (err) {
      const failed = new KessaiError(options.unavailable, `${method} ${new URL(url).pathname} failed`);
      // No connection at all: the request was never sent, so the peer did nothing.
      if (neverConnected(err)) failed.notSent = true;
      throw failed;
    }
    const body = parseJson(text);
    if (status >= 200 && status < 300) {
      const parsed = options.schema.safeParse(body);
      if (!parsed.success) throw new KessaiError(options.unavailable, `${new URL(url).pathname} answered an unexpected body`);
      return parsed.data;
    }
    const code = (body as { code?: unknown } | undefined)?.code;
    // A peer's documented code is kept (a 502 issuer_refused stays that); a 500 is the peer's bug, not an answer.
    if (status !== 500 && isErrorCode(code) && code !== 'internal_error') throw withRetryAfter(peerAnswer(code, (body as { detail?: string }).detail), retryAfter);
    throw new KessaiError(options.unavailable, `${new URL(url).pathname} answered ${status}`);
  }

  /** A GET whose successful answer is not JSON (a CSV report): its body as text and its content type; failures as in call(). */
  async text(url: string, options: { headers?: Record<string, string>; unavailable: ErrorCode }): Promise<{ text: string; contentType: string }> {
    let status: number;
    let text: string;
    let contentType: string;
    try {
      const response = await request(url, { method: 'GET', dispatcher: this.#agent, headers: { accept: '*/*', ...options.headers }, signal: AbortSignal.timeout(this.#timeoutMs) });
      status = response.statusCode;
      contentType = String(response.headers['content-type'] ?? '');
      text = await response.body.text();
    } catch {
      throw new KessaiError(options.unavailable, `GET ${new URL(url).pathname} failed`);
    }
    if (status >= 200 && status < 300) return { text, contentType };
    const body = parseJson(text) as { code?: unknown; detail?: string } | undefined;
    if (status !== 500 && isErrorCode(body?.code) && body.code !== 'internal_error') throw new KessaiError(body.code, body.detail);
    throw new KessaiError(options.unavailable, `${new URL(url).pathname} answered ${status}`);
  }

  /** Opens a long-lived GET (server-sent events) and yields its body as text chunks. */
  async *stream(url: string, headers: Record<string, string>, signal: AbortSignal): AsyncGenerator<string> {
    const response = await request(url, { method: 'GET', dispatcher: this.#agent, headers: { accept: 'text/event-stream', ...headers }, signal, bodyTimeout: 0 });
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

function peerAnswer(code: ErrorCode, detail: string | undefined): KessaiError {
  const answer = new KessaiError(code, detail);
  answer.fromPeer = true;
  return answer;
}

/** Errors (or their causes) that mean the connection was never made: nothing of the request reached the peer. */
const notConnectedCodes = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);
function neverConnected(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && notConnectedCodes.has(e.code)) return true;
  }
  return false;
}

/** A relayed rate_limited, database_unavailable or overloaded keeps the peer's Retry-After (whole seconds, at most an hour), so our own answer carries it on. */
function withRetryAfter(err: KessaiError, header: unknown): KessaiError {
  const seconds = typeof header === 'string' && /^\d{1,4}$/.test(header) ? Number(header) : undefined;
  if (seconds !== undefined && seconds <= 3_600 && (err.code === 'rate_limited' || err.code === 'database_unavailable' || err.code === 'overloaded')) err.retryAfterSeconds = seconds;
  return err;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
