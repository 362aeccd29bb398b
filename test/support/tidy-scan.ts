/**
 * The scanner behind test/tidy.test.ts, after TigerBeetle's tidy.zig: reads every source file with
 * the TypeScript parser and reports each place a house rule is broken, as `rule` + `file` (+ what).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

export const tidyRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');

export type TidyRule =
  | 'function-lines'
  | 'positional-parameters'
  | 'line-width'
  | 'node-import-in-protocol'
  | 'jose-import'
  | 'cli-import'
  | 'sql-in-routes'
  | 'numeric-limit-outside-limits'
  | 'repeated-block';

export interface Violation {
  rule: TidyRule;
  file: string;
  what: string;
}

export const functionLinesMax = 70;
export const positionalParametersMax = 5;
export const lineWidthMax = 120;
/** A run of this many significant lines (see significantLines) standing in two places is a repeat. */
export const repeatedBlockLinesMin = 6;

/** Source the rules hold for: the apps, the packages, the web pages, the benchmarks and scripts (not the tests). */
const sourceRoots = ['apps', 'packages', 'web', 'bench', 'scripts'];

export function sourceFiles(): string[] {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(path.join(tidyRoot, dir), { withFileTypes: true })) {
      const rel = `${dir}/${entry.name}`;
      if (entry.isDirectory()) {
        if (!['node_modules', 'dist', 'test', 'results', 'fixtures', 'migrations'].includes(entry.name)) walk(rel);
      } else if (/\.(ts|tsx|mjs)$/.test(entry.name) && !/\.test\.tsx?$/.test(entry.name) && !entry.name.endsWith('.d.ts')) {
        files.push(rel);
      }
    }
  };
  for (const dir of sourceRoots) walk(dir);
  return files.sort();
}

type FunctionNode = ts.FunctionDeclaration | ts.MethodDeclaration | ts.ArrowFunction | ts.FunctionExpression | ts.ConstructorDeclaration;

function functionName(node: FunctionNode): string {
  if (node.name && ts.isIdentifier(node.name)) return node.name.text;
  if (ts.isConstructorDeclaration(node)) return 'constructor';
  const parent = node.parent;
  if (ts.isVariableDeclaration(parent) && ts.isIdentifier(parent.name)) return parent.name.text;
  if (ts.isPropertyAssignment(parent) && ts.isIdentifier(parent.name)) return parent.name.text;
  return '(anonymous)';
}

function lineOf(sf: ts.SourceFile, pos: number): number {
  return sf.getLineAndCharacterOfPosition(pos).line + 1;
}

/** Function length and positional parameters. */
function scanFunctions(file: string, sf: ts.SourceFile, out: Violation[]): void {
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionDeclaration(node) || ts.isMethodDeclaration(node) || ts.isArrowFunction(node) || ts.isFunctionExpression(node) || ts.isConstructorDeclaration(node)) {
      if (node.body) {
        const lines = lineOf(sf, node.body.getEnd()) - lineOf(sf, node.getStart(sf)) + 1;
        if (lines > functionLinesMax) out.push({ rule: 'function-lines', file, what: `${functionName(node)}: ${lines} lines` });
      }
      const positional = node.parameters.filter((p) => !(ts.isIdentifier(p.name) && p.name.text === 'this')).length;
      if (positional > positionalParametersMax) out.push({ rule: 'positional-parameters', file, what: `${functionName(node)}: ${positional} parameters` });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
}

function scanImports(file: string, sf: ts.SourceFile, out: Violation[]): void {
  for (const statement of sf.statements) {
    const specifier = (ts.isImportDeclaration(statement) || ts.isExportDeclaration(statement)) && statement.moduleSpecifier && ts.isStringLiteral(statement.moduleSpecifier)
      ? statement.moduleSpecifier.text : undefined;
    if (specifier === undefined) continue;
    if (file.startsWith('packages/protocol/') && specifier.startsWith('node:')) out.push({ rule: 'node-import-in-protocol', file, what: specifier });
    if (specifier === 'jose' && !file.startsWith('packages/protocol/') && !file.startsWith('packages/sdk/')) out.push({ rule: 'jose-import', file, what: specifier });
    if (specifier.startsWith('@kessai/cli') && /^(apps|packages|web)\//.test(file) && !file.startsWith('apps/cli/')) out.push({ rule: 'cli-import', file, what: specifier });
  }
}

const sqlPattern = /^\s*(select\s[\s\S]*\sfrom\s|insert\s+into\s|update\s+\w+\s+set\s|delete\s+from\s|with\s+\w+\s+as\s*\()/i;
const limitName = /(Ms|Max|Min|Seconds|Bytes|Iterations|Attempts|Timeout|Interval)[A-Z]?\w*$/;

function isNumericExpression(node: ts.Expression): boolean {
  if (ts.isNumericLiteral(node) || ts.isBigIntLiteral(node)) return true;
  if (ts.isParenthesizedExpression(node)) return isNumericExpression(node.expression);
  if (ts.isBinaryExpression(node)) return isNumericExpression(node.left) && isNumericExpression(node.right);
  if (ts.isIdentifier(node)) return /^[A-Z][A-Z0-9_]*$/.test(node.text);
  return false;
}

function scanStrings(file: string, sf: ts.SourceFile, out: Violation[]): void {
  const inRoutes = file.includes('/routes/');
  const visit = (node: ts.Node): void => {
    if (inRoutes && (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node) || ts.isTemplateHead(node)) && sqlPattern.test(node.text)) {
      out.push({ rule: 'sql-in-routes', file, what: node.text.trim().split(/\s+/).slice(0, 3).join(' ') });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  if (file === 'packages/protocol/src/limits.ts') return;
  for (const statement of sf.statements) {
    if (!ts.isVariableStatement(statement)) continue;
    for (const d of statement.declarationList.declarations) {
      if (ts.isIdentifier(d.name) && limitName.test(d.name.text) && d.initializer && isNumericExpression(d.initializer)) {
        out.push({ rule: 'numeric-limit-outside-limits', file, what: d.name.text });
      }
    }
  }
}

function scanLines(file: string, text: string, out: Violation[]): void {
  text.split('\n').forEach((line, i) => {
    if ([...line].length > lineWidthMax) out.push({ rule: 'line-width', file, what: `line ${i + 1}` });
  });
}

/** A source line as the repeat check compares it: trimmed, white space folded, with its line number. */
interface SignificantLine {
  text: string;
  line: number;
}

/** Lines that carry no logic of their own: blank, comment-only, lone punctuation, imports and re-exports. */
const insignificantLine =
  /^(?:$|\/\/|\/\*|\*|[\s{}()[\];,.:]*$|import\s|export\s+(?:type\s+)?(?:\*|\{[^}]*\})\s+from\s)/;

/** The lines of a file that the repeat check compares (the same to the letter once trimmed); the names of a
 * multi-line import (`import {` … `} from '…';`) are imports too. */
export function significantLines(text: string): SignificantLine[] {
  let inImport = false;
  return text
    .split('\n')
    .map((raw, i) => ({ text: raw.trim().replace(/\s+/g, ' '), line: i + 1 }))
    .filter((l) => {
      if (inImport) {
        if (/^\}.*from\s/.test(l.text)) inImport = false;
        return false;
      }
      if (/^import\s(?:type\s)?\{$/.test(l.text)) inImport = true;
      return !insignificantLine.test(l.text);
    });
}

/**
 * Runs of repeatedBlockLinesMin or more significant lines that stand, the same to the letter, in two
 * places (two files, or twice in one): one violation for each place, naming both. Lines alike but for
 * their names are not compared: the tree's schemas, message tables and JSX share shapes by the
 * thousand, and a shape is not a piece of logic with two homes.
 */
export function scanRepeats(files: ReadonlyMap<string, SignificantLine[]>, out: Violation[]): void {
  const n = repeatedBlockLinesMin;
  const keys = new Map<string, string[]>();
  const places = new Map<string, Array<{ file: string; at: number }>>();
  for (const [file, lines] of files) {
    const fileKeys = lines.slice(0, Math.max(0, lines.length - n + 1)).map((_, at) =>
      lines.slice(at, at + n).map((l) => l.text).join('\n'));
    keys.set(file, fileKeys);
    fileKeys.forEach((key, at) => places.set(key, [...(places.get(key) ?? []), { file, at }]));
  }
  const keyAt = (file: string, at: number) => keys.get(file)![at];
  for (const found of places.values()) {
    for (const [i, a] of found.entries()) {
      for (const b of found.slice(i + 1)) {
        // The middle of a longer run is reported from the run's start.
        if (a.at > 0 && b.at > 0 && keyAt(a.file, a.at - 1) === keyAt(b.file, b.at - 1)) continue;
        let more = 0;
        const sameAfter = (k: number) =>
          keyAt(a.file, a.at + k) !== undefined && keyAt(a.file, a.at + k) === keyAt(b.file, b.at + k);
        while (sameAfter(more + 1)) more++;
        const span = (p: { file: string; at: number }) => {
          const lines = files.get(p.file)!;
          return `${p.file}:${lines[p.at]!.line}-${lines[p.at + more + n - 1]!.line}`;
        };
        const what = `${span(a)} repeats at ${span(b)}`;
        out.push({ rule: 'repeated-block', file: a.file, what }, { rule: 'repeated-block', file: b.file, what });
      }
    }
  }
}

/** Every rule but the repeats (which compare files) over one file's text, named by its path in the tree. */
export function scanSource(file: string, text: string, out: Violation[]): void {
  const kind = file.endsWith('.tsx') ? ts.ScriptKind.TSX : ts.ScriptKind.TS;
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, kind);
  scanFunctions(file, sf, out);
  scanImports(file, sf, out);
  scanStrings(file, sf, out);
  scanLines(file, text, out);
}

export function scanTree(): Violation[] {
  const out: Violation[] = [];
  const significant = new Map<string, SignificantLine[]>();
  for (const file of sourceFiles()) {
    const text = readFileSync(path.join(tidyRoot, file), 'utf8');
    significant.set(file, significantLines(text));
    scanSource(file, text, out);
  }
  scanRepeats(significant, out);
  return out;
}

/** Violations counted per rule and file. */
export function countByRuleAndFile(violations: readonly Violation[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const v of violations) counts.set(`${v.rule} ${v.file}`, (counts.get(`${v.rule} ${v.file}`) ?? 0) + 1);
  return counts;
}
