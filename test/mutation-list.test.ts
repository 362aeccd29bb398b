/**
 * The mutation check (npm run mutation-check) runs on demand, not in CI: this test holds its list
 * (scripts/mutations.ts) to the source, so that a change that moves or rewrites one of the bank's
 * checks fails here, at once, instead of leaving that check without its mutation until the next run.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { mutations } from '../scripts/mutations.ts';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');

describe('the mutation check’s list', () => {
  it('names each mutation once', () => {
    const names = mutations.map((m) => m.name);
    expect(names.filter((name, i) => names.indexOf(name) !== i)).toEqual([]);
    expect(names.length).toBeGreaterThan(0);
  });

  it.each(mutations.map((m) => [m.name, m] as const))('%s: its line stands once in its file, and its guard tests exist', (_name, mutation) => {
    const source = readFileSync(path.join(root, mutation.file), 'utf8');
    expect(source.split(mutation.find).length - 1, `${mutation.file} no longer holds ${JSON.stringify(mutation.find)}`).toBe(1);
    expect(mutation.find).not.toBe(mutation.replace);
    expect(mutation.tests.length).toBeGreaterThan(0);
    for (const test of mutation.tests) expect(existsSync(path.join(root, test)), test).toBe(true);
  });
});
