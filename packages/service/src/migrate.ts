/**
 * Schema migrations: applies the numbered SQL files `0001_name.sql`, `0002_name.sql`, … of one
 * folder in order, each in its own transaction, and records them in `schema_migrations`
 * (name = file name without `.sql`, e.g. `0001_init`) with the SHA-256 of the file's bytes.
 *
 * Limits:
 * - Forward only: there are no down migrations, and a recorded migration's file must never be
 *   changed, renamed or removed: a changed file is refused (`migration_changed`), a missing one too
 *   (`migration_missing`), before anything is applied. The checksum is over the file's exact bytes,
 *   so a checkout that rewrites line endings changes it too.
 * - A database migrated before checksums existed has rows without one: the first `migrate` after the
 *   upgrade records the checksum of the files as they are then (it cannot know older contents).
 * - Files run inside a transaction: they must not contain BEGIN/COMMIT or statements that cannot
 *   run in one (e.g. CREATE INDEX CONCURRENTLY). Files not ending in `.sql` are ignored.
 * - One `schema_migrations` table and one lock per database: servers sharing a database must
 *   share one migration folder.
 * - Each file's statements may run dbMigrationTimeoutMs (the lock wait of another process's
 *   migration included), not the per-request dbStatementTimeoutMs.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KessaiError, limits } from '@kessai/protocol';
import type { Db, Queryable, TxQueryable } from './db.ts';

interface Migration {
  version: number;
  /** File name without `.sql`. */
  name: string;
  file: string;
  sql: string;
  sha256: string;
}

/** What a server does with its migrations on start: apply the pending ones (default), or only verify that none is pending or changed. */
export type MigrationMode = 'apply' | 'verify';

/**
 * One migration as the database and the folder see it: `applied` (recorded, file unchanged),
 * `pending` (a file not recorded yet), `changed` (recorded with another checksum than the file's),
 * `missing` (recorded, no file), `unrecorded` (recorded before checksums existed: `migrate` records
 * the file's checksum).
 */
export type MigrationState = 'applied' | 'pending' | 'changed' | 'missing' | 'unrecorded';

export interface MigrationFileStatus {
  name: string;
  state: MigrationState;
  /** SHA-256 (hex) of the file, when there is one. */
  sha256?: string;
  /** The checksum recorded when it was applied, when there is one. */
  recordedSha256?: string;
  appliedAt?: Date;
}

export interface MigrationStatus {
  /** Migration names per state, in order. */
  applied: string[];
  pending: string[];
  changed: string[];
  missing: string[];
  unrecorded: string[];
  /** Every migration, recorded or on disk, in order. */
  files: MigrationFileStatus[];
}

const FILE_NAME = /^(\d{4})_(.+)\.sql$/;

interface Recorded {
  version: number;
  name: string;
  sha256: string | null;
  applied_at: Date;
}

/**
 * The `migrations` check of /readyz (operations.ts): not ready while a migration of `dir` is not
 * applied, or one the database recorded is changed or missing here — a newer release migrated the
 * database under this process, or an older one is serving it. Reads, never writes.
 */
export function migrationsReadiness(db: Queryable, dir: string): { name: string; check: () => Promise<void> } {
  // The release's files do not change under a running process: read and hashed once, not at every health check.
  let files: Promise<Migration[]> | undefined;
  return {
    name: 'migrations',
    check: async () => {
      files ??= readMigrations(dir).catch((err: unknown) => {
        files = undefined; // read again at the next check
        throw err;
      });
      const status = statusOf(await files, await readRecorded(db));
      const behind = status.pending.length + status.changed.length + status.missing.length;
      if (behind > 0) throw new Error(`${status.pending.length} pending, ${status.changed.length} changed, ${status.missing.length} missing`);
    },
  };
}

/**
 * Where `db` stands against the migrations of `dir`, without writing anything (readiness checks and
 * `kessai db status` call it): a database never migrated has every file pending.
 */
export async function migrationStatus(db: Queryable, dir: string): Promise<MigrationStatus> {
  const migrations = await readMigrations(dir);
  const recorded = await readRecorded(db);
  return statusOf(migrations, recorded);
}

/**
 * Applies numbered migrations `NNNN_name.sql` from `dir` in order, each in its own transaction,
 * recording them in `schema_migrations(version int primary key, name text not null, applied_at
 * timestamptz not null default now(), sha256 text)`. Refuses (throws) duplicate numbers, gaps, a
 * recorded migration whose file is missing (`migration_missing`) or changed (`migration_changed`),
 * before applying anything. Fills the checksum of rows recorded before checksums existed. On
 * PostgreSQL, holds `pg_advisory_xact_lock` so two processes starting at once do not both apply.
 * Returns the names it applied.
 */
export async function migrate(db: Db, dir: string): Promise<string[]> {
  const migrations = await readMigrations(dir);
  await db.transaction(async (tx) => {
    await lock(tx);
    await tx.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version int PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    );
    ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS sha256 text`);
    const status = statusOf(migrations, await readRecorded(tx));
    refuseDamaged(status, dir);
    // Rows from before checksums: the files as they are now are what was applied, as far as anyone can tell.
    for (const name of status.unrecorded) {
      const migration = migrations.find((m) => m.name === name)!;
      await tx.query('UPDATE schema_migrations SET sha256 = $1 WHERE version = $2 AND sha256 IS NULL', [migration.sha256, migration.version]);
    }
  });

  const applied: string[] = [];
  const recordedVersions = new Set((await readRecorded(db)).map((r) => r.version));
  for (const migration of migrations.filter((m) => !recordedVersions.has(m.version))) {
    try {
      // A migration may rewrite a large table: it runs under dbMigrationTimeoutMs, not the per-request statement timeout.
      const done = await db.transaction(
        async (tx) => {
          await lock(tx);
          // Another process may have applied it while we waited for the lock.
          const already = await tx.query('SELECT 1 FROM schema_migrations WHERE version = $1', [migration.version]);
          if (already.length > 0) return false;
          await tx.exec(migration.sql);
          await tx.query('INSERT INTO schema_migrations (version, name, sha256) VALUES ($1, $2, $3)', [migration.version, migration.name, migration.sha256]);
          return true;
        },
        { statementTimeoutMs: limits.dbMigrationTimeoutMs },
      );
      if (done) applied.push(migration.name);
    } catch (err) {
      throw new Error(`migrate: ${migration.file} failed: ${(err as Error).message}`, { cause: err });
    }
  }
  return applied;
}

/**
 * Refuses (throws) unless every migration of `dir` is applied with an unchanged file: a changed or
 * missing file as `migrate` does, anything pending or without a recorded checksum as
 * `migrations_pending`. Writes nothing: for servers started with `migrations: 'verify'`, whose
 * schema an operator migrates as a separate step (`kessai db migrate`).
 */
export async function verifyMigrations(db: Queryable, dir: string): Promise<MigrationStatus> {
  const status = await migrationStatus(db, dir);
  refuseDamaged(status, dir);
  const waiting = [...status.unrecorded, ...status.pending];
  if (waiting.length > 0) {
    throw new KessaiError('migrations_pending', `the database is not migrated: ${waiting.map((name) => `${name}.sql`).join(', ')} ${waiting.length === 1 ? 'is' : 'are'} pending in ${dir}; run kessai db migrate`);
  }
  return status;
}

/** What every server runs on start: `migrate` (mode 'apply', the default) or `verifyMigrations` (mode 'verify'). */
export async function prepareSchema(db: Db, dir: string, mode: MigrationMode = 'apply'): Promise<void> {
  if (mode === 'verify') await verifyMigrations(db, dir);
  else await migrate(db, dir);
}

function refuseDamaged(status: MigrationStatus, dir: string): void {
  const changed = status.files.find((f) => f.state === 'changed');
  if (changed) {
    throw new KessaiError('migration_changed', `${join(dir, `${changed.name}.sql`)} has changed since it was applied (sha256 recorded ${changed.recordedSha256}, file now ${changed.sha256}); restore the file as it was and add a new migration instead`);
  }
  const missing = status.missing[0];
  if (missing !== undefined) {
    throw new KessaiError('migration_missing', `${missing} is recorded as applied but ${dir} has no file ${missing}.sql; run the release whose migrations this database has`);
  }
}

function statusOf(migrations: readonly Migration[], recorded: readonly Recorded[]): MigrationStatus {
  const byVersion = new Map(recorded.map((r) => [r.version, r]));
  const files: MigrationFileStatus[] = [];
  for (const migration of migrations) {
    const row = byVersion.get(migration.version);
    byVersion.delete(migration.version);
    if (!row) {
      files.push({ name: migration.name, state: 'pending', sha256: migration.sha256 });
      continue;
    }
    if (row.name !== migration.name) {
      // Recorded under another name: that file is gone, and this one was never applied.
      files.push({ name: row.name, state: 'missing', appliedAt: row.applied_at, ...(row.sha256 ? { recordedSha256: row.sha256 } : {}) });
      files.push({ name: migration.name, state: 'pending', sha256: migration.sha256 });
      continue;
    }
    const state: MigrationState = row.sha256 === null ? 'unrecorded' : row.sha256 === migration.sha256 ? 'applied' : 'changed';
    files.push({ name: migration.name, state, sha256: migration.sha256, appliedAt: row.applied_at, ...(row.sha256 ? { recordedSha256: row.sha256 } : {}) });
  }
  for (const row of byVersion.values()) files.push({ name: row.name, state: 'missing', appliedAt: row.applied_at, ...(row.sha256 ? { recordedSha256: row.sha256 } : {}) });
  const named = (state: MigrationState) => files.filter((f) => f.state === state).map((f) => f.name);
  return { applied: named('applied'), pending: named('pending'), changed: named('changed'), missing: named('missing'), unrecorded: named('unrecorded'), files };
}

/** The recorded migrations, none if the table does not exist yet; `sha256` null for rows from before checksums. */
async function readRecorded(db: Queryable): Promise<Recorded[]> {
  const [table] = await db.query<{ present: boolean; checksums: boolean }>(
    `SELECT to_regclass('schema_migrations') IS NOT NULL AS present,
            EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'schema_migrations' AND column_name = 'sha256') AS checksums`,
  );
  if (!table?.present) return [];
  return db.query<Recorded>(`SELECT version, name, ${table.checksums ? 'sha256' : 'NULL::text AS sha256'}, applied_at FROM schema_migrations ORDER BY version`);
}

/** Serializes migrators across processes until the transaction ends (harmless on PGlite). */
async function lock(tx: TxQueryable): Promise<void> {
  await tx.query("SELECT pg_advisory_xact_lock(hashtext('kessai.migrate'))");
}

/** The `.sql` files of `dir` with their contents and checksums, checked to be numbered 0001, 0002, … without duplicates or gaps. */
async function readMigrations(dir: string): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((file) => file.endsWith('.sql')).sort();
  const migrations: Migration[] = [];
  for (const file of files) {
    const match = FILE_NAME.exec(file);
    if (!match) throw new Error(`migrate: ${join(dir, file)} is not named NNNN_name.sql`);
    const version = Number(match[1]);
    const expected = migrations.length + 1;
    if (version === migrations.at(-1)?.version) {
      throw new Error(`migrate: duplicate migration number ${match[1]} in ${dir} (${migrations.at(-1)?.file}, ${file})`);
    }
    if (version !== expected) {
      throw new Error(`migrate: gap in ${dir}: expected migration ${String(expected).padStart(4, '0')}, found ${file}`);
    }
    const bytes = await readFile(join(dir, file));
    migrations.push({ version, name: file.slice(0, -'.sql'.length), file, sql: bytes.toString('utf8'), sha256: createHash('sha256').update(bytes).digest('hex') });
  }
  return migrations;
}
