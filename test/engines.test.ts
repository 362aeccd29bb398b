/** Issue 14 item 8: root `engines.node` tells the truth — no lower than the lowest Node every installed dependency accepts. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compareVersions, dependencyEngines, lowestAccepted, parseRange, satisfies } from '../scripts/engines.ts';

const root = path.resolve(import.meta.dirname, '..');

describe('engines', () => {
  it('reads the range forms packages use', () => {
    expect(lowestAccepted(['>=20', '^20.19.0 || >=22.12.0', '>= 20.12.0'])).toEqual([20, 19, 0]);
    expect(lowestAccepted(['>=22', '^20.19.0 || ^22.13.0 || >=24'])).toEqual([22, 13, 0]);
    expect(lowestAccepted(['18 || 20 || >=22', '>=20.18.1'])).toEqual([20, 18, 1]);
    expect(satisfies([21, 0, 0], parseRange('^20.19.0 || >=22.12.0'))).toBe(false);
    expect(satisfies([19, 9, 9], parseRange('>= 10.x'))).toBe(true);
    expect(() => parseRange('>=latest')).toThrow(/unsupported/);
  });

  it('root engines.node is the lowest Node every dependency (prod and dev) accepts, and README says it', () => {
    const entries = dependencyEngines(path.join(root, 'node_modules'));
    expect(entries.length).toBeGreaterThan(50);
    const lowest = lowestAccepted(entries.map((e) => e.node));
    expect(lowest).toBeDefined();
    const manifest = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { engines: { node: string } };
    const declared = /^>=\s*(\d+)\.(\d+)(?:\.(\d+))?$/.exec(manifest.engines.node);
    expect(declared, `engines.node must be a plain ">=x.y.z": ${manifest.engines.node}`).not.toBeNull();
    const floor: [number, number, number] = [Number(declared![1]), Number(declared![2]), Number(declared![3] ?? 0)];
    expect(compareVersions(floor, lowest!)).toBeGreaterThanOrEqual(0);
    expect(readFileSync(path.join(root, 'README.md'), 'utf8')).toContain(`Node ${floor.join('.')} or newer`);
  });
});
