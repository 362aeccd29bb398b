/**
 * The lowest Node version every installed dependency (production and development, read from each
 * package.json under node_modules) declares it accepts in `engines.node`. Root `engines.node` must
 * not be lower (test/engines.test.ts). Run: `npx tsx scripts/engines.ts`.
 *
 * The range grammar understood is the subset npm packages use for Node: `a || b`, comparators
 * separated by spaces, `>=`, `>`, `<`, `<=`, `=`, `^`, `~`, bare or partial versions (`20`, `10.x`).
 * Anything else throws, so a new syntax is noticed rather than misread.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

type Version = [number, number, number];
type Comparator = { op: '>=' | '<'; version: Version };

function parseVersion(text: string): { version: Version; parts: number } {
  const pieces = text.replace(/^v/, '').split('.').filter((p) => p !== 'x' && p !== '*' && p !== 'X');
  if (pieces.length === 0 || pieces.length > 3 || pieces.some((p) => !/^\d+$/.test(p))) {
    throw new Error(`unsupported version in an engines range: ${text}`);
  }
  const numbers = pieces.map(Number);
  return { version: [numbers[0] ?? 0, numbers[1] ?? 0, numbers[2] ?? 0], parts: pieces.length };
}

export function compareVersions(a: Version, b: Version): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

/** The version just above every version matching the first `parts` numbers of `v` (`20` → 21.0.0). */
function bump(v: Version, parts: number): Version {
  if (parts === 1) return [v[0] + 1, 0, 0];
  if (parts === 2) return [v[0], v[1] + 1, 0];
  return [v[0], v[1], v[2] + 1];
}

function comparators(token: string): Comparator[] {
  const match = /^(>=|<=|>|<|=|\^|~)?(.+)$/.exec(token);
  if (!match) throw new Error(`unsupported engines comparator: ${token}`);
  const op = match[1] ?? '';
  const { version, parts } = parseVersion(match[2]!);
  switch (op) {
    case '>=': return [{ op: '>=', version }];
    case '>': return [{ op: '>=', version: bump(version, parts) }];
    case '<': return [{ op: '<', version }];
    case '<=': return [{ op: '<', version: bump(version, parts) }];
    case '^': return [{ op: '>=', version }, { op: '<', version: version[0] > 0 ? [version[0] + 1, 0, 0] : bump(version, parts) }];
    case '~': return [{ op: '>=', version }, { op: '<', version: bump(version, Math.min(parts, 2)) }];
    default: return [{ op: '>=', version }, { op: '<', version: bump(version, parts) }];
  }
}

/** A range as a union of comparator sets (each an intersection). */
export function parseRange(range: string): Comparator[][] {
  return range.split('||').map((set) => set.trim().replace(/([<>=^~]+)\s+/g, '$1').split(/\s+/).flatMap(comparators));
}

export function satisfies(version: Version, range: Comparator[][]): boolean {
  return range.some((set) => set.every((c) => (c.op === '>=' ? compareVersions(version, c.version) >= 0 : compareVersions(version, c.version) < 0)));
}

/** The lowest version accepted by every range (ranges' lower bounds are the only candidates), or undefined. */
export function lowestAccepted(ranges: string[]): Version | undefined {
  const parsed = ranges.map(parseRange);
  const candidates: Version[] = [[0, 0, 0], ...parsed.flat(2).filter((c) => c.op === '>=').map((c) => c.version)];
  candidates.sort(compareVersions);
  return candidates.find((v) => parsed.every((range) => satisfies(v, range)));
}

export type EnginesEntry = { name: string; node: string };

/** Every package.json under node_modules (nested ones too) that declares `engines.node`. */
export function dependencyEngines(nodeModules: string): EnginesEntry[] {
  const found: EnginesEntry[] = [];
  const visit = (directory: string): void => {
    for (const entry of readdirSync(directory, { withFileTypes: true })) {
      if (entry.name.startsWith('.') || !(entry.isDirectory() || entry.isSymbolicLink())) continue;
      const full = path.join(directory, entry.name);
      if (entry.name.startsWith('@')) { visit(full); continue; }
      if (entry.isSymbolicLink()) continue; // the workspace's own packages
      const manifest = path.join(full, 'package.json');
      if (existsSync(manifest)) {
        const json = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string; engines?: { node?: unknown } };
        if (typeof json.engines?.node === 'string') found.push({ name: json.name ?? entry.name, node: json.engines.node });
      }
      if (existsSync(path.join(full, 'node_modules'))) visit(path.join(full, 'node_modules'));
    }
  };
  visit(nodeModules);
  return found;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const root = path.resolve(import.meta.dirname, '..');
  const entries = dependencyEngines(path.join(root, 'node_modules'));
  const lowest = lowestAccepted(entries.map((e) => e.node));
  if (!lowest) throw new Error('no Node version satisfies every dependency');
  const binding = entries.filter((e) => (lowestAccepted([e.node]) ?? [0, 0, 0])[0] >= lowest[0]);
  process.stdout.write(`lowest Node every dependency accepts: ${lowest.join('.')} (${entries.length} packages declare engines.node)\n`);
  for (const e of binding) process.stdout.write(`  ${e.name}: ${e.node}\n`);
}
