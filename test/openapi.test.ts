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
    for (const url of [system.auth.url, system.shop.url, system.settlements[0]!.url]) {
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
