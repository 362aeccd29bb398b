/**
 * HAProxy in front of several processes of each role, for the load-balancer test and as the
 * example configuration of docs/operations.md ("Scaling out"): the one template below renders both,
 * and test/load-balancer.test.ts checks that the documented example is this template rendered
 * with the documented values. Every frontend is TCP mode (TLS passthrough): the broker → bank hop
 * is mutual TLS and the bank checks the broker's certificate itself, so HAProxy must not end TLS;
 * the broker and the shop are passed through the same way, so their certificates are the ones
 * clients see. Health checks are HTTPS `GET /readyz`, verified against the CA. startHaproxy runs
 * Debian's haproxy (/usr/sbin/haproxy) as a child process on a generated config.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';

export const haproxyBinary = process.env.KESSAI_HAPROXY ?? '/usr/sbin/haproxy';

/** Whether haproxy can run here (the test skips, saying so, when it cannot). */
export function haproxyAvailable(): boolean {
  return existsSync(haproxyBinary) && spawnSync(haproxyBinary, ['-v']).status === 0;
}

export interface HaproxyServer {
  name: string;
  host: string;
  port: number;
}

/** One frontend (an address the others use as the role's public base URL) and the processes behind it. */
export interface HaproxyPool {
  /** The backend's name: auth, settlement-<issuer>, shop. */
  name: string;
  bindHost: string;
  bindPort: number;
  servers: HaproxyServer[];
}

export interface HaproxyValues {
  /** PEM bundle of the CA that signed the servers' certificates: health checks verify against it. */
  caFile: string;
  statsHost: string;
  statsPort: number;
  /** Health check period. A draining server answers /readyz 503 at once and keeps serving for its readiness delay, which must exceed checkIntervalMs × checkFall. */
  checkIntervalMs: number;
  /** Failed checks before a server is taken out of the pool. */
  checkFall: number;
  /** Passed checks before a server is put back. */
  checkRise: number;
  /** Longest silence on a connection, either way; above the event stream's heartbeat (limits.sseHeartbeatMs). */
  idleTimeoutMs: number;
  pools: HaproxyPool[];
}

/**
 * The health-check and timeout values of the documented example and of the test: a draining
 * server is out of rotation after at most checkIntervalMs × checkFall (2 s) plus one check's
 * duration, well inside its readiness delay (limits.drainReadinessDelayMs, 5 s); the idle timeout
 * is four event-stream heartbeats (limits.sseHeartbeatMs, 15 s).
 */
export const lbExampleTuning = { checkIntervalMs: 1_000, checkFall: 2, checkRise: 2, idleTimeoutMs: 60_000 } as const satisfies Partial<HaproxyValues>;

/** The configuration for `values`; the only template, so the documented example cannot drift from what the test runs. */
export function renderHaproxyConfig(values: HaproxyValues): string {
  const check = `check check-ssl verify required ca-file ${values.caFile} inter ${duration(values.checkIntervalMs)} fall ${values.checkFall} rise ${values.checkRise}`;
  const pools = values.pools.map((pool) =>
    [
      `frontend ${pool.name}`,
      `    bind ${pool.bindHost}:${pool.bindPort}`,
      `    default_backend ${pool.name}`,
      '',
      `backend ${pool.name}`,
      '    balance roundrobin',
      '    option httpchk',
      '    http-check send meth GET uri /readyz ver HTTP/1.1 hdr host localhost',
      '    http-check expect status 200',
      ...pool.servers.map((server) => `    server ${server.name} ${server.host}:${server.port} ${check}`),
      '',
    ].join('\n'),
  );
  return [
    '# Kessai behind HAProxy: TCP mode (TLS passthrough), health checks on GET /readyz.',
    'global',
    '    log stderr format raw local0 notice',
    '    maxconn 4096',
    '',
    'defaults',
    '    mode tcp',
    '    log global',
    '    option redispatch',
    '    retries 2',
    '    timeout connect 2s',
    `    timeout client ${duration(values.idleTimeoutMs)}`,
    `    timeout server ${duration(values.idleTimeoutMs)}`,
    '    timeout check 2s',
    '',
    ...pools,
    'frontend stats',
    '    mode http',
    `    bind ${values.statsHost}:${values.statsPort}`,
    '    stats enable',
    '    stats uri /stats',
    '',
  ].join('\n');
}

/** HAProxy's time format: whole seconds as `5s`, anything else in milliseconds. */
function duration(ms: number): string {
  return ms % 1_000 === 0 ? `${ms / 1_000}s` : `${ms}ms`;
}

/** `haproxy -c`: the configuration's own check, with haproxy's answer when it fails. */
export function checkHaproxyConfig(configFile: string): { ok: boolean; output: string } {
  const result = spawnSync(haproxyBinary, ['-c', '-q', '-f', configFile], { encoding: 'utf8' });
  return { ok: result.status === 0, output: `${result.stdout}${result.stderr}` };
}

export interface Haproxy {
  child: ChildProcess;
  configFile: string;
  values: HaproxyValues;
  /** haproxy's log lines (health-check changes: `Server auth/auth-1 is DOWN…`), with the time each arrived. */
  log: Array<{ at: number; line: string }>;
  /** Each server's health as the stats page reports it, by `backend/server`: UP, DOWN, `UP 1/2`, `DOWN 1/2`, MAINT… */
  serverStates(): Promise<Map<string, string>>;
  /** Waits until every server named (`backend/server`) is in `state`. */
  waitForStates(servers: string[], state: 'UP' | 'DOWN', timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Starts haproxy in the foreground on a generated config and waits until its frontends accept connections. */
export async function startHaproxy(values: HaproxyValues): Promise<Haproxy> {
  const dir = await mkdtemp(path.join(tmpdir(), 'kessai-haproxy-'));
  const configFile = path.join(dir, 'haproxy.cfg');
  await writeFile(configFile, renderHaproxyConfig(values), { mode: 0o600 });
  const checked = checkHaproxyConfig(configFile);
  if (!checked.ok) throw new Error(`haproxy refused the configuration: ${checked.output}`);
  const child = spawn(haproxyBinary, ['-db', '-f', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log: Haproxy['log'] = [];
  for (const stream of [child.stdout!, child.stderr!]) createInterface({ input: stream }).on('line', (line) => log.push({ at: Date.now(), line }));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const statsUrl = `http://${values.statsHost}:${values.statsPort}/stats;csv`;

  async function serverStates(): Promise<Map<string, string>> {
    const csv = await fetch(statsUrl, { signal: AbortSignal.timeout(2_000) }).then((r) => r.text());
    const [header, ...rows] = csv.split('\n').filter((line) => line.trim() !== '');
    const columns = header!.replace(/^# /, '').split(',');
    const [px, sv, status] = ['pxname', 'svname', 'status'].map((name) => columns.indexOf(name));
    const states = new Map<string, string>();
    for (const row of rows) {
      const cells = row.split(',');
      if (cells[sv!] === 'FRONTEND' || cells[sv!] === 'BACKEND') continue;
      states.set(`${cells[px!]}/${cells[sv!]}`, cells[status!]!);
    }
    return states;
  }

  async function waitForStates(servers: string[], state: 'UP' | 'DOWN', timeoutMs = 30_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    let last = new Map<string, string>();
    for (;;) {
      last = await serverStates().catch(() => last);
      if (servers.every((server) => last.get(server) === state)) return;
      if (Date.now() > until || child.exitCode !== null) throw new Error(`haproxy: ${servers.join(', ')} not all ${state} within ${timeoutMs} ms: ${JSON.stringify(Object.fromEntries(last))}\n${log.map((l) => l.line).join('\n')}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  async function stop(): Promise<void> {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    }
    await rm(dir, { recursive: true, force: true });
  }

  try {
    for (const pool of [...values.pools, { bindHost: values.statsHost, bindPort: values.statsPort }]) await untilAccepting(pool.bindHost, pool.bindPort, child, log);
  } catch (err) {
    await stop();
    throw err;
  }
  return { child, configFile, values, log, serverStates, waitForStates, stop };
}

async function untilAccepting(host: string, port: number, child: ChildProcess, log: Haproxy['log']): Promise<void> {
  const until = Date.now() + 10_000;
  for (;;) {
    const accepted = await new Promise<boolean>((resolve) => {
      const socket = connect({ host, port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (accepted) return;
    if (Date.now() > until || child.exitCode !== null) throw new Error(`haproxy is not accepting on ${host}:${port}: ${log.map((l) => l.line).join('\n')}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
