/**
 * docs/architecture.md cannot drift from the tree: its layout names every folder that exists (top
 * level, and the folders of apps/, packages/ and web/) and no folder that does not; its State table
 * names every table a migration of each app creates (and the tables every server's shared code
 * creates); and its "Step tags" map matches the `// step NNN:` comments in the code both ways, with
 * a row for every patent step 301–305 and 401–409 (409 as capture, void, refund, expiry, settlement).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const doc = readFileSync(path.join(root, 'docs/architecture.md'), 'utf8');
/** Folders git ignores (.gitignore's `name/` lines: node_modules, dist, test-results, wallets…) are not the tree's. */
const ignoredTopLevel = new Set(
  readFileSync(path.join(root, '.gitignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => /^[\w.-]+\/$/.test(l)).map((l) => l.slice(0, -1)),
);
const nestedParents = ['apps', 'packages', 'web'];

const folders = (dir: string): string[] =>
  readdirSync(path.join(root, dir), { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith('.') && !ignoredTopLevel.has(e.name))
    .map((e) => e.name);

/** `packages/protocol` style paths of the layout block: indent 0 is a top-level folder, indent 2 one inside it. */
function layoutFolders(): string[] {
  const block = /^```\n([\s\S]*?)^```$/m.exec(doc)?.[1] ?? '';
  const listed: string[] = [];
  let parent = '';
  for (const line of block.split('\n')) {
    const match = /^( *)([a-z0-9._-]+)\/(?:\s|$)/.exec(line);
    if (!match) continue;
    const [, indent, name] = match;
    if (indent!.length === 0) listed.push((parent = name!));
    else if (indent!.length === 2) listed.push(`${parent}/${name}`);
  }
  return listed;
}

/** The table rows under a `## heading`, as arrays of cells. */
function tableRows(heading: string): string[][] {
  const section = doc.split(/^## /m).find((part) => part.startsWith(`${heading}\n`)) ?? '';
  return section.split('\n').filter((l) => l.startsWith('|') && !l.startsWith('|---'))
    .slice(1).map((l) => l.split('|').slice(1, -1).map((c) => c.trim()));
}

const createdTables = (sql: string): string[] =>
  [...sql.matchAll(/create table (?:if not exists )?([a-z_][a-z0-9_]*)/gi)].map((m) => m[1]!.toLowerCase());

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const entry of readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const rel = `${dir}/${entry.name}`;
    if (entry.isDirectory() && entry.name !== 'node_modules' && entry.name !== 'test') sourceFiles(rel, out);
    else if (/\.tsx?$/.test(entry.name) && !/\.test\.tsx?$/.test(entry.name)) out.push(rel);
  }
  return out;
}

const tagPattern = /\/\/ step ((?:30[1-5]|40[1-9])(?: (?:capture|void|refund|expiry|settlement))?):/g;

describe('docs/architecture.md against the tree', () => {
  it('the layout lists every folder that exists and none that does not', () => {
    const listed = layoutFolders();
    for (const folder of listed) expect(statSync(path.join(root, folder), { throwIfNoEntry: false })?.isDirectory(), folder).toBe(true);
    const existing = [...folders('.'), ...nestedParents.flatMap((p) => folders(p).map((f) => `${p}/${f}`))];
    expect(existing.filter((f) => !listed.includes(f))).toEqual([]);
  });

  it('the State table names every table of every migration, per app, and the tables every server creates', () => {
    const rows = new Map(tableRows('State').map(([role, tables]) => [role!, new Set(tables!.match(/[a-z_][a-z0-9_]*/g) ?? [])]));
    for (const app of ['auth-server', 'settlement-server', 'shop']) {
      const dir = path.join(root, 'apps', app, 'migrations');
      const tables = readdirSync(dir).filter((f) => f.endsWith('.sql')).flatMap((f) => createdTables(readFileSync(path.join(dir, f), 'utf8')));
      expect(tables.length, app).toBeGreaterThan(3);
      expect(tables.filter((t) => !rows.get(app)?.has(t)), app).toEqual([]);
    }
    const shared = ['migrate.ts', 'audit.ts'].flatMap((f) => createdTables(readFileSync(path.join(root, 'packages/service/src', f), 'utf8')));
    expect(shared).toEqual(expect.arrayContaining(['schema_migrations', 'audit_log']));
    expect(shared.filter((t) => !rows.get('all')?.has(t))).toEqual([]);
  });

  it('makes no claim the tree contradicts: no design file outside the repository, no "only apps/cli reads the environment"', () => {
    expect(doc).not.toMatch(/DESIGN\.md/);
    expect(doc).not.toMatch(/Only `apps\/cli` reads the\s+environment/);
  });

  it('every patent step has a tag row, and the map matches the `// step` tags in the code both ways', () => {
    const map = new Map(tableRows('Step tags').map(([tag, files]) => [tag!, [...files!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!)]));
    const steps = ['301', '302', '303', '304', '305', ...['401', '402', '403', '404', '405', '406', '407', '408'],
      ...['capture', 'void', 'refund', 'expiry', 'settlement'].map((flow) => `409 ${flow}`)];
    expect([...map.keys()].sort()).toEqual([...steps].sort());
    const found = new Map<string, Set<string>>();
    for (const file of ['apps', 'packages', 'web'].flatMap((dir) => sourceFiles(dir))) {
      for (const match of readFileSync(path.join(root, file), 'utf8').matchAll(tagPattern)) {
        found.set(match[1]!, (found.get(match[1]!) ?? new Set()).add(file));
      }
    }
    for (const [tag, files] of map) expect([...(found.get(tag) ?? [])].sort(), `step ${tag}`).toEqual([...files].sort());
    expect([...found.keys()].filter((tag) => !map.has(tag))).toEqual([]);
  });
});
