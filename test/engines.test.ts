/**
 * `engines.node` tells the truth: it is the lowest Node version that every installed dependency
 * (production and development, from the lockfile) declares it accepts, the running Node satisfies
 * it, and README says it. A dependency upgrade that raises the floor fails here until `engines` and
 * README follow (or the upgrade is reverted / overridden, as light-my-request is).
 */
import { readFileSync } from 'node:fs';
import semver from 'semver';
import { describe, expect, it } from 'vitest';

interface LockEntry { engines?: { node?: string }; optional?: boolean; os?: string[]; cpu?: string[] }
const root = new URL('../', import.meta.url);
const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { engines: { node: string } };
const lock = JSON.parse(readFileSync(new URL('package-lock.json', root), 'utf8')) as { packages: Record<string, LockEntry> };

/** Node ranges of every locked package but platform-specific optional binaries for other platforms. */
function declaredRanges(): Array<{ name: string; range: string }> {
  return Object.entries(lock.packages)
    .filter(([path, entry]) => path.includes('node_modules/') && entry.engines?.node && !(entry.optional && (entry.os || entry.cpu)))
    .map(([path, entry]) => ({ name: path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length), range: entry.engines!.node! }));
}

/** The lowest version among the ranges' own lower bounds that satisfies every range. */
function lowestAccepted(ranges: ReadonlyArray<{ range: string }>): string | undefined {
  const candidates = ranges
    .flatMap(({ range }) => range.split('||').map((part) => semver.minVersion(part.trim())?.version))
    .filter((v): v is string => v !== undefined && semver.major(v) >= 20)
    .sort(semver.compare);
  return candidates.find((v) => ranges.every(({ range }) => semver.satisfies(v, range)));
}

describe('engines', () => {
  const ranges = declaredRanges();
  const lowest = lowestAccepted(ranges);

  it('is the lowest Node every dependency accepts', () => {
    expect(ranges.length).toBeGreaterThan(50);
    expect(lowest, 'no Node version satisfies every dependency').toBeDefined();
    const refusing = ranges.filter(({ range }) => !semver.satisfies(lowest!, range));
    expect(refusing).toEqual([]);
    expect(pkg.engines.node).toBe(`>=${lowest}`);
  });

  it('accepts the Node running the tests, and README says it', () => {
    expect(semver.satisfies(process.version, pkg.engines.node)).toBe(true);
    expect(readFileSync(new URL('README.md', root), 'utf8')).toContain(`Node ${lowest} or newer`);
  });

  it('would notice a dependency that asks for more', () => {
    // 22.12 itself would not do: eslint accepts ^22.13.0 on the 22 line.
    expect(lowestAccepted([...ranges, { range: '>=22.12.0' }])).toBe('22.13.0');
  });
});
