/**
 * Schema migrations: applies the numbered SQL files `0001_name.sql`, `0002_name.sql`, … of one
 * folder in order, each in its own transaction, and records them in `schema_migrations`
 * (name = file name without `.sql`, e.g. `0001_init`).
 *
 * Limits:
 * - Forward only: there are no down migrations, and a recorded migration's file must never be
 *   changed, renamed or removed (a missing one is refused; an edited one is not detected).
 * - Files run inside a transaction: they must not contain BEGIN/COMMIT or statements that cannot
 *   run in one (e.g. CREATE INDEX CONCURRENTLY). Files not ending in `.sql` are ignored.
 * - One `schema_migrations` table and one lock per database: servers sharing a database must
 *   share one migration folder.
 * - Each file's statements may run dbMigrationTimeoutMs (the lock wait of another process's
 *   migration included), not the per-request dbStatementTimeoutMs.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { limits } from '@kessai/protocol';
import type { Db, TxQueryable } from './db.ts';

interface Migration {
  version: number;
  /** File name without `.sql`. */
  name: string;
  file: string;
}

const FILE_NAME = /^(\d{4})_(.+)\.sql$/;

/** Applies numbered migrations `NNNN_name.sql` from `dir` in order, each in its own transaction, recording them in `schema_migrations(version int primary key, name text not null, applied_at timestamptz not null default now())`. Refuses (throws) duplicate numbers, gaps, or a recorded migration whose file is missing. On PostgreSQL, holds `pg_advisory_xact_lock` so two processes starting at once do not both apply. Returns the names it applied. */
export async function migrate(db: Db, dir: string): Promise<string[]> {
  const migrations = await readMigrations(dir);
  const recorded = await db.transaction(async (tx) => {
    await lock(tx);
    await tx.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version int PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    return tx.query<{ version: number; name: string }>('SELECT version, name FROM schema_migrations ORDER BY version');
  });
  for (const { version, name } of recorded) {
    if (migrations[version - 1]?.name !== name) {
      throw new Error(`migrate: ${name} is recorded as applied but ${dir} has no file ${name}.sql`);
    }
  }

  const recordedVersions = new Set(recorded.map((r) => r.version));
  const applied: string[] = [];
  for (const migration of migrations.filter((m) => !recordedVersions.has(m.version))) {
    const sql = await readFile(join(dir, migration.file), 'utf8');
    try {
      // A migration may rewrite a large table: it runs under dbMigrationTimeoutMs, not the per-request statement timeout.
      const done = await db.transaction(
        async (tx) => {
          await lock(tx);
          // Another process may have applied it while we waited for the lock.
          const already = await tx.query('SELECT 1 FROM schema_migrations WHERE version = $1', [migration.version]);
          if (already.length > 0) return false;
          await tx.exec(sql);
          await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [migration.version, migration.name]);
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

/** Serializes migrators across processes until the transaction ends (harmless on PGlite). */
async function lock(tx: TxQueryable): Promise<void> {
  await tx.query("SELECT pg_advisory_xact_lock(hashtext('kessai.migrate'))");
}

/** The `.sql` files of `dir`, checked to be numbered 0001, 0002, … without duplicates or gaps. */
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
    migrations.push({ version, name: file.slice(0, -'.sql'.length), file });
  }
  return migrations;
}
