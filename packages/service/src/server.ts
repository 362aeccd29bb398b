/**
 * The Fastify instance every Kessai server starts from: TLS, JSON bodies up to bodyBytesMax,
 * zod schemas on the way in and out, and one error handler that answers every failure as
 * application/problem+json with a stable code — never a 500 for bad input.
 */
import Fastify, { type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import type { TLSSocket } from 'node:tls';
import { hasZodFastifySchemaValidationErrors, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { KessaiError, limits } from '@kessai/protocol';
import type { Logger } from './logger.ts';

export interface ServerTls {
  keyPem: string;
  certPem: string;
  caCertPem: string;
  /** Ask clients for a certificate (checked per route by requireClientCertificate). */
  requestClientCertificate?: boolean;
}

export interface ServerOptions {
  logger: Logger;
  tls?: ServerTls;
}

export type KessaiApp = ReturnType<typeof createServer>;

export function createServer(options: ServerOptions) {
  const https = options.tls
    ? {
        key: options.tls.keyPem,
        cert: options.tls.certPem,
        ca: options.tls.caCertPem,
        minVersion: 'TLSv1.2' as const,
        requestCert: options.tls.requestClientCertificate ?? false,
        rejectUnauthorized: false,
      }
    : null;
  const app = Fastify({
    loggerInstance: options.logger,
    bodyLimit: limits.bodyBytesMax,
    ...(https ? { https } : {}),
    requestIdHeader: false,
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler((error, request, reply) => sendProblem(reply, toKessaiError(error, request)));
  app.setNotFoundHandler((_request, reply) => sendProblem(reply, new KessaiError('not_found')));
  return app;
}

export function sendProblem(reply: FastifyReply, error: KessaiError): FastifyReply {
  return reply.code(error.status).type('application/problem+json').send(error.toProblem());
}

function toKessaiError(error: unknown, request: FastifyRequest): KessaiError {
  if (error instanceof KessaiError) return error;
  if (hasZodFastifySchemaValidationErrors(error)) {
    const errors = error.validation.map((issue) => ({ path: `${error.validationContext ?? 'body'}${issue.instancePath}`, message: issue.message ?? 'invalid' }));
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
  }
  const status = fastifyError.statusCode;
  // A parse error's message can quote the body, so the detail is ours, never the parser's.
  if (typeof status === 'number' && status >= 400 && status < 500) return new KessaiError('validation_failed', 'the body is not valid JSON or not acceptable');
  request.log.error({ err: error }, 'unhandled error');
  return new KessaiError('internal_error');
}

/** preHandler for routes that only peers holding a certificate from the Kessai CA may call. */
export async function requireClientCertificate(request: FastifyRequest): Promise<void> {
  const socket = request.raw.socket as TLSSocket;
  if (!socket.authorized) throw new KessaiError('client_certificate_required');
}
