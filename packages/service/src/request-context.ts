/**
 * Each request's identity as the first listener of the HTTP server sees it, before Fastify or any
 * hook: its Request-Id (the caller's, when it is a safe token, else a new `req_…`), answered on
 * every response, and its trace context (W3C traceparent continued, or a new trace). Logs bind
 * both (request_id, trace_id, span_id); outbound calls made while it runs carry its traceparent.
 */
import type { IncomingMessage } from 'node:http';
import { limits, newId } from '@kessai/protocol';
import { continueTrace, type TraceContext } from '@kessai/sdk';

export interface RequestContext {
  requestId: string;
  trace: TraceContext & { parentId?: string };
}

/** The header a caller may set and every answer carries. */
export const requestIdHeader = 'request-id';

const safeRequestId = new RegExp(`^[A-Za-z0-9._-]{1,${limits.requestIdLengthMax}}$`);

/** The caller's Request-Id when it is 1–requestIdLengthMax characters of [A-Za-z0-9._-] (nothing a log or a header could be tricked with), else a new one. */
export function requestIdFrom(header: unknown): string {
  return typeof header === 'string' && safeRequestId.test(header) ? header : newId('req');
}

const contexts = new WeakMap<IncomingMessage, RequestContext>();

/** Made once per request, by the server's first 'request' listener. */
export function startRequestContext(request: IncomingMessage): RequestContext {
  const context = { requestId: requestIdFrom(request.headers[requestIdHeader]), trace: continueTrace(request.headers.traceparent) };
  contexts.set(request, context);
  return context;
}

/** The context of a request seen by this server (one is made if the listener did not run: inject() in tests). */
export function requestContextOf(request: IncomingMessage): RequestContext {
  return contexts.get(request) ?? startRequestContext(request);
}
