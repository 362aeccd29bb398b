/** Issue 14 item 5: `npx kessai …` runs the developer CLI from the repository (package.json `bin`, a JS launcher over tsx). */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..');

describe('the kessai bin', () => {
  it('npx kessai --help lists the commands, through the bin launcher', async () => {
    const { stdout } = await promisify(execFile)('npx', ['--no-install', 'kessai', '--help'], { cwd: root, timeout: 60_000 });
    expect(stdout).toMatch(/^Usage: kessai/);
    expect(stdout).toContain('listen');
    expect(stdout).toContain('wallet');
  }, 90_000);

  it('the launcher hands the arguments to commander: an unknown command exits 1', async () => {
    const run = promisify(execFile)(process.execPath, [path.join(root, 'apps/cli/bin/kessai.js'), 'no-such-command'], { cwd: root, timeout: 60_000 });
    await expect(run).rejects.toMatchObject({ code: 1 });
  }, 90_000);
});
