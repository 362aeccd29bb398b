/**
 * PostgreSQL for the benchmark: scratch databases made and dropped through an admin URL
 * (`--pg-url`, else KESSAI_BENCH_PG_URL or KESSAI_TEST_PG_URL), the server's durability settings,
 * and the `pgbench` TPC-B baseline against the same server (skipped, with the reason, when the
 * pgbench binary is absent: Debian's postgresql-contrib or postgresql-client package has it).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, readdir } from 'node:fs/promises';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);

export interface Scratch {
  url: string;
  drop(): Promise<void>;
}

async function asAdmin<T extends pg.QueryResultRow>(adminUrl: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

/** A fresh database `${prefix}_${random}` on the admin URL's server. */
export async function scratchDatabase(adminUrl: string, prefix: string): Promise<Scratch> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  await asAdmin(adminUrl, `CREATE DATABASE "${name}"`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: async () => void (await asAdmin(adminUrl, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)) };
}

export interface ServerSettings {
  version: string;
  fsync: string;
  synchronousCommit: string;
  sharedBuffers: string;
}

export async function serverSettings(adminUrl: string): Promise<ServerSettings> {
  const [row] = await asAdmin<{ version: string; fsync: string; sc: string; sb: string }>(
    adminUrl,
    "select current_setting('server_version') as version, current_setting('fsync') as fsync, current_setting('synchronous_commit') as sc, current_setting('shared_buffers') as sb",
  );
  return { version: row!.version, fsync: row!.fsync, synchronousCommit: row!.sc, sharedBuffers: row!.sb };
}

/** pgbench on PATH, or under /usr/lib/postgresql/<version>/bin. */
export async function findPgbench(): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(':').filter(Boolean)) {
    const candidate = `${dir}/pgbench`;
    if (await access(candidate).then(() => true, () => false)) return candidate;
  }
  const versions = await readdir('/usr/lib/postgresql').catch(() => [] as string[]);
  for (const version of versions.sort().reverse()) {
    const candidate = `/usr/lib/postgresql/${version}/bin/pgbench`;
    if (await access(candidate).then(() => true, () => false)) return candidate;
  }
  return undefined;
}

export interface PgbenchRun {
  clients: number;
  threads: number;
  scale: number;
  seconds: number;
  tps: number;
  transactions: number;
}

/** TPC-B (pgbench's built-in script) on a scratch database: `pgbench -i -s scale`, then `-c clients -j threads -T seconds`. */
export async function runPgbench(binary: string, adminUrl: string, options: { clients: number[]; scale: number; seconds: number }, onProgress: (label: string) => void): Promise<PgbenchRun[]> {
  const scratch = await scratchDatabase(adminUrl, 'kessai_bench_pgbench');
  try {
    onProgress(`pgbench -i -s ${options.scale}`);
    await run(binary, ['-i', '-q', '-s', String(options.scale), scratch.url], { maxBuffer: 1 << 24 });
    const runs: PgbenchRun[] = [];
    for (const clients of options.clients) {
      const threads = Math.min(clients, 2);
      onProgress(`pgbench TPC-B -c ${clients} -j ${threads} -T ${options.seconds}`);
      const { stdout } = await run(binary, ['-n', '-c', String(clients), '-j', String(threads), '-T', String(options.seconds), scratch.url], { maxBuffer: 1 << 24 });
      const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout)?.[1];
      const transactions = /number of transactions actually processed: (\d+)/.exec(stdout)?.[1];
      if (!tps) throw new Error(`pgbench printed no tps:\n${stdout}`);
      runs.push({ clients, threads, scale: options.scale, seconds: options.seconds, tps: Number(tps), transactions: Number(transactions ?? 0) });
    }
    return runs;
  } finally {
    await scratch.drop();
  }
}
