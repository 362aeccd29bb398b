/**
 * Servers as their own OS processes for the tests: starts an entry point (apps/<role>/src/main.ts)
 * with its config file and waits for the `{"listening":…}` line it prints (drain readiness delay 0
 * unless `env` says otherwise); stops it with SIGTERM (SIGKILL after 5 s). Their output is kept for the failure message only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';

const root = path.resolve(import.meta.dirname, '..', '..');

export const authServerMain = 'apps/auth-server/src/main.ts';
export const settlementServerMain = 'apps/settlement-server/src/main.ts';

export interface Instance {
  child: ChildProcess;
  url: string;
  output: string[];
}

/** Starts `entry` (relative to the repository) with `configFile` and waits for its `listening` line. */
export async function startInstance(configFile: string, entry: string = authServerMain, env: Record<string, string> = {}): Promise<Instance> {
  // No readiness delay unless a test asks for one: stopping a server in a test needs no load balancer to notice.
  const childEnv = { ...process.env, KESSAI_DRAIN_READINESS_DELAY_MS: '0', ...env };
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, entry), configFile], { cwd: root, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  child.stderr!.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      output.push(line);
      if (line.startsWith('{"listening"')) resolve((JSON.parse(line) as { listening: string }).listening);
    });
    child.once('exit', (code) => reject(new Error(`${entry} process exited with ${code}: ${output.join('\n')}`)));
  });
  return { child, url, output };
}

/** SIGTERM, then SIGKILL if it has not exited within 5 s; resolves to its exit code (null if killed). */
export async function stopInstance(instance: Instance | undefined): Promise<number | null> {
  if (!instance) return null;
  if (instance.child.exitCode !== null || instance.child.signalCode !== null) return instance.child.exitCode;
  const exited = new Promise((resolve) => instance.child.once('exit', resolve));
  instance.child.kill('SIGTERM');
  await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
  if (instance.child.exitCode === null) {
    instance.child.kill('SIGKILL');
    await exited;
  }
  return instance.child.exitCode;
}

export { freePort } from '@kessai/service';

/**
 * Holds a killed server's port until it is started again (`release()` just before): other tests
 * running meanwhile take free ports for their own processes, and one could take this one. A
 * connection made to it meanwhile is closed at once, as a refused one would be.
 */
export async function holdPort(port: number, host = '127.0.0.1'): Promise<{ release(): Promise<void> }> {
  const holder = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => holder.once('error', reject).listen(port, host, resolve));
  return { release: () => new Promise<void>((done) => holder.close(() => done())) };
}
