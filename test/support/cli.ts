/** The `kessai` command line inside a test: a program with some command groups registered, run on arguments, its stdout captured; or the real command as a process. */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { Command } from 'commander';
import { registerMerchantsCommands } from '../../apps/cli/src/merchants-commands.ts';

export async function runKessai(register: (program: Command) => void, args: string[]): Promise<string> {
  const program = new Command('kessai').exitOverride();
  register(program);
  const written: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string) => written.push(String(chunk)) > 0) as typeof process.stdout.write;
  try {
    await program.parseAsync(args, { from: 'user' });
  } finally {
    process.stdout.write = write;
  }
  return written.join('');
}

/**
 * `kessai merchants …` against a test system's data folder (its operator tokens), at the broker
 * `brokerUrl`: what it printed. Commander's own error output is silenced (tests read the thrown error).
 */
export function merchantsAtBroker(dataDir: () => string, brokerUrl: () => string) {
  const cli = (args: string[]) =>
    runKessai((program) => {
      program.configureOutput({ writeErr: () => undefined });
      registerMerchantsCommands(program, dataDir());
    }, args);
  return { cli, atBroker: (...args: string[]) => cli([...args, '--url', brokerUrl()]) };
}

/** `npx tsx apps/cli/src/main.ts …` as its own process (without npx's start-up): its exit code and output. */
export function runKessaiProcess(args: string[], env: Record<string, string | undefined> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const root = path.resolve(import.meta.dirname, '..', '..');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'apps/cli/src/main.ts', ...args], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
