/**
 * `kessai db status|migrate --role <auth|settlement|shop> [--database-url URL | --data-dir DIR]`:
 * the schema as a separate operator step, for servers started with `migrations: 'verify'`. Status
 * reads only; migrate applies what is pending under the same advisory lock as a server's start,
 * and refuses a changed or missing applied migration. A PGlite folder has one session: use it only
 * while its server is stopped.
 */
import { access } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { migrationsDir as authMigrations } from '@kessai/auth-server';
import { KessaiError } from '@kessai/protocol';
import { migrate, migrationStatus, openDb, type Db, type MigrationStatus } from '@kessai/service';
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
    return { exitCode: dbExit.upToDate, lines: [...applied.map((name) => `applied    ${name}`), `${role} at ${where}: ${applied.length === 0 ? 'up to date' : `${applied.length} applied`}`] };
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
  return db;
}
