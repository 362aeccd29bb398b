/**
 * The mutation check of the issuer's own checks (docs/threat-model.md, "Every check has a test"):
 * for each check the bank runs on what a compromised authentication server forwards, remove it from
 * the source, run the test files that guard it, and expect them to FAIL (the run fails when any of
 * them does); then restore the source.
 * A mutation the tests survive is a check with no test. Runs on demand (about 30 s a mutation):
 *
 *   npm run mutation-check                 every mutation
 *   npm run mutation-check -- amount nonce  the named ones
 *
 * Exits 1 when a mutation survives, or when a mutation no longer applies (the source changed); 2
 * when the guard tests fail before any mutation (every mutation would then look killed).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mutations, type Mutation } from './mutations.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function run(mutation: Mutation): 'killed' | 'survived' {
  const file = path.join(root, mutation.file);
  const original = readFileSync(file, 'utf8');
  if (!original.includes(mutation.find)) throw new Error(`mutation ${mutation.name} no longer applies to ${mutation.file}: update scripts/mutation-check.ts`);
  writeFileSync(file, original.replace(mutation.find, mutation.replace));
  try {
    const result = spawnSync('npx', ['vitest', 'run', ...mutation.tests, '--reporter=dot'], { cwd: root, encoding: 'utf8', env: process.env });
    return result.status === 0 ? 'survived' : 'killed';
  } finally {
    writeFileSync(file, original);
  }
}

const wanted = process.argv.slice(2);
const chosen = wanted.length === 0 ? mutations : mutations.filter((m) => wanted.includes(m.name));
// The guards must pass on the unmutated source first: otherwise every mutation would look killed.
const guards = [...new Set(chosen.flatMap((m) => m.tests))];
const baseline = spawnSync('npx', ['vitest', 'run', ...guards, '--reporter=dot'], { cwd: root, encoding: 'utf8', env: process.env });
if (baseline.status !== 0) {
  console.log(`the guard tests fail on the unmutated source (${guards.join(', ')}): fix them first`);
  process.exit(2);
}
console.log(`baseline: ${guards.join(', ')} pass on the unmutated source`);
let survivors = 0;
for (const mutation of chosen) {
  const started = Date.now();
  const outcome = run(mutation);
  if (outcome === 'survived') survivors++;
  console.log(`${outcome === 'killed' ? 'killed  ' : 'SURVIVED'}  ${mutation.name.padEnd(24)} ${mutation.check} (${Math.round((Date.now() - started) / 1000)} s)`);
}
console.log(`${chosen.length - survivors} of ${chosen.length} mutations killed`);
if (survivors > 0 || chosen.length === 0) process.exit(1);
