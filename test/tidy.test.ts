/**
 * The tidy check, in the spirit of TigerBeetle's tidy.zig: the house rules of STYLE.md and issue 16
 * over every source file (apps, packages, web, bench, scripts; not the tests), read with the
 * TypeScript parser (test/support/tidy-scan.ts). Functions ≤ 70 lines; ≤ 5 positional parameters
 * (an options object beyond); lines ≤ 120 columns; no `node:*` import in packages/protocol (it runs
 * in the browser); `jose` only in packages/protocol and packages/sdk; no app or package imports
 * @kessai/cli; no SQL in a `routes/` folder (SQL lives in store and query modules); every numeric
 * limit in packages/protocol/src/limits.ts; no block of six or more lines (trimmed, not counting blank,
 * comment-only, lone-punctuation and import lines) stands in two places — one home per piece of logic.
 * What broke a rule before the check is listed, with its reason and count, in test/tidy-exceptions.ts
 * — the one list.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  countByRuleAndFile,
  scanRepeats,
  scanSource,
  scanTree,
  significantLines,
  tidyRoot,
  type TidyRule,
  type Violation,
} from './support/tidy-scan.ts';
import { tidyExceptions } from './tidy-exceptions.ts';

const violations = scanTree();
const counts = countByRuleAndFile(violations);
const allowed = new Map(tidyExceptions.map((e) => [`${e.rule} ${e.file}`, e.count]));

/** The violations of `rule` beyond what the exceptions list allows, per file. */
function beyondExceptions(rule: TidyRule): Array<{ file: string; found: number; allowed: number; what: string[] }> {
  const files = [...new Set(violations.filter((v) => v.rule === rule).map((v) => v.file))];
  return files
    .map((file) => ({ file, found: counts.get(`${rule} ${file}`) ?? 0, allowed: allowed.get(`${rule} ${file}`) ?? 0 }))
    .filter((f) => f.found > f.allowed)
    .map((f) => ({ ...f, what: violations.filter((v: Violation) => v.rule === rule && v.file === f.file).map((v) => v.what) }));
}

const rules: Array<[TidyRule, string]> = [
  ['function-lines', 'functions are at most 70 lines'],
  ['positional-parameters', 'functions take at most 5 positional parameters'],
  ['line-width', 'lines are at most 120 columns'],
  ['node-import-in-protocol', 'packages/protocol imports no node:* module'],
  ['jose-import', 'only packages/protocol and packages/sdk import jose'],
  ['cli-import', 'no app or package imports @kessai/cli'],
  ['sql-in-routes', 'no SQL in a routes/ folder'],
  ['numeric-limit-outside-limits', 'every numeric limit is in packages/protocol/src/limits.ts'],
  ['repeated-block', 'no block of six or more lines stands in two places'],
];

describe('tidy', () => {
  it.each(rules)('%s: %s (beyond the exceptions list)', (rule) => {
    expect(beyondExceptions(rule)).toEqual([]);
  });

  it('the exceptions list shrinks with the code: no count above what is still there (lower it, or remove the row)', () => {
    const stale = tidyExceptions
      .map((e) => ({ rule: e.rule, file: e.file, allowed: e.count, found: counts.get(`${e.rule} ${e.file}`) ?? 0 }))
      .filter((e) => e.allowed > e.found);
    expect(stale).toEqual([]);
  });

  it('the exceptions list names files that exist, each once per rule, with a reason and a positive count', () => {
    const keys = tidyExceptions.map((e) => `${e.rule} ${e.file}`);
    expect(keys.filter((k, i) => keys.indexOf(k) !== i)).toEqual([]);
    for (const e of tidyExceptions) {
      expect(existsSync(path.join(tidyRoot, e.file)), e.file).toBe(true);
      expect(e.count, e.file).toBeGreaterThan(0);
      expect(e.reason.length, e.file).toBeGreaterThan(10);
    }
  });

  it('the scanner finds what it looks for (so an empty result means something)', () => {
    expect(counts.size).toBeGreaterThan(0);
    for (const rule of ['function-lines', 'positional-parameters', 'line-width'] as const) {
      expect(violations.some((v) => v.rule === rule), rule).toBe(true);
    }
    // No route holds SQL any more: the rule is shown to work on a made-up route and a made-up store.
    const found: Violation[] = [];
    const query = "export const find = (db) => db.query('select id from orders where id = $1', [1]);";
    scanSource('apps/shop/src/routes/made-up.ts', query, found);
    scanSource('apps/shop/src/made-up-store.ts', query, found);
    expect(found.filter((v) => v.rule === 'sql-in-routes')).toEqual([
      { rule: 'sql-in-routes', file: 'apps/shop/src/routes/made-up.ts', what: 'select id from' },
    ]);
  });

  it('the repeat check passes over the names of a multi-line import, and reads code again after it', () => {
    const names = ['  alpha,', '  beta,', '  gamma,', '  delta,', '  epsilon,', '  zeta,', '  eta,'];
    const imported = ['import {', ...names, "} from './x.ts';", 'run();'];
    expect(significantLines(imported.join('\n')).map((l) => l.text)).toEqual(['run();']);
    const found: Violation[] = [];
    scanRepeats(new Map([['a.ts', significantLines(imported.join('\n'))], ['b.ts', significantLines(imported.join('\n'))]]), found);
    expect(found).toEqual([]);
    // The same names outside an import are code, and their repeat is found.
    const listed = ['const all = [', ...names, '];'].join('\n');
    scanRepeats(new Map([['a.ts', significantLines(listed)], ['b.ts', significantLines(listed)]]), found);
    expect(found.map((v) => v.file)).toEqual(['a.ts', 'b.ts']);
  });

  it('the repeat check names both places of a repeated run, once, and passes over lines without logic', () => {
    const block = ['const a = 1;', 'const b = 2;', '', '// a comment', 'const c = a + b;'];
    block.push('  if (c > 2) {', 'log(c);', '}', 'return c;', 'done();');
    const files = new Map([
      ['one.ts', significantLines(["import x from 'x';", 'first();', ...block, 'last();'].join('\n'))],
      ['two.ts', significantLines(['other();', ...block.map((l) => `    ${l}`)].join('\n'))],
      ['three.ts', significantLines(block.slice(0, 6).join('\n'))],
    ]);
    const found: Violation[] = [];
    scanRepeats(files, found);
    const what = 'one.ts:3-12 repeats at two.ts:2-11';
    expect(found).toEqual([
      { rule: 'repeated-block', file: 'one.ts', what },
      { rule: 'repeated-block', file: 'two.ts', what },
    ]);
  });
});
