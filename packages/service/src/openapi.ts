/**
 * OpenAPI 3.1 documents generated from the same zod schemas that validate and serialize each route
 * (@fastify/swagger with fastify-type-provider-zod's transforms). Each server serves its document at
 * `GET /openapi.json`, without authentication: it describes the API and holds no secret.
 * `npm run openapi` writes them to docs/openapi/ and test/openapi.test.ts checks they do not drift.
 *
 * Each route states its own `summary`, `operationId` and success answers in its schema; this file
 * adds what follows from the path: the security scheme and the tag of its prefix, and the
 * problem-details answers (`Problem`) of its error statuses — added to the route's schema itself,
 * so they also serialize what the error handler sends.
 */
import swagger from '@fastify/swagger';
import type { RouteOptions } from 'fastify';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { problemDetails } from '@kessai/protocol';
import type { KessaiApp } from './server.ts';

/** The ways a caller proves who it is, by name: each server declares the ones its routes use. */
export const securitySchemes = {
  merchantKey: { type: 'http', scheme: 'bearer', description: 'A merchant API key (`Authorization: Bearer sk_…`).' },
  operatorToken: {
    type: 'http',
    scheme: 'bearer',
    description: "The server's operator token (`Authorization: Bearer …`).",
  },
  walletDevice: {
    type: 'http',
    scheme: 'KessaiDevice',
    description:
      "A wallet's device proof: `Authorization: KessaiDevice <JWS>` signed with the credential's device key.",
  },
  mutualTls: {
    type: 'mutualTLS',
    description: 'A client certificate issued by the Kessai CA (the broker calling a bank).',
  },
} as const;

export type SecuritySchemeName = keyof typeof securitySchemes;

export interface OpenApiOptions {
  title: string;
  description: string;
  version?: string;
  /** Which scheme protects the routes under a path prefix (the first prefix that matches wins). */
  routeSecurity: Array<[prefix: string, scheme: SecuritySchemeName]>;
  /** The tag of the routes under a path prefix, after sharedTags (the first prefix that matches wins). */
  routeTags?: Array<[prefix: string, tag: string]>;
}

/** The tags every server's routes share by prefix: operator, bank-to-broker, public keys, health and metrics. */
export const sharedTags: Array<[prefix: string, tag: string]> = [
  ['/admin/', 'admin'],
  ['/internal/', 'internal'],
  ['/.well-known/', 'well-known'],
  ['/livez', 'ops'],
  ['/readyz', 'ops'],
  ['/metrics', 'ops'],
];

const byPrefix = <T>(list: ReadonlyArray<readonly [string, T]>, url: string): T | undefined =>
  list.find(([prefix]) => url.startsWith(prefix))?.[1];

/** Every problem answer: application/problem+json with the shared `Problem` schema. */
const problemResponse = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: problemDetails } },
});
const inputs = ['body', 'querystring', 'params', 'headers'] as const;

/**
 * The error statuses of a route: any 4xx and 5xx is a problem; 400 (validation_failed) named where
 * the route reads input, 401 where a credential is asked for. A status the route states itself wins.
 */
function withProblemResponses(
  schema: Record<string, unknown>,
  scheme: SecuritySchemeName | undefined,
): Record<string, unknown> {
  const problems: Record<string, unknown> = {};
  if (inputs.some((input) => schema[input] !== undefined))
    problems['400'] = problemResponse(
      'validation_failed: the request does not match the schema (`errors` says where).',
    );
  if (scheme === 'mutualTls')
    problems['401'] = problemResponse('client_certificate_required: no client certificate, or not an allowed one.');
  else if (scheme) problems['401'] = problemResponse('unauthenticated: the credential is missing or not accepted.');
  problems['4xx'] = problemResponse('A client error, as problem details (docs/errors.md).');
  problems['5xx'] = problemResponse('A server-side failure or overload, as problem details (503s carry Retry-After).');
  return { ...schema, response: { ...problems, ...(schema.response as Record<string, unknown> | undefined) } };
}

/**
 * A success answer that is not JSON (a CSV file, an event stream, metrics): its content type, with a
 * string schema the serializer never uses (Fastify sends a string body as it is).
 */
export function textAnswer(contentType: string, description: string) {
  return { description, content: { [contentType]: { schema: z.string() } } };
}

type TransformInput = Parameters<typeof jsonSchemaTransform>[0];

/** jsonSchemaTransform, then the security requirement and the tag of the route's prefix. */
function transformByPrefix(options: OpenApiOptions) {
  const tags = [...sharedTags, ...(options.routeTags ?? [])];
  return (input: TransformInput) => {
    const output = jsonSchemaTransform(input);
    if (output.schema.hide) return output;
    const scheme = byPrefix(options.routeSecurity, input.url);
    const tag = byPrefix(tags, input.url);
    const schema = {
      ...output.schema,
      ...(tag && !output.schema.tags ? { tags: [tag] } : {}),
      ...(scheme ? { security: [{ [scheme]: [] }] } : {}),
    };
    return { ...output, schema };
  };
}

type Document = ReturnType<typeof jsonSchemaTransformObject>;

/** jsonSchemaTransformObject without the named schemas nothing refers to (`ProblemInput`: no request is a problem). */
function transformObject(input: Parameters<typeof jsonSchemaTransformObject>[0]): Document {
  const document = jsonSchemaTransformObject(input) as Document & {
    components?: { schemas?: Record<string, unknown> };
  };
  const schemas = document.components?.schemas ?? {};
  const text = JSON.stringify({ ...document, components: { ...document.components, schemas: {} } });
  for (const name of Object.keys(schemas)) if (!text.includes(`"#/components/schemas/${name}"`)) delete schemas[name];
  return document;
}

/**
 * Registers the generator and `GET /openapi.json`; call it before any route is added. The
 * operations routes that createServer holds back (/livez, /readyz, /metrics) are added after it.
 */
export async function registerOpenApi(app: KessaiApp, options: OpenApiOptions): Promise<void> {
  const used = [...new Set(options.routeSecurity.map(([, scheme]) => scheme))].sort();
  const components = { securitySchemes: Object.fromEntries(used.map((name) => [name, securitySchemes[name]])) };
  // Taken before the await, or the app's own plugin would add them first (Operations.takeRoutes).
  const addOperationsRoutes = app.operations.takeRoutes();
  // Before the generator's own hook: it keeps a reference to the same route options.
  app.addHook('onRoute', (route: RouteOptions) => {
    if (route.schema?.hide) return;
    route.schema = withProblemResponses({ ...route.schema }, byPrefix(options.routeSecurity, route.url));
  });
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: options.title, description: options.description, version: options.version ?? '1' },
      // mutualTLS is OpenAPI 3.1's; @fastify/swagger's types stop at 3.0.
      components: components as unknown as Record<string, never>,
    },
    transform: transformByPrefix(options),
    transformObject,
  });
  addOperationsRoutes();
  app.get('/openapi.json', { schema: { hide: true } }, async (_request, reply) => {
    reply.header('cache-control', 'no-cache');
    return app.swagger();
  });
}
