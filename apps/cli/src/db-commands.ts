/**
 * `kessai db status|migrate --role <auth|settlement|shop> [--database-url URL | --data-dir DIR]`:
 * the schema as a separate operator step, for servers started with `migrations: 'verify'`. Status
 * reads only; migrate applies what is pending under the same advisory lock as a server's start,
 * and refuses a changed or missing applied migration (and creates the audit log, as a server's
 * start does). `kessai db export --role R --data-dir DIR` writes a PGlite folder's rows as SQL that
 * psql loads into a PostgreSQL database migrated to the same migrations. A PGlite folder has one
 * session: use it only while its server is stopped.
 */
import { randomBytes } from 'node:crypto';
import { access, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { migrationsDir as authMigrations } from '@kessai/auth-server';
import { KessaiError, limits } from '@kessai/protocol';
import { ensureAuditLog, migrate, migrationStatus, openDb, type Db, type MigrationStatus, type Queryable } from '@kessai/service';
import { migrationsDir as settlementMigrations } from '@kessai/settlement-server';
import { migrationsDir as shopMigrations } from '@kessai/shop';

export type DbRole = 'auth' | 'settlement' | 'shop';

export interface DbOptions {
  role: string;
  /** A PostgreSQL database (default KESSAI_DATABASE_URL). */
  databaseUrl?: string;
  /** The role's own data folder, as `kessai serve` and `kessai start` lay it out: its PGlite database is `<dataDir>/db`. */
  dataDir?: string;
}

/** Exit codes: 0 up to date, 1 the command failed, 2 migrations pending (`kessai db migrate` applies them), 3 an applied migration changed or missing (migrate refuses). */
export const dbExit = { upToDate: 0, failed: 1, pending: 2, damaged: 3 } as const;

export const dbMigrationsDirs: Readonly<Record<DbRole, string>> = { auth: authMigrations, settlement: settlementMigrations, shop: shopMigrations };

function roleOf(role: string): DbRole {
  if (role === 'auth' || role === 'settlement' || role === 'shop') return role;
  throw new KessaiError('validation_failed', '--role must be auth, settlement or shop');
}

/** The database the options name; `create` false refuses a PGlite folder that does not exist yet (status never creates one). */
async function openTarget(options: DbOptions, create: boolean): Promise<{ db: Db; where: string }> {
  if ((options.databaseUrl === undefined) === (options.dataDir === undefined)) throw new KessaiError('validation_failed', 'give one of --database-url (or KESSAI_DATABASE_URL) and --data-dir');
  if (options.databaseUrl !== undefined) {
    // The URL may carry a password: name the host and database only.
    const url = new URL(options.databaseUrl);
    return { db: await openDb({ url: options.databaseUrl, poolSizeMax: 1 }), where: `${url.host}${url.pathname}` };
  }
  const folder = path.join(path.resolve(options.dataDir!), 'db');
  if (!create && !(await access(folder).then(() => true, () => false))) throw new KessaiError('validation_failed', `no PGlite database in ${folder}`);
  return { db: await openDb({ dataDir: folder }), where: folder };
}

const exitOf = (status: MigrationStatus) =>
  status.changed.length + status.missing.length > 0 ? dbExit.damaged : status.pending.length + status.unrecorded.length > 0 ? dbExit.pending : dbExit.upToDate;

/** One line per migration (state, name, applied time) and a summary, with the exit code. */
export async function dbStatus(options: DbOptions): Promise<{ exitCode: number; lines: string[] }> {
  const role = roleOf(options.role);
  const { db, where } = await openTarget(options, false);
  try {
    const status = await migrationStatus(db, dbMigrationsDirs[role]);
    const lines = status.files.map((f) => `${f.state.padEnd(10)} ${f.name}${f.appliedAt ? `  applied ${f.appliedAt.toISOString()}` : ''}${f.state === 'changed' ? `  sha256 recorded ${f.recordedSha256}, file ${f.sha256}` : ''}`);
    const counts = (['applied', 'pending', 'changed', 'missing', 'unrecorded'] as const).filter((state) => status[state].length > 0).map((state) => `${status[state].length} ${state}`);
    const exitCode = exitOf(status);
    const advice = exitCode === dbExit.pending ? ': run kessai db migrate' : exitCode === dbExit.damaged ? ': an applied migration was changed or removed; run the release the database was migrated with' : '';
    lines.push(`${role} at ${where}: ${counts.join(', ') || 'no migrations'}${advice}`);
    return { exitCode, lines };
  } finally {
    await db.close();
  }
}

/** Applies the pending migrations; refuses (migration_changed, migration_missing) before applying any if an applied one changed. */
export async function dbMigrate(options: DbOptions): Promise<{ exitCode: number; lines: string[] }> {
  const role = roleOf(options.role);
  const { db, where } = await openTarget(options, true);
  try {
    const applied = await migrate(db, dbMigrationsDirs[role]);
    // The audit log is not a migration: every server creates it at start (audit.ts); so does this, so the schema is complete before data is loaded.
    await ensureAuditLog(db);
    return { exitCode: dbExit.upToDate, lines: [...applied.map((name) => `applied    ${name}`), `${role} at ${where}: ${applied.length === 0 ? 'up to date' : `${applied.length} applied`}`] };
  } finally {
    await db.close();
  }
}

/** Tables in an order where each comes after the tables its foreign keys name (a cycle is refused). */
async function tablesInLoadOrder(db: Queryable): Promise<string[]> {
  const tables = (await db.query<{ name: string }>("SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'schema_migrations' ORDER BY tablename")).map((t) => t.name);
  const edges = await db.query<{ child: string; parent: string }>(
    `SELECT c.relname AS child, p.relname AS parent FROM pg_constraint k
       JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE k.contype = 'f' AND n.nspname = current_schema() AND c.oid <> p.oid`,
  );
  const ordered: string[] = [];
  const remaining = new Set(tables);
  while (remaining.size > 0) {
    const ready = [...remaining].filter((t) => !edges.some((e) => e.child === t && remaining.has(e.parent)));
    if (ready.length === 0) throw new Error(`export: the foreign keys between ${[...remaining].join(', ')} form a cycle`);
    for (const t of ready) {
      ordered.push(t);
      remaining.delete(t);
    }
  }
  return ordered;
}

const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;

/**
 * A PGlite folder's rows as one SQL script for psql: a check that the target has the same
 * migrations (names and checksums) and empty tables, then each table's rows in foreign-key order
 * as `INSERT … SELECT * FROM json_populate_recordset(…)` (dbExportRowsPerStatement rows each; JSON
 * keeps every type exactly: bigint and numeric as digits, bytea as hex, timestamptz with its
 * offset), then the sequences. Run it in one transaction: `psql -v ON_ERROR_STOP=1
 * --single-transaction -f FILE URL`.
 */
export async function dbExport(options: DbOptions & { out?: string }): Promise<{ exitCode: number; lines: string[]; sql: string }> {
  const role = roleOf(options.role);
  if (options.databaseUrl !== undefined || options.dataDir === undefined) throw new KessaiError('validation_failed', 'export reads a PGlite folder: give --data-dir (a PostgreSQL database is exported with pg_dump)');
  const { db, where } = await openTarget(options, false);
  try {
    const status = await migrationStatus(db, dbMigrationsDirs[role]);
    if (exitOf(status) !== dbExit.upToDate) throw new KessaiError('migrations_pending', `${where} is not migrated to this release's ${role} migrations: run kessai db migrate --role ${role} --data-dir … first`);
    const fingerprint = status.files.map((f) => `${f.name}:${f.sha256}`).join(',');
    const tables = await tablesInLoadOrder(db);
    const tag = `$kessai_${randomBytes(6).toString('hex')}$`;
    const out: string[] = [
      `-- Kessai ${role} data exported from ${where} at ${new Date().toISOString()}.`,
      `-- Load into an empty PostgreSQL database migrated by this release (kessai db migrate --role ${role} --database-url URL):`,
      '--   psql -v ON_ERROR_STOP=1 --single-transaction -f THIS_FILE URL',
      `DO ${tag} BEGIN`,
      `  IF (SELECT string_agg(name || ':' || sha256, ',' ORDER BY version) FROM schema_migrations) IS DISTINCT FROM '${fingerprint}' THEN`,
      `    RAISE EXCEPTION 'the target database does not have the migrations of this export: run kessai db migrate --role ${role} on it first (same release)';`,
      '  END IF;',
      ...tables.map((t) => `  IF EXISTS (SELECT 1 FROM ${ident(t)}) THEN RAISE EXCEPTION 'the target table ${t} is not empty'; END IF;`),
      `END ${tag};`,
    ];
    let rowsTotal = 0;
    for (const table of tables) {
      const rows = (await db.query<{ row: string }>(`SELECT row_to_json(t)::text AS row FROM ${ident(table)} t`)).map((r) => r.row);
      rowsTotal += rows.length;
      for (let i = 0; i < rows.length; i += limits.dbExportRowsPerStatement) {
        const json = `[${rows.slice(i, i + limits.dbExportRowsPerStatement).join(',')}]`;
        if (json.includes(tag)) throw new Error('export: a row holds the quoting tag; run the export again');
        out.push(`INSERT INTO ${ident(table)} OVERRIDING SYSTEM VALUE SELECT * FROM json_populate_recordset(NULL::${ident(table)}, ${tag}${json}${tag});`);
      }
    }
    const sequences = await db.query<{ name: string; last: bigint | null }>('SELECT sequencename AS name, last_value AS last FROM pg_sequences WHERE schemaname = current_schema() ORDER BY sequencename');
    for (const seq of sequences) if (seq.last !== null) out.push(`SELECT setval('${ident(seq.name).replace(/'/g, "''")}', ${seq.last}, true);`);
    const sql = `${out.join('\n')}\n`;
    if (options.out !== undefined) {
      const file = path.resolve(options.out);
      if (await stat(file).then(() => true, () => false)) throw new KessaiError('validation_failed', `${file} exists`);
      const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
      await writeFile(temp, sql, { mode: 0o600, flag: 'wx' });
      await rename(temp, file);
    }
    const summary = `${role} at ${where}: ${rowsTotal} rows of ${tables.length} tables${options.out !== undefined ? ` written to ${path.resolve(options.out)}` : ''}`;
    return { exitCode: dbExit.upToDate, lines: [summary], sql };
  } finally {
    await db.close();
  }
}

export function registerDbCommands(program: Command, databaseUrlDefault: string | undefined): Command {
  const db = program.command('db').description('operator: the schema of one role’s database (status, migrate)');
  const common = (command: Command) =>
    command
      .requiredOption('--role <role>', 'auth, settlement or shop')
      .option('--database-url <url>', 'the role’s PostgreSQL database (default KESSAI_DATABASE_URL)')
      .option('--data-dir <dir>', 'the role’s data folder; its PGlite database is <dir>/db (only while the server is stopped)');
  const run = (action: (options: DbOptions) => Promise<{ exitCode: number; lines: string[] }>) => async (options: DbOptions, command: Command) => {
    const target = options.dataDir === undefined && options.databaseUrl === undefined && databaseUrlDefault ? { ...options, databaseUrl: databaseUrlDefault } : options;
    try {
      const result = await action(target);
      for (const line of result.lines) process.stdout.write(`${line}\n`);
      process.exitCode = result.exitCode;
    } catch (err) {
      // A driver's message names the host, database or file, never a password or a row's values.
      const code = err instanceof KessaiError ? err.code : undefined;
      const exitCode = code === 'migration_changed' || code === 'migration_missing' ? dbExit.damaged : dbExit.failed;
      command.error(`kessai db: ${(err as Error).message}${code ? ` (${code})` : ''}`, { exitCode, code: `kessai.${code ?? 'failed'}` });
    }
  };
  common(db.command('status').description(`each migration applied, pending, changed or missing; exit ${dbExit.upToDate} up to date, ${dbExit.pending} pending, ${dbExit.damaged} changed or missing, ${dbExit.failed} failed`)).action(run(dbStatus));
  common(db.command('migrate').description('apply the pending migrations (refused if an applied one changed or is missing)')).action(run(dbMigrate));
  db.command('export')
    .description('a PGlite folder’s rows as SQL for psql, to move a development database to PostgreSQL')
    .requiredOption('--role <role>', 'auth, settlement or shop')
    .requiredOption('--data-dir <dir>', 'the role’s data folder; its PGlite database is <dir>/db (server stopped)')
    .option('--out <file>', 'write the SQL here (0600; default standard output)')
    .action(async (options: DbOptions & { out?: string }, command: Command) => {
      try {
        const result = await dbExport(options);
        if (options.out === undefined) process.stdout.write(result.sql);
        for (const line of result.lines) process.stderr.write(`${line}\n`);
      } catch (err) {
        const code = err instanceof KessaiError ? err.code : undefined;
        command.error(`kessai db: ${(err as Error).message}${code ? ` (${code})` : ''}`, { exitCode: dbExit.failed, code: `kessai.${code ?? 'failed'}` });
      }
    });
  return db;
}
