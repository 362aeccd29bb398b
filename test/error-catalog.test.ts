/**
 * The error catalogue, its documentation and its tests stay in step (as fastify's
 * test/internals/errors.test.js keeps docs/Reference/Errors.md): docs/errors.md lists exactly the
 * codes of errorCatalog and declineCatalog, with the catalogue's status, and the wallet's own codes;
 * and every code is asserted in an answer by at least one test (assertsCode: a mention is not enough).
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { declineCodes, errorCatalog, errorCodes } from '@kessai/protocol';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const doc = await readFile(path.join(root, 'docs/errors.md'), 'utf8');

/** The lines of the `## heading` section of the doc, up to the next `## ` heading. */
function section(heading: string): string[] {
  const lines = doc.split('\n');
  const start = lines.findIndex((line) => line.trim() === `## ${heading}`);
  if (start < 0) throw new Error(`docs/errors.md has no "## ${heading}" section`);
  const end = lines.findIndex((line, index) => index > start && line.startsWith('## '));
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

/** The rows of a section's table whose first cell is a `code`: [code, second cell]. */
function tableRows(heading: string): Array<[string, string]> {
  const rows: Array<[string, string]> = [];
  for (const line of section(heading)) {
    const match = /^\|\s*`([a-z0-9_]+)`\s*\|\s*([^|]*?)\s*\|/.exec(line);
    if (match) rows.push([match[1]!, match[2]!]);
  }
  return rows;
}

function duplicates(codes: string[]): string[] {
  return codes.filter((code, index) => codes.indexOf(code) !== index);
}

/** The members of a union of string literals, `export type Name = 'a' | 'b';`, read from a source file. */
async function unionMembers(file: string, typeName: string): Promise<string[]> {
  const source = await readFile(path.join(root, file), 'utf8');
  const declaration = new RegExp(`export type ${typeName} =([^;]+);`).exec(source);
  if (!declaration) throw new Error(`${file} no longer declares ${typeName}`);
  return [...declaration[1]!.matchAll(/'([a-z0-9_]+)'/g)].map((m) => m[1]!);
}

describe('docs/errors.md', () => {
  it('lists every code of errorCatalog once, with its status, and no code the catalogue lacks', () => {
    const rows = tableRows('Error codes');
    const listed = rows.map(([code]) => code);
    expect(duplicates(listed), 'listed twice').toEqual([]);
    expect(errorCodes.filter((code) => !listed.includes(code)), 'in errorCatalog but not in docs/errors.md').toEqual([]);
    expect(listed.filter((code) => !Object.hasOwn(errorCatalog, code)), 'in docs/errors.md but not in errorCatalog').toEqual([]);
    const wrongStatus = rows.filter(([code, status]) => Object.hasOwn(errorCatalog, code) && Number(status) !== errorCatalog[code as keyof typeof errorCatalog].status);
    expect(wrongStatus, 'documented with another status than the catalogue').toEqual([]);
  });

  it('lists every code of declineCatalog once, and no code the catalogue lacks', () => {
    const listed = tableRows('Decline codes').map(([code]) => code);
    expect(duplicates(listed), 'listed twice').toEqual([]);
    expect(declineCodes.filter((code) => !listed.includes(code)), 'in declineCatalog but not in docs/errors.md').toEqual([]);
    expect(listed.filter((code) => !(declineCodes as string[]).includes(code)), 'in docs/errors.md but not in declineCatalog').toEqual([]);
  });

  it("lists the wallet command line's own codes, and no other", async () => {
    const walletCodes = [...(await unionMembers('apps/wallet/src/commands/common.ts', 'WalletCliErrorCode')), ...(await unionMembers('apps/wallet/src/storage.ts', 'StorageErrorCode'))];
    const listed = tableRows('Wallet command-line codes').map(([code]) => code);
    expect(duplicates(listed), 'listed twice').toEqual([]);
    expect([...listed].sort()).toEqual([...walletCodes].sort());
  });

  it('describes payer_declined, the code the authentication server sets when the payer declines', async () => {
    expect(section('`payer_declined`').join('\n')).toMatch(/cancelled/);
    expect(await readFile(path.join(root, 'apps/auth-server/src/approval.ts'), 'utf8')).toContain("decline_code: 'payer_declined'");
  });
});

async function testFiles(): Promise<string[]> {
  const dirs = ['test', ...(await Promise.all(['apps', 'packages'].map(async (parent) => (await readdir(path.join(root, parent))).map((name) => path.join(parent, name, 'test'))))).flat()];
  const files: string[] = [];
  for (const dir of dirs) {
    const entries = await readdir(path.join(root, dir), { recursive: true }).catch(() => [] as string[]);
    for (const entry of entries) if (entry.endsWith('.test.ts')) files.push(path.join(dir, entry));
  }
  return files.filter((file) => file !== path.join('test', 'error-catalog.test.ts'));
}

/**
 * Whether `source` asserts `code` in an answer: the code, quoted, inside an assertion statement —
 * one that calls `expect…(` (vitest's expect, or a helper such as expectProblem or expectDecline)
 * between the statement's start and the code. A statement starts after a line ending in `;`, `=> {`
 * or `) {`. So `expect(answer.body.code).toBe('x')`, `expect(body).toMatchObject({ code: 'x' })`,
 * `expect([status, body.code]).toEqual([409, 'x'])` and `expectProblem(answer, 'x')` count; a code
 * in a fixture, a table row or a comment does not.
 */
function assertsCode(source: string, code: string): boolean {
  for (const match of source.matchAll(new RegExp(`(['"])${code}\\1`, 'g'))) {
    const lines = source.slice(0, match.index).split('\n');
    const statement: string[] = [lines.pop()!];
    while (lines.length > 0 && !/(;|=> \{|\) \{)\s*$/.test(lines.at(-1)!)) statement.unshift(lines.pop()!);
    if (/\bexpect\w*\(/.test(statement.join('\n'))) return true;
  }
  return false;
}

describe('every code has a test that asserts it in an answer', () => {
  // internal_error is what a bug in our own code answers; bad input cannot produce it by design
  // (test/input-validation.test.ts checks that none does), so no test can produce it on purpose.
  const exempt = new Set(['internal_error']);

  it('recognises an assertion, not a mention', () => {
    expect(assertsCode("expect(answer.body.code).toBe('card_invalid');", 'card_invalid')).toBe(true);
    expect(assertsCode("expectProblem(answer, 'card_invalid');", 'card_invalid')).toBe(true);
    expect(assertsCode("x();\nexpect(body).toMatchObject({\n  status: 422,\n  code: 'card_invalid',\n});", 'card_invalid')).toBe(true);
    expect(assertsCode("const rows = [{ code: 'card_invalid' }];\nexpect(rows).toHaveLength(1);", 'card_invalid')).toBe(false);
    expect(assertsCode("// answers 'card_invalid'\nawait call();", 'card_invalid')).toBe(false);
  });

  it('asserts each error code and decline code in an answer in at least one test file', async () => {
    const files = await testFiles();
    expect(files.length).toBeGreaterThan(0);
    const sources = await Promise.all(files.map((file) => readFile(path.join(root, file), 'utf8')));
    // card_expired is both an error code and a decline code: one assertion counts for both.
    const codes = [...new Set([...errorCodes, ...declineCodes])].filter((code) => !exempt.has(code));
    const missing = codes.filter((code) => !sources.some((source) => assertsCode(source, code)));
    expect(missing, `codes that no test under test/, apps/*/test or packages/*/test asserts in an answer: ${missing.join(', ')}`).toEqual([]);
  });
});
