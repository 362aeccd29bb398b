/**
 * The Fastify instance every Kessai server starts from: TLS, JSON bodies up to bodyBytesMax,
 * zod schemas on the way in and out, and one error handler that answers every failure as
 * application/problem+json with a stable code — never a 500 for bad input, including what Fastify
 * and Node refuse before any route runs (bad URLs, over-long path parameters, malformed request heads).
 * Idle connections, slow handshakes and slow uploads are closed after the timeouts of limits.ts,
 * and every HTTPS answer carries Strict-Transport-Security.
 */
import { constants as cryptoConstants } from 'node:crypto';
import { peerCertificateOf } from './peer-certificate.ts';
import Fastify, { LogController, type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { hasZodFastifySchemaValidationErrors, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { jsonShapeProblem, KessaiError, limits, newId } from '@kessai/protocol';
import { traceStorage } from '@kessai/sdk';
import { asDatabaseError } from './db-faults.ts';
import type { Db } from './db.ts';
import type { Logger } from './logger.ts';
import { databaseReadiness, Operations, registerHealthRoutes, registerMetricsRoute } from './operations.ts';
import { requestContextOf, requestIdHeader, startRequestContext } from './request-context.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** The server's readiness checks and draining state (operations.ts). */
    operations: Operations;
  }
}

export interface ServerTls {
  keyPem: string;
  certPem: string;
  caCertPem: string;
  /** Ask clients for a certificate (checked per route by requireClientCertificate). */
  requestClientCertificate?: boolean;
}

/** The connection timeouts of limits.ts (tlsHandshakeMsMax, connectionIdleMsMax, requestTimeoutMs, requestTimeoutCheckMs, keepAliveTimeoutMs). */
export interface ServerTimeouts {
  tlsHandshakeMs: number;
  connectionIdleMs: number;
  requestMs: number;
  requestCheckMs: number;
  keepAliveMs: number;
}

export const defaultServerTimeouts: Readonly<ServerTimeouts> = Object.freeze({
  tlsHandshakeMs: limits.tlsHandshakeMsMax,
  connectionIdleMs: limits.connectionIdleMsMax,
  requestMs: limits.requestTimeoutMs,
  requestCheckMs: limits.requestTimeoutCheckMs,
  keepAliveMs: limits.keepAliveTimeoutMs,
});

export interface ServerOptions {
  logger: Logger;
  tls?: ServerTls;
  /** Shorter timeouts than limits.ts, for tests that watch them act; production leaves them out. */
  timeouts?: Partial<ServerTimeouts>;
  /** The server's database: /readyz checks that it answers (operations.ts), /metrics reports its pool. */
  db?: Pick<Db, 'query' | 'kind' | 'poolStats'>;
  /** The server's operator token: /metrics answers only to it (operations.ts registerMetricsRoute). */
  metricsToken?: string;
}

/** The Strict-Transport-Security value of every HTTPS answer. */
export const strictTransportSecurity = `max-age=${limits.hstsMaxAgeSeconds}`;

export type KessaiApp = ReturnType<typeof createServer>;

/** Node's server options: its timeouts, and TLS when the server has a certificate (else null). */
function nodeServerOptions(tls: ServerTls | undefined, timeouts: ServerTimeouts) {
  // Node reads these at construction only; Fastify sets requestTimeout again, to the same value.
  const nodeTimeouts = {
    requestTimeout: timeouts.requestMs,
    headersTimeout: timeouts.requestMs,
    connectionsCheckingInterval: timeouts.requestCheckMs,
  };
  const https = tls
    ? {
        key: tls.keyPem,
        cert: tls.certPem,
        ca: tls.caCertPem,
        minVersion: 'TLSv1.2' as const,
        requestCert: tls.requestClientCertificate ?? false,
        rejectUnauthorized: false,
        // No renegotiation: a connection keeps the certificate of its handshake (peer-certificate.ts caches it).
        secureOptions: cryptoConstants.SSL_OP_NO_RENEGOTIATION,
        handshakeTimeout: timeouts.tlsHandshakeMs,
        ...nodeTimeouts,
      }
    : null;
  return { nodeTimeouts, https };
}

export function createServer(options: ServerOptions) {
  const timeouts = { ...defaultServerTimeouts, ...options.timeouts };
  const { nodeTimeouts, https } = nodeServerOptions(options.tls, timeouts);
  const app = Fastify({
    loggerInstance: options.logger,
    bodyLimit: limits.bodyBytesMax,
    ...(https ? { https } : { http: nodeTimeouts }),
    connectionTimeout: timeouts.connectionIdleMs,
    requestTimeout: timeouts.requestMs,
    keepAliveTimeout: timeouts.keepAliveMs,
    // Request-Id and trace context (request-context.ts): the id is Fastify's request.id, bound in every request log line as request_id.
    requestIdHeader: false,
    genReqId: (raw) => requestContextOf(raw).requestId,
    childLoggerFactory: (logger, bindings, childOptions, raw) => {
      const { trace } = requestContextOf(raw as IncomingMessage);
      return logger.child({ ...bindings, trace_id: trace.traceId, span_id: trace.spanId }, childOptions);
    },
    logController: new RequestLogs({ requestIdLogLabel: 'request_id' }),
    // A path that is not valid URL encoding, or a path parameter past maxParamLength, never reaches a route.
    frameworkErrors: (error, request, reply) => sendProblem(reply, toKessaiError(error, request)),
    clientErrorHandler: answerClientError,
  }).withTypeProvider<ZodTypeProvider>();
  // Set on Node's response before Fastify sees the request, so that every answer has it: errors, a
  // bad URL refused before any hook, and the event stream that writes its own head.
  if (https) app.server.prependListener('request', (_request: unknown, response: { setHeader(name: string, value: string): unknown }) => response.setHeader('strict-transport-security', strictTransportSecurity));
  // First of all: the Request-Id, so that it is on every answer too, whoever writes it.
  app.server.prependListener('request', (request: IncomingMessage, response: ServerResponse) => response.setHeader(requestIdHeader, startRequestContext(request).requestId));
  // The trace context is current for the hooks and the handler (again after the body is read: stream events run outside it), so outbound calls carry it.
  const enterTrace = (request: FastifyRequest, _reply: FastifyReply, done: () => void) => traceStorage.run(requestContextOf(request.raw).trace, done);
  app.addHook('onRequest', enterTrace);
  app.addHook('preValidation', enterTrace);
  app.addHook('onRequest', async (request, reply) => {
    reply.header(requestIdHeader, request.id); // inject() has no raw listener
  });
  // Bodies are JSON or nothing: Fastify's default text/plain parser would hand a string to the schemas.
  app.removeContentTypeParser('text/plain');
  // JSON with a repeated member name or nested past jsonDepthMax is refused before Fastify's own
  // parser (which still refuses __proto__ and constructor.prototype) reads it: see protocol json.ts.
  const defaultJsonParser = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: limits.bodyBytesMax }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    const problem = jsonShapeProblem(text);
    if (problem === 'duplicate_key') return done(new KessaiError('validation_failed', 'the body repeats a member name inside one object'), undefined);
    if (problem === 'too_deep') return done(new KessaiError('validation_failed', `the body is nested deeper than ${limits.jsonDepthMax} levels`), undefined);
    defaultJsonParser(request, text, done);
  });
  app.addHook('preValidation', refuseNulCharacters);
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler((error, request, reply) => sendProblem(reply, toKessaiError(error, request)));
  app.setNotFoundHandler((request, reply) => {
    // A path that exists for another method is method_not_allowed, with the methods it does take (RFC 9110 §15.5.6).
    const allowed = routeMethods.filter((method) => method !== request.method && app.findRoute({ method, url: request.url }) !== null);
    if (allowed.length > 0) return sendProblem(reply.header('allow', allowed.join(', ')), new KessaiError('method_not_allowed'));
    return sendProblem(reply, new KessaiError('not_found'));
  });
  addOperations(app, options);
  return app;
}

/** Readiness, metrics and draining (operations.ts): app.operations, /healthz, /readyz, /metrics. */
function addOperations(app: KessaiApp, options: ServerOptions): void {
  const operations = new Operations();
  if (options.db) {
    operations.readinessChecks.push(databaseReadiness(options.db));
    operations.metrics.watchDatabase(options.db);
  }
  app.addHook('onResponse', async (request, reply) => operations.metrics.observeRequest(request, reply));
  app.decorate('operations', operations);
  // While draining, every answer closes its connection: a kept-alive client moves to another instance.
  app.addHook('onSend', async (_request, reply, payload) => {
    if (operations.draining) reply.header('connection', 'close');
    return payload;
  });
  operations.deferRoutes(() => {
    registerHealthRoutes(app, operations, options.logger);
    registerMetricsRoute(app, operations, options.metricsToken);
  });
  // At the latest when the app loads: unless registerOpenApi took them first, to document them (Operations.takeRoutes).
  void app.register(Object.assign(async () => operations.takeRoutes()(), { [Symbol.for('skip-override')]: true }));
}

const routeMethods = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

/** A Kessai id (`pr_…`, `cart_…`): the only part of a URL a log line repeats. */
const idShape = /^[a-z]{2,5}_[0-9a-hjkmnp-tv-z]{26}$/;

/**
 * Request log lines name the route pattern and the ids in the path, never the raw URL: a caller can
 * put anything in a path or query string — a card number, a name — and logs must not keep it
 * (PCI DSS 3.3, 10). Fastify's default logs `req.url` as sent.
 */
class RequestLogs extends LogController {
  override incomingRequest(request: FastifyRequest): void {
    if (this.isLogDisabled(request)) return;
    const params = (request.params ?? {}) as Record<string, unknown>;
    const ids = Object.values(params).filter((value): value is string => typeof value === 'string' && idShape.test(value));
    // Not under `req`: the logger's request serializer would rebuild it from the raw URL.
    request.log.info({ request: { method: request.method, route: request.routeOptions.url ?? null, ...(ids.length > 0 ? { ids } : {}), remoteAddress: request.ip } }, 'incoming request');
  }
  override routeNotFound(request: FastifyRequest): void {
    if (this.isLogDisabled(request)) return;
    request.log.info({ request: { method: request.method } }, 'route not found');
  }
}

/**
 * The HTTP parser refused the request head (not HTTP, or headers past Node's maxHeaderSize), or the
 * request did not arrive within requestTimeoutMs, so no route or error handler runs: answer in the
 * same problem format, then close, as Fastify's default does.
 */
function answerClientError(error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  if (socket.writable) {
    const problem =
      error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new KessaiError('request_timeout', 'the request head and body did not arrive within the request timeout')
        : new KessaiError('validation_failed', error.code === 'HPE_HEADER_OVERFLOW' ? 'the request headers are larger than the server reads' : 'the request is not valid HTTP');
    // No request was parsed, so no Request-Id of the caller's can be trusted: a new one.
    const requestId = newId('req');
    const body = JSON.stringify(problem.toProblem(requestId));
    const hsts = (socket as Partial<TLSSocket>).encrypted ? `Strict-Transport-Security: ${strictTransportSecurity}\r\n` : '';
    socket.write(`HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/problem+json\r\nRequest-Id: ${requestId}\r\n${hsts}Connection: close\r\n\r\n${body}`);
  }
  socket.destroy(error);
}

/** PostgreSQL text cannot hold U+0000: refused at the edge as bad input, before any route can store it. */
async function refuseNulCharacters(request: FastifyRequest): Promise<void> {
  const pending: unknown[] = [request.body];
  while (pending.length > 0) {
    const value = pending.pop();
    if (typeof value === 'string') {
      if (value.includes('\u0000')) throw new KessaiError('validation_failed', 'a string contains the character U+0000');
    } else if (value !== null && typeof value === 'object') {
      for (const [key, item] of Object.entries(value)) {
        if (key.includes('\u0000')) throw new KessaiError('validation_failed', 'a key contains the character U+0000');
        pending.push(item);
      }
    }
  }
}

export function sendProblem(reply: FastifyReply, error: KessaiError): FastifyReply {
  if (error.retryAfterSeconds !== undefined) reply.header('retry-after', String(error.retryAfterSeconds));
  return reply.code(error.status).type('application/problem+json').send(error.toProblem(reply.request.id));
}

function toKessaiError(error: unknown, request: FastifyRequest): KessaiError {
  // A database that cannot be reached (db-faults.ts) is 503 with Retry-After, and a warning: the operator's problem, not the caller's, and no bug.
  const raised = asDatabaseError(error);
  if (raised instanceof KessaiError && raised.code === 'database_unavailable') {
    request.log.warn({ err: raised.cause ?? raised }, 'database unavailable: answered 503');
    return raised;
  }
  if (error instanceof KessaiError) return error;
  if (hasZodFastifySchemaValidationErrors(error)) {
    const errors = error.validation.map((issue) => ({ path: `${error.validationContext ?? 'body'}${issue.instancePath}`, message: withoutInput(issue.message ?? 'invalid') }));
    return new KessaiError('validation_failed', undefined, errors);
  }
  const fastifyError = error as FastifyError;
  switch (fastifyError.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new KessaiError('body_too_large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new KessaiError('unsupported_media_type');
    case 'FST_ERR_NOT_FOUND':
      return new KessaiError('not_found');
    case 'FST_ERR_BAD_URL':
      return new KessaiError('validation_failed', 'the path is not valid URL encoding');
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new KessaiError('validation_failed', 'a path parameter is longer than any id');
  }
  const status = fastifyError.statusCode;
  // A parse error's message can quote the body, so the detail is ours, never the parser's.
  if (typeof status === 'number' && status >= 400 && status < 500) return new KessaiError('validation_failed', 'the body is not valid JSON or not acceptable');
  request.log.error({ err: error }, 'unhandled error');
  return new KessaiError('internal_error');
}

/**
 * A schema message never repeats what the caller sent: zod quotes the names of unknown keys, and a
 * key can be anything — a card number, a holder's name — that must not travel back or into a log.
 */
function withoutInput(message: string): string {
  return /^Unrecognized keys?:/.test(message) ? 'Unrecognized key (not repeated here)' : message;
}

/**
 * onRequest hook for routes that only peers holding a certificate from the Kessai CA may call.
 * `authorized` alone is not enough: Node reports a resumed TLS 1.3 session as authorized even when
 * no certificate was ever presented, so the certificate itself must be there too.
 */
export async function requireClientCertificate(request: FastifyRequest): Promise<void> {
  const socket = request.raw.socket as TLSSocket;
  const certificate = peerCertificateOf(socket);
  if (!socket.authorized || !certificate) throw new KessaiError('client_certificate_required');
}

const fingerprintForm = (fingerprint: string) => fingerprint.replace(/:/g, '').toLowerCase();

/**
 * After requireClientCertificate: the peer's certificate must also be one of these (SHA-256 of
 * the DER certificate, hex; certificateFingerprint in tls.ts), so another client certificate of
 * the same CA is refused.
 */
export function requirePinnedClientCertificate(fingerprints: readonly string[]): (request: FastifyRequest) => Promise<void> {
  const allowed = new Set(fingerprints.map(fingerprintForm));
  return async (request) => {
    const socket = request.raw.socket as TLSSocket;
    const certificate = peerCertificateOf(socket);
    if (!socket.authorized || !certificate?.fingerprint256 || !allowed.has(fingerprintForm(certificate.fingerprint256))) throw new KessaiError('client_certificate_required', 'this client certificate is not an allowed broker');
  };
}
