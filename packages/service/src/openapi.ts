/**
 * OpenAPI 3.1 documents generated from the same zod schemas that validate and serialize each route
 * (@fastify/swagger with fastify-type-provider-zod's transforms). Each server serves its document at
 * `GET /openapi.json`, without authentication: it describes the API and holds no secret.
 * `npm run openapi` writes them to docs/openapi/ and test/openapi.test.ts checks they do not drift.
 */
import swagger from '@fastify/swagger';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';
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
}

type TransformInput = Parameters<typeof jsonSchemaTransform>[0];

/** jsonSchemaTransform, and the security requirement of the route's prefix. */
function transformWithSecurity(routeSecurity: OpenApiOptions['routeSecurity']) {
  return (input: TransformInput) => {
    const output = jsonSchemaTransform(input);
    const scheme = routeSecurity.find(([prefix]) => input.url.startsWith(prefix))?.[1];
    return scheme ? { ...output, schema: { ...output.schema, security: [{ [scheme]: [] }] } } : output;
  };
}

/** Registers the generator and `GET /openapi.json`; call it before any route is added. */
export async function registerOpenApi(app: KessaiApp, options: OpenApiOptions): Promise<void> {
  const used = [...new Set(options.routeSecurity.map(([, scheme]) => scheme))].sort();
  const components = { securitySchemes: Object.fromEntries(used.map((name) => [name, securitySchemes[name]])) };
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: options.title, description: options.description, version: options.version ?? '1' },
      // mutualTLS is OpenAPI 3.1's; @fastify/swagger's types stop at 3.0.
      components: components as unknown as Record<string, never>,
    },
    transform: transformWithSecurity(options.routeSecurity),
    transformObject: jsonSchemaTransformObject,
  });
  app.get('/openapi.json', { schema: { hide: true } }, async (_request, reply) => {
    reply.header('cache-control', 'no-cache');
    return app.swagger();
  });
}
