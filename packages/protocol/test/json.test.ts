/** jsonShapeProblem and parseJson: I-JSON member names and the nesting limit, with known cases and properties. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { jsonShapeProblem, limits, parseJson } from '../src/index.ts';

describe('jsonShapeProblem', () => {
  const rows: Array<[string, string, ReturnType<typeof jsonShapeProblem>]> = [
    ['a repeated member', '{"a":1,"a":2}', 'duplicate_key'],
    ['a repeated member spelled with an escape', '{"amount_minor":"1","amount\\u005fminor":"5700"}', 'duplicate_key'],
    ['a repeated member in a nested object, with whitespace', '{"a" : 1, "b":{"c":1,"c" :2}}', 'duplicate_key'],
    ['the same member in sibling objects', '{"a":{"a":1},"b":[{"a":1},{"a":2}]}', undefined],
    ['a string value that looks like a member', '{"a":"x\\":\\"a\\":","b":1}', undefined],
    ['a member whose name ends in an escaped backslash', '{"k\\\\":1,"k":2}', undefined],
    ['nesting at jsonDepthMax', `${'['.repeat(limits.jsonDepthMax)}${']'.repeat(limits.jsonDepthMax)}`, undefined],
    ['nesting one past jsonDepthMax', `${'['.repeat(limits.jsonDepthMax + 1)}${']'.repeat(limits.jsonDepthMax + 1)}`, 'too_deep'],
  ];
  it.each(rows)('finds %s: %s → %s', (_case, text, problem) => {
    expect(jsonShapeProblem(text)).toBe(problem);
  });

  it('finds nothing in any JSON.stringify output within the nesting limit (property)', () => {
    fc.assert(fc.property(fc.jsonValue({ maxDepth: 6 }), (value) => jsonShapeProblem(JSON.stringify(value)) === undefined), { numRuns: 500 });
  });

  it('finds a member repeated anywhere in an object (property)', () => {
    const object = fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { minKeys: 1, maxKeys: 6 });
    fc.assert(
      fc.property(object, fc.jsonValue({ maxDepth: 2 }), (value, extra) => {
        const [key] = Object.keys(value);
        const text = `${JSON.stringify(value).slice(0, -1)},${JSON.stringify(key)}:${JSON.stringify(extra)}}`;
        return jsonShapeProblem(text) === 'duplicate_key';
      }),
      { numRuns: 500 },
    );
  });

  it('never throws, whatever the text (property)', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (text) => [undefined, 'duplicate_key', 'too_deep'].includes(jsonShapeProblem(text))), { numRuns: 1000 });
  });
});

describe('parseJson', () => {
  it('parses what JSON.parse parses when the shape is fine', () => {
    expect(parseJson('{"rid":"pr_1","amt":"5700"}')).toEqual({ rid: 'pr_1', amt: '5700' });
  });

  it('is a SyntaxError for a repeated member or too deep a payload, as for malformed JSON', () => {
    expect(() => parseJson('{"amt":"5700","amt":"1"}')).toThrow(SyntaxError);
    expect(() => parseJson(`${'['.repeat(limits.jsonDepthMax + 1)}${']'.repeat(limits.jsonDepthMax + 1)}`)).toThrow(SyntaxError);
    expect(() => parseJson('{"amt":')).toThrow(SyntaxError);
  });
});
