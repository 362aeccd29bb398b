/**
 * Issue 14 item 1: each server serves an OpenAPI 3.1 document at GET /openapi.json, generated from
 * the zod schemas its routes validate with. The committed copies under docs/openapi/ (and
 * docs/api-reference.md) must equal what the code serves; an independent validator accepts each
 * document; and a client typed by openapi-typescript from it compiles, while a wrong field does not.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { validate } from '@readme/openapi-parser';
import openapiTS, { astToString } from 'openapi-typescript';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiReferencePath, collectOpenApiDocuments, documentText, openApiDir, renderApiReference } from '../scripts/openapi.ts';
import { callJson, startTestSystem, type TestSystem } from './support/system.ts';

type Json = Record<string, unknown>;
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- reads JSON documents
type Operation = any;
const regenerate = 'the committed OpenAPI documents differ from the code: run `npm run openapi` and commit docs/openapi/ and docs/api-reference.md';

let system: TestSystem;
let documents: Record<string, Json>;
beforeAll(async () => {
  system = await startTestSystem();
  documents = await collectOpenApiDocuments(system);
}, 120_000);
afterAll(async () => system?.stop());

/** Type-checks `files` (name → source) in a temporary folder; returns the diagnostics' texts. */
async function typeCheck(files: Record<string, string>): Promise<string[]> {
  const dir = await mkdtemp(path.join(tmpdir(), 'kessai-openapi-ts-'));
  try {
    for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, name), text);
    const options: ts.CompilerOptions = { strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler, allowImportingTsExtensions: true, types: [] };
    const program = ts.createProgram(Object.keys(files).map((name) => path.join(dir, name)), options);
    return ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('OpenAPI documents', () => {
  it('each server serves its document at /openapi.json without authentication', async () => {
    for (const url of [system.auth.url, system.shop.url, system.settlements[0]!.url, system.wallet.url]) {
      const answer = await callJson(system, 'GET', `${url}/openapi.json`);
      expect(answer.status).toBe(200);
      expect(answer.contentType).toMatch(/^application\/json/);
      expect(answer.body.openapi).toBe('3.1.0');
    }
  });

  it('the committed documents and API reference equal what the code serves', async () => {
    for (const [name, document] of Object.entries(documents)) {
      const committed = await readFile(path.join(openApiDir, `${name}.json`), 'utf8').catch(() => '');
      expect(committed === documentText(document), `${regenerate} (docs/openapi/${name}.json)`).toBe(true);
    }
    const reference = await readFile(apiReferencePath, 'utf8').catch(() => '');
    expect(reference === renderApiReference(documents), `${regenerate} (docs/api-reference.md)`).toBe(true);
  });

  it('an independent validator accepts each document', async () => {
    for (const [name, document] of Object.entries(documents)) {
      const result = await validate(structuredClone(document) as never);
      expect(result.valid, `${name}: ${JSON.stringify(result)}`).toBe(true);
    }
  }, 60_000);

  it('documents money as decimal strings and names how each API authenticates', () => {
    const auth = documents['auth-server'] as any; // eslint-disable-line @typescript-eslint/no-explicit-any -- reads a JSON document
    const create = auth.paths['/v1/payment-requests'].post;
    const amount = create.requestBody.content['application/json'].schema.properties.amount_minor;
    expect(amount).toMatchObject({ type: 'string', pattern: '^(0|[1-9][0-9]{0,18})$' });
    expect(amount.description).toMatch(/decimal string/);
    expect(create.responses['201'].content['application/json'].schema.properties.amount_minor.type).toBe('string');
    expect(create.security).toEqual([{ merchantKey: [] }]);
    expect(auth.components.securitySchemes.merchantKey).toMatchObject({ type: 'http', scheme: 'bearer' });
    const bank = documents['settlement-server'] as any; // eslint-disable-line @typescript-eslint/no-explicit-any -- reads a JSON document
    expect(bank.paths['/internal/v1/authorizations'].post.security).toEqual([{ mutualTls: [] }]);
    expect(bank.components.securitySchemes.mutualTls.type).toBe('mutualTLS');
  });

  it('every operation has a summary, a unique operationId, a tag, a success answer and problem details for its errors', () => {
    const problems: string[] = [];
    for (const [name, document] of Object.entries(documents)) {
      const ids = new Set<string>();
      for (const [route, method, operation] of operationsOf(document)) {
        const at = `docs/openapi/${name}.json ${method.toUpperCase()} ${route}`;
        if (!operation.summary) problems.push(`${at}: add \`summary\` (a short line) to the route's schema`);
        if (!operation.operationId) problems.push(`${at}: add \`operationId\` (camelCase, unique in its server) to the route's schema`);
        else if (ids.has(operation.operationId)) problems.push(`${at}: operationId ${operation.operationId} is used twice in this document`);
        ids.add(operation.operationId);
        if (!operation.tags?.length) problems.push(`${at}: no tag — add its prefix to routeTags in the app's registerOpenApi call (or \`tags\` to the route's schema)`);
        const success = Object.entries(operation.responses as Record<string, Operation>).filter(([status]) => /^2/.test(status));
        if (!success.some(([, answer]) => Object.values(answer.content ?? {}).some((media: Operation) => media.schema)))
          problems.push(`${at}: no 2xx answer with a schema — add \`response: { 200: <its zod schema, from packages/protocol> }\` (or textAnswer(contentType, description) from @kessai/service for CSV, an event stream, text)`);
        for (const [status, answer] of Object.entries(operation.responses as Record<string, Operation>)) {
          if (!/^[45]/.test(status) || `${method} ${route} ${status}` === 'get /readyz 503') continue; // /readyz: not ready is its answer, not an error
          if (answer.content?.['application/problem+json']?.schema?.$ref !== '#/components/schemas/Problem')
            problems.push(`${at}: ${status} is not the shared Problem — error statuses come from registerOpenApi; a route declares a 4xx/5xx only with problemDetails (packages/protocol)`);
        }
      }
    }
    expect(problems, problems.join('\n')).toEqual([]);
  });

  it('documents every money field as a decimal string, and the Problem schema every error answer refers to', () => {
    const money = /(^|_)(minor|amount|balance|credit_line|available|captured|debits_pending|debits_posted|credits_pending|credits_posted)$/;
    const found: string[] = [];
    const wrong: string[] = [];
    for (const [name, document] of Object.entries(documents)) {
      visitProperties(document, (property, schema) => {
        if (!money.test(property)) return;
        found.push(`${name} ${property}`);
        if (schema.type !== 'string' || !/decimal string/.test(String(schema.description)))
          wrong.push(`${name}: ${property} is ${JSON.stringify(schema)} — use amountString, positiveAmountString or signedAmountString (packages/protocol)`);
      });
      const problem = (document.components as Operation).schemas.Problem;
      expect(problem.properties.code.enum, name).toContain('validation_failed');
      expect(problem.required, name).toEqual(['type', 'title', 'status', 'code']);
    }
    expect(wrong, wrong.join('\n')).toEqual([]);
    expect(found.length).toBeGreaterThan(50);
  });

  it('documents the health and metrics routes of every server (ops), and the wallet host its configuration', async () => {
    for (const [name, document] of Object.entries(documents)) {
      const paths = document.paths as Operation;
      expect(Object.keys(paths), name).toEqual(expect.arrayContaining(['/livez', '/readyz', '/metrics']));
      expect(paths['/readyz'].get.tags, name).toEqual(['ops']);
      expect(paths['/metrics'].get.responses['200'].content, name).toHaveProperty('text/plain');
      expect(paths['/metrics'].get.security, name).toEqual(name === 'wallet-host' ? undefined : [{ operatorToken: [] }]);
    }
    const tags = new Set(Object.values(documents).flatMap((document) => operationsOf(document).flatMap(([, , operation]) => operation.tags ?? [])));
    const named = ['admin', 'internal', 'merchant', 'ops', 'settlements', 'storefront', 'terminal', 'wallet', 'webhooks', 'well-known'];
    expect([...tags].sort(), 'a new tag: name it in the API reference intro (renderApiReference, scripts/openapi.ts)').toEqual(named);
    const wallet = documents['wallet-host'] as Operation;
    expect(wallet.paths['/wallet/config.json'].get.responses['200'].content['application/json'].schema.required).toEqual(['auth_base_url', 'directory_key']);
    // What the document says is what the routes answer: their answers pass through the same schemas.
    const ready = await callJson(system, 'GET', `${system.wallet.url}/readyz`);
    expect(ready.body).toEqual({ status: 'ready', checks: {} });
    const config = await callJson(system, 'GET', `${system.wallet.url}/wallet/config.json`);
    expect(Object.keys(config.body).sort()).toEqual(['auth_base_url', 'directory_key']);
  });

  it('a client typed by openapi-typescript compiles, and a wrong field name does not', async () => {
    const types = astToString(await openapiTS(structuredClone(documents['auth-server']) as never));
    const client = (field: string) => `import type { paths } from './kessai.ts';
type Create = paths['/v1/payment-requests']['post'];
export const body: Create['requestBody']['content']['application/json'] = {
  order_id: 'order-1', currency: 'JPY', amount_minor: '5700',
  line_items: [{ description: 'Tea', quantity: 1, unit_price_minor: '5700' }],
};
declare const created: Create['responses'][201]['content']['application/json'];
export const amount: string = created.${field};
`;
    expect(await typeCheck({ 'kessai.ts': types, 'client.ts': client('amount_minor') })).toEqual([]);
    const wrong = await typeCheck({ 'kessai.ts': types, 'client.ts': client('amount_minr') });
    expect(wrong.join('\n')).toMatch(/amount_minr/);
  }, 60_000);
});

const methods = ['get', 'post', 'put', 'patch', 'delete'] as const;

/** Each operation of a document: path, method, operation object. */
function operationsOf(document: Json): Array<[string, string, Operation]> {
  return Object.entries(document.paths as Record<string, Operation>).flatMap(([route, item]) =>
    methods.filter((method) => item[method]).map((method): [string, string, Operation] => [route, method, item[method]]),
  );
}

/** Calls `visit` with each named property schema anywhere in `value`. */
function visitProperties(value: unknown, visit: (property: string, schema: Operation) => void): void {
  if (Array.isArray(value)) return value.forEach((item) => visitProperties(item, visit));
  if (value === null || typeof value !== 'object') return;
  const properties = (value as Json).properties;
  if (properties && typeof properties === 'object') for (const [property, schema] of Object.entries(properties)) visit(property, schema);
  for (const child of Object.values(value)) visitProperties(child, visit);
}
