/**
 * Separate hosts on one machine for the tests: each host is a Linux network namespace with its
 * own address on a private bridge, its own host name (UTS namespace) and its own /etc/hosts
 * (`/etc/netns/<ns>/hosts`, which `ip netns exec` bind-mounts over /etc/hosts). The bridge sits in
 * a namespace of its own too, so the machine's own network (its 127.0.0.1, its interfaces and
 * routes) is never touched and not reachable from a host: deleting the namespaces removes every
 * veth and the bridge with them.
 *
 * Needs root and iproute2 (`netnsAvailability` says why not). Names carry this prefix and the
 * creating process id, so `sweepStaleNetworks` removes what a killed run left behind without
 * touching a run still going; `destroy()` also runs from an exit hook as a last resort.
 */
import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Every namespace and /etc/netns folder this harness makes starts with it. */
export const netnsPrefix = 'kessai-hosts-';
const netnsConfigDir = '/etc/netns';
/** The hosts' network: private, and only inside the namespaces, so runs side by side do not collide. */
const subnetPrefix = '10.77.0.';
const subnetBits = 24;
/** Interface names are at most 15 bytes (IFNAMSIZ - 1). */
const hostNamePattern = /^[a-z][a-z0-9]{0,11}$/;
const commandTimeoutMs = 10_000;

export type NetnsAvailability = { available: true } | { available: false; reason: string };

export interface HostSpec {
  /** Short name: the namespace's suffix and the bridge port's name (`v-<name>`). */
  name: string;
  /** The name peers resolve, and the certificate names, e.g. broker.kessai.test. */
  hostName: string;
}

export interface NetnsHost extends HostSpec {
  namespace: string;
  address: string;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface NetnsNetwork {
  readonly id: string;
  readonly hosts: readonly NetnsHost[];
  host(name: string): NetnsHost;
  /** Starts `command` inside the host's namespaces (network and UTS); its pid is the command's own. */
  spawn(host: string, command: string, args: string[], options?: SpawnOptions): ChildProcess;
  /** Runs `command` inside the host to its end (killed after `timeoutMs`). */
  run(host: string, command: string, args: string[], options?: { env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<RunResult>;
  /** Kills what `spawn` started and is still running, deletes the namespaces and their /etc/netns folders. */
  destroy(): Promise<void>;
}

async function ip(...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('ip', args, { timeout: commandTimeoutMs });
  return stdout;
}

function messageOf(error: unknown): string {
  const stderr = (error as { stderr?: unknown }).stderr;
  return typeof stderr === 'string' && stderr.trim() ? stderr.trim() : error instanceof Error ? error.message : String(error);
}

/** Whether this process can make network namespaces: root, `ip` present, and `ip netns add` works here. */
export async function netnsAvailability(): Promise<NetnsAvailability> {
  if (process.platform !== 'linux') return { available: false, reason: `network namespaces are Linux only (this is ${process.platform})` };
  if (process.getuid?.() !== 0) return { available: false, reason: 'network namespaces need root (run as root, as .ci/run does)' };
  try {
    await ip('-V');
  } catch (error) {
    return { available: false, reason: `iproute2's ip command is missing (${messageOf(error)})` };
  }
  const probe = `${netnsPrefix}${process.pid}-probe`;
  try {
    await ip('netns', 'add', probe);
  } catch (error) {
    return { available: false, reason: `ip netns add failed: ${messageOf(error)}` };
  }
  await ip('netns', 'del', probe).catch(() => undefined);
  return { available: true };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The creating process of a namespace or folder of this harness, from its name. */
function ownerPid(name: string): number | undefined {
  const match = new RegExp(`^${netnsPrefix}(\\d+)-`).exec(name);
  return match ? Number(match[1]) : undefined;
}

/** Deletes the namespaces and /etc/netns folders of this prefix whose creating process is gone; returns their names. */
export async function sweepStaleNetworks(): Promise<string[]> {
  const stale = (name: string) => {
    const pid = ownerPid(name);
    return pid !== undefined && pid !== process.pid && !isAlive(pid);
  };
  const swept: string[] = [];
  const listed = await ip('netns', 'list').catch(() => '');
  for (const name of listed.split('\n').map((line) => line.split(' ')[0] ?? '')) {
    if (!stale(name)) continue;
    await ip('netns', 'del', name).catch(() => undefined);
    swept.push(name);
  }
  const folders = await readdir(netnsConfigDir).catch(() => [] as string[]);
  for (const name of folders.filter(stale)) {
    await rm(`${netnsConfigDir}/${name}`, { recursive: true, force: true });
    if (!swept.includes(name)) swept.push(name);
  }
  return swept;
}

function hostsFile(hosts: readonly NetnsHost[]): string {
  return ['127.0.0.1 localhost', '::1 localhost', ...hosts.map((h) => `${h.address} ${h.hostName}`), ''].join('\n');
}

/**
 * Makes one namespace per host, each with `eth0` (its address on the private /24) joined to a
 * bridge in a hub namespace, `lo` up, and a hosts file naming every host. Undoes what it made if
 * a step fails.
 */
export async function createNetwork(specs: HostSpec[]): Promise<NetnsNetwork> {
  if (specs.length === 0 || specs.length > 200) throw new TypeError('createNetwork: between 1 and 200 hosts');
  for (const spec of specs) {
    if (!hostNamePattern.test(spec.name) || spec.name === 'hub') throw new TypeError(`createNetwork: invalid host name '${spec.name}'`);
  }
  if (new Set(specs.map((s) => s.name)).size !== specs.length) throw new TypeError('createNetwork: a host name is given twice');

  const id = `${netnsPrefix}${process.pid}-${randomBytes(3).toString('hex')}`;
  const hub = `${id}-hub`;
  const hosts = specs.map((spec, i): NetnsHost => ({ ...spec, namespace: `${id}-${spec.name}`, address: `${subnetPrefix}${i + 2}` }));
  const namespaces = [hub, ...hosts.map((h) => h.namespace)];
  const children = new Set<ChildProcess>();
  let destroyed = false;

  const removeAll = () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const ns of namespaces) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: commandTimeoutMs });
      } catch {
        // Not made yet, or already gone.
      }
    }
  };
  const onExit = () => {
    if (!destroyed) removeAll();
    for (const host of hosts) {
      try {
        execFileSync('rm', ['-rf', `${netnsConfigDir}/${host.namespace}`], { stdio: 'ignore' });
      } catch {
        // Best effort at exit.
      }
    }
  };
  process.once('exit', onExit);

  const destroy = async () => {
    if (destroyed) return;
    destroyed = true;
    process.removeListener('exit', onExit);
    const running = [...children].filter((c) => c.exitCode === null && c.signalCode === null);
    await Promise.all(
      running.map(
        (child) =>
          new Promise<void>((resolve) => {
            child.once('exit', () => resolve());
            child.kill('SIGKILL');
          }),
      ),
    );
    for (const ns of namespaces) await ip('netns', 'del', ns).catch(() => undefined);
    for (const host of hosts) await rm(`${netnsConfigDir}/${host.namespace}`, { recursive: true, force: true });
  };

  try {
    await ip('netns', 'add', hub);
    await ip('-n', hub, 'link', 'add', 'br0', 'type', 'bridge');
    await ip('-n', hub, 'link', 'set', 'br0', 'up');
    const hostsText = hostsFile(hosts);
    for (const host of hosts) {
      await ip('netns', 'add', host.namespace);
      // Both ends are made inside their namespaces: the machine's own namespace never sees them.
      await ip('link', 'add', 'eth0', 'netns', host.namespace, 'type', 'veth', 'peer', 'name', `v-${host.name}`, 'netns', hub);
      await ip('-n', hub, 'link', 'set', `v-${host.name}`, 'master', 'br0');
      await ip('-n', hub, 'link', 'set', `v-${host.name}`, 'up');
      await ip('-n', host.namespace, 'addr', 'add', `${host.address}/${subnetBits}`, 'dev', 'eth0');
      await ip('-n', host.namespace, 'link', 'set', 'eth0', 'up');
      await ip('-n', host.namespace, 'link', 'set', 'lo', 'up');
      await mkdir(`${netnsConfigDir}/${host.namespace}`, { recursive: true, mode: 0o755 });
      await writeFile(`${netnsConfigDir}/${host.namespace}/hosts`, hostsText, { mode: 0o644 });
    }
  } catch (error) {
    await destroy();
    throw new Error(`createNetwork: ${messageOf(error)}`, { cause: error });
  }

  const host = (name: string) => {
    const found = hosts.find((h) => h.name === name);
    if (!found) throw new TypeError(`no host '${name}' in this network`);
    return found;
  };

  /** `ip netns exec` (network namespace, /etc/hosts) then `unshare --uts` and `hostname`: the same pid runs the command. */
  const wrapped = (name: string, command: string, args: string[]) => {
    const { namespace, hostName } = host(name);
    return ['netns', 'exec', namespace, 'unshare', '--uts', 'sh', '-c', 'hostname "$0" && exec "$@"', hostName, command, ...args];
  };

  return {
    id,
    hosts,
    host,
    spawn(name, command, args, options = {}) {
      if (destroyed) throw new TypeError('spawn on a destroyed network');
      const child = spawn('ip', wrapped(name, command, args), options);
      children.add(child);
      child.once('exit', () => children.delete(child));
      return child;
    },
    run(name, command, args, options = {}) {
      if (destroyed) throw new TypeError('run on a destroyed network');
      return new Promise<RunResult>((resolve) => {
        execFile('ip', wrapped(name, command, args), { env: options.env ?? process.env, timeout: options.timeoutMs ?? commandTimeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
          const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? ((error as { code: number }).code) : null) : 0;
          resolve({ code, stdout, stderr });
        });
      });
    },
    destroy,
  };
}
