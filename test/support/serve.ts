/**
 * `kessai serve <role>` as a child process for the tests, configured from the environment alone:
 * startServe() launches `apps/cli/src/main.ts serve <role>` with ONLY the given variables (plus
 * PATH, HOME and NODE_OPTIONS) and waits for its `{"listening":…}` line; runServe() runs one to its
 * exit (configuration errors); roleFolder() writes what one role's host needs — its certificate and
 * key signed by a test CA for the given names, the CA bundle, a keys folder and an operator token —
 * and returns the variables that point at them.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { PGlite } from '@electric-sql/pglite';
import { limits } from '@kessai/protocol';
import { buildSettlementServer, importDemoCards, loadOrCreateCardKeys, type DemoCard } from '@kessai/settlement-server';
import { certificateFingerprint, createLogger, loadOrCreateDevPki, loadOrCreateKeyRing, type LeafSpec } from '@kessai/service';
import { loadRoleConfig, openRoleDb, resolveSettlement, settlementSchema } from '@kessai/cli/serve';

const root = path.resolve(import.meta.dirname, '..', '..');
const mainTs = path.join(root, 'apps', 'cli', 'src', 'main.ts');

export type ServeRoleName = 'auth' | 'settlement' | 'shop' | 'wallet-host';

export interface Served {
  role: ServeRoleName;
  /** The URL printed in the listening line. */
  url: string;
  pid: number;
  child: ChildProcess;
  /** Every line so far, as printed. */
  stdout: string[];
  stderr: string[];
  /** Resolves to the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  /** Sends `signal` (default SIGTERM) and waits for the exit; SIGKILL after `graceMs` (default 10 s). */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | null>;
  /** SIGKILL, and wait for the exit. */
  kill(): Promise<number | null>;
}

function childEnv(env: Readonly<Record<string, string>>): Record<string, string> {
  const basics: Record<string, string> = {};
  for (const name of ['PATH', 'HOME', 'NODE_OPTIONS', 'TMPDIR']) {
    const value = process.env[name];
    if (value !== undefined) basics[name] = value;
  }
  return { ...basics, ...env };
}

/** How a process is started: `spawn` by default; the separate-hosts test starts it inside a network namespace. */
export type Launch = (command: string, args: string[], options: SpawnOptions) => ChildProcess;

function spawnServe(role: string, env: Readonly<Record<string, string>>, cwd: string, launch: Launch = spawn): ChildProcess {
  return launch(process.execPath, ['--import', 'tsx', mainTs, 'serve', role], { cwd, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
}

export interface StartServeOptions {
  /** Working directory of the process (default the repository root). */
  cwd?: string;
  /** How long to wait for the listening line (default limits.serveStartMsMax). */
  timeoutMs?: number;
  /** Starts the process (default `spawn`). */
  launch?: Launch;
}

/** Starts `kessai serve <role>` with only `env` and waits for its `{"listening":…}` line. */
export async function startServe(role: ServeRoleName, env: Readonly<Record<string, string>>, options: StartServeOptions = {}): Promise<Served> {
  const child = spawnServe(role, env, options.cwd ?? root, options.launch);
  const stdout: string[] = [];
  const stderr: string[] = [];
  child.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const lines = createInterface({ input: child.stdout! });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`kessai serve ${role} did not listen within ${options.timeoutMs ?? limits.serveStartMsMax} ms:\n${[...stdout, ...stderr].join('\n')}`));
    }, options.timeoutMs ?? limits.serveStartMsMax);
    lines.on('line', (line) => {
      stdout.push(line);
      if (line.startsWith('{"listening"')) {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { listening: string }).listening);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`kessai serve ${role} exited with ${code}:\n${[...stdout, ...stderr].join('\n')}`));
    });
  });
  const stop = async (signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<number | null> => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };
  return { role, url, pid: child.pid!, child, stdout, stderr, exited, stop, kill: () => stop('SIGKILL', 0) };
}

/** Runs `kessai serve <role>` with only `env` until it exits (a configuration it refuses); its code and output. */
export async function runServe(role: string, env: Readonly<Record<string, string>>, options: StartServeOptions = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawnServe(role, env, options.cwd ?? root);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? limits.serveStartMsMax);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  clearTimeout(timer);
  return { code, stdout, stderr };
}

export interface RoleFolderSpec {
  /** The folder to fill (created). */
  dir: string;
  /** The test CA's folder: one CA per test, shared by every role of it (created on first use). */
  caDir: string;
  /** Names in the certificate (default localhost). */
  dnsNames?: string[];
  /** Addresses in the certificate (default 127.0.0.1 and ::1). */
  ipAddresses?: string[];
  /** The certificate also serves as a TLS client (the broker's, for mutual TLS to banks). Default true. */
  client?: boolean;
  /** Fill `<dir>/db` (the role's PGlite folder) from the run's template, so the process skips PGlite's slow initdb. Default true. */
  pgliteFromTemplate?: boolean;
}

export interface RoleFolder {
  dir: string;
  certFile: string;
  keyFile: string;
  caFile: string;
  caCertPem: string;
  certPem: string;
  /** SHA-256 of the certificate, as KESSAI_BROKER_CERT_FINGERPRINTS takes it. */
  fingerprint: string;
  operatorToken: string;
  operatorTokenFile: string;
  /** KESSAI_TLS_CERT_FILE, KESSAI_TLS_KEY_FILE, KESSAI_TLS_CA_FILE, KESSAI_DATA_DIR, KESSAI_KEYS_DIR, KESSAI_OPERATOR_TOKEN_FILE. */
  env: Record<string, string>;
}

/** Writes one role's folder: tls/{cert,key,ca}.pem, keys/, operator-token (0600 files in 0700 folders), and db/ cloned from the PGlite template. */
export async function roleFolder(spec: RoleFolderSpec): Promise<RoleFolder> {
  const dir = path.resolve(spec.dir);
  const tlsDir = path.join(dir, 'tls');
  await mkdir(tlsDir, { recursive: true, mode: 0o700 });
  await mkdir(path.join(dir, 'keys'), { recursive: true, mode: 0o700 });
  const name = `leaf-${randomBytes(4).toString('hex')}`;
  const leaf: LeafSpec = { name, dnsNames: spec.dnsNames ?? ['localhost'], ipAddresses: spec.ipAddresses ?? ['127.0.0.1', '::1'], usages: spec.client === false ? ['server'] : ['server', 'client'] };
  const pki = await loadOrCreateDevPki(spec.caDir, [leaf]);
  const pair = pki.leaves[name]!;
  const certFile = path.join(tlsDir, 'cert.pem');
  const keyFile = path.join(tlsDir, 'key.pem');
  const caFile = path.join(tlsDir, 'ca.pem');
  await writeFile(certFile, pair.certPem, { mode: 0o600 });
  await writeFile(keyFile, pair.keyPem, { mode: 0o600 });
  await writeFile(caFile, pki.caCertPem, { mode: 0o600 });
  if (spec.pgliteFromTemplate !== false) await pgliteFolderFromTemplate(path.join(dir, 'db'));
  const operatorToken = randomBytes(24).toString('base64url');
  const operatorTokenFile = path.join(dir, 'operator-token');
  await writeFile(operatorTokenFile, `${operatorToken}\n`, { mode: 0o600 });
  return {
    dir,
    certFile,
    keyFile,
    caFile,
    caCertPem: pki.caCertPem,
    certPem: pair.certPem,
    fingerprint: certificateFingerprint(pair.certPem),
    operatorToken,
    operatorTokenFile,
    env: {
      KESSAI_TLS_CERT_FILE: certFile,
      KESSAI_TLS_KEY_FILE: keyFile,
      KESSAI_TLS_CA_FILE: caFile,
      KESSAI_DATA_DIR: dir,
      KESSAI_KEYS_DIR: path.join(dir, 'keys'),
      KESSAI_OPERATOR_TOKEN_FILE: operatorTokenFile,
    },
  };
}

/**
 * Fills a PGlite folder from the test run's template (a second's load instead of PGlite's initdb,
 * which takes up to 20 s); leaves a folder that exists alone. Outside vitest (the benchmark) there
 * is no template: the process runs initdb itself.
 */
export async function pgliteFolderFromTemplate(dbDir: string): Promise<void> {
  if (await stat(dbDir).then(() => true, () => false)) return;
  let template: Blob;
  try {
    // Imported here: database.ts reads vitest's provided template.
    const { pgliteTemplate } = await import('./database.ts');
    template = await pgliteTemplate();
  } catch {
    return;
  }
  await mkdir(dbDir, { recursive: true, mode: 0o700 });
  const lite = new PGlite({ dataDir: dbDir, loadDataDir: template });
  await lite.waitReady;
  await lite.close();
}

/** Writes `content` to `<dir>/<name>` with mode 0600 and returns its path (a secret or a list for a *_FILE variable). */
export async function writeConfigFile(dir: string, name: string, content: string): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, name);
  await writeFile(file, content, { mode: 0o600 });
  return file;
}

/**
 * Puts `cards` into the account store of the bank that `env` configures, before `kessai serve
 * settlement` starts on it (a PGlite folder has one user at a time): what an operator's import
 * does; `kessai serve` itself seeds no card.
 */
export async function seedBankCards(env: Readonly<Record<string, string>>, cards: readonly DemoCard[]): Promise<void> {
  const resolved = await resolveSettlement(await loadRoleConfig(settlementSchema, { ...env, KESSAI_LOG_LEVEL: 'silent' }));
  const db = await openRoleDb(resolved.database);
  try {
    const cardKeys = await loadOrCreateCardKeys(resolved.keysDir);
    const app = await buildSettlementServer(
      Object.freeze({
        issuerId: resolved.issuerId,
        name: resolved.name,
        conversionMode: resolved.conversionMode,
        publicBaseUrl: 'https://127.0.0.1',
        db,
        logger: createLogger({ name: 'seed', level: 'silent' }),
        keys: await loadOrCreateKeyRing(resolved.keysDir, [
          { name: 'cipher2', use: 'enc', alg: resolved.cipher2 },
          { name: 'authorization-signing', use: 'sig' },
        ]),
        cardKeys,
        expiryIntervalMs: 0,
      }),
    );
    await app.close();
    await importDemoCards(db, cardKeys, cards);
  } finally {
    await db.close();
  }
}
