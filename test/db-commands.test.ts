/**
 * `kessai db status|migrate` (apps/cli/src/db-commands.ts) on one role's database — a scratch
 * PostgreSQL database when KESSAI_TEST_PG_URL is set, else a PGlite folder — and a server started
 * with `migrations: 'verify'`: the exit codes an operator's script branches on, a changed or
 * missing applied migration refused, pending migrations refused by a server that only verifies.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendAuditEntries, createLogger, ensureAuditLog, migrate, openDb, verifyAuditChain, type Db } from '@kessai/service';
import { buildShop, seedCatalogue } from '@kessai/shop';
import { dbExit, dbMigrate, dbMigrationsDirs, dbStatus, type DbOptions } from '@kessai/cli/db-commands';
import { runKessaiProcess } from './support/cli.ts';
import { pgliteTemplate, scratchPostgres } from './support/database.ts';
import { codeOf } from './support/errors.ts';

const backend = process.env.KESSAI_TEST_PG_URL ? 'PostgreSQL' : 'PGlite';
const run = promisify(execFile);

describe(`kessai db status and migrate (${backend})`, () => {
  let dir: string;
  let target: DbOptions;
  let cliTarget: string[];
  let drop: (() => Promise<void>) | undefined;
  const shopFiles = async () => (await readdir(dbMigrationsDirs.shop)).filter((f) => f.endsWith('.sql')).map((f) => f.slice(0, -4)).sort();
  /** The database itself, opened for a moment (a PGlite folder has one session: the commands open it in turn). */
  async function withDb<T>(fn: (db: Db) => Promise<T>): Promise<T> {
    const db = await openDb(target.databaseUrl ? { url: target.databaseUrl } : { dataDir: path.join(target.dataDir!, 'db') });
    try {
      return await fn(db);
    } finally {
      await db.close();
    }
  }

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'kessai-db-commands-'));
    const scratch = await scratchPostgres('kessai_db_commands');
    drop = scratch?.drop;
    target = scratch ? { role: 'shop', databaseUrl: scratch.url } : { role: 'shop', dataDir: path.join(dir, 'shop') };
    cliTarget = scratch ? ['--database-url', scratch.url] : ['--data-dir', path.join(dir, 'shop')];
  });
  afterAll(async () => {
    await drop?.();
    await rm(dir, { recursive: true, force: true });
  });

  it('status of a database never migrated: every migration pending, exit 2 (a PGlite folder that does not exist is refused, not created)', async () => {
    if (target.dataDir) {
      expect(await codeOf(dbStatus(target))).toBe('validation_failed');
      await expect(readdir(target.dataDir)).rejects.toMatchObject({ code: 'ENOENT' });
      // What a server's first start makes: an empty PGlite database in the role's folder.
      await withDb(async () => undefined);
    }
    const printed = await runKessaiProcess(['db', 'status', '--role', 'shop', ...cliTarget]);
    expect(printed.code, printed.stderr).toBe(dbExit.pending);
    expect(printed.stdout).toContain(`pending    ${(await shopFiles())[0]}`);
    expect(printed.stdout).toMatch(/shop at .*: \d+ pending: run kessai db migrate/);
  });

  it('migrate applies them all; status then exits 0 with each migration applied', async () => {
    const migrated = await dbMigrate(target);
    expect(migrated.exitCode).toBe(dbExit.upToDate);
    expect(migrated.lines.slice(0, -1)).toEqual((await shopFiles()).map((name) => `applied    ${name}`));
    const status = await dbStatus(target);
    expect(status.exitCode).toBe(dbExit.upToDate);
    expect(status.lines.filter((line) => line.startsWith('applied '))).toHaveLength((await shopFiles()).length);
    expect((await dbMigrate(target)).lines).toEqual([expect.stringMatching(/: up to date$/)]);
  });

  it('a changed applied migration: status exits 3 naming it, migrate refuses with migration_changed and exits 3', async () => {
    const [first] = await shopFiles();
    const recorded = await withDb(async (db) => (await db.query<{ sha256: string }>('SELECT sha256 FROM schema_migrations WHERE version = 1'))[0]!.sha256);
    // As if the file had been edited after it was applied: the recorded checksum no longer matches it.
    await withDb((db) => db.query("UPDATE schema_migrations SET sha256 = repeat('0', 64) WHERE version = 1"));
    const status = await dbStatus(target);
    expect(status.exitCode).toBe(dbExit.damaged);
    expect(status.lines).toContainEqual(expect.stringMatching(new RegExp(`^changed +${first}`)));
    const refused = await runKessaiProcess(['db', 'migrate', '--role', 'shop', ...cliTarget]);
    expect(refused.code).toBe(dbExit.damaged);
    expect(refused.stderr).toContain(`${first}.sql has changed since it was applied`);
    expect(refused.stderr.trim()).toMatch(/\(migration_changed\)$/);
    expect(refused.stderr).not.toMatch(/\n\s+at /); // one line, no stack
    await withDb((db) => db.query('UPDATE schema_migrations SET sha256 = $1 WHERE version = 1', [recorded]));
  });

  it('an applied migration whose file is missing: status exits 3, migrate refuses with migration_missing', async () => {
    await withDb((db) => db.query("INSERT INTO schema_migrations (version, name, sha256) VALUES (999, '0999_from_a_newer_release', repeat('0', 64))"));
    const status = await dbStatus(target);
    expect(status.exitCode).toBe(dbExit.damaged);
    expect(status.lines).toContainEqual(expect.stringMatching(/^missing +0999_from_a_newer_release/));
    expect(await codeOf(dbMigrate(target))).toBe('migration_missing');
    await withDb((db) => db.query('DELETE FROM schema_migrations WHERE version = 999'));
    expect((await dbStatus(target)).exitCode).toBe(dbExit.upToDate);
  });

  it("a server started with migrations: 'verify' refuses a database with migrations pending (migrations_pending) and migrates nothing", async () => {
    const db = await openDb({ pgliteTemplate: await pgliteTemplate() });
    try {
      const config = {
        logger: createLogger({ name: 'shop', file: path.join(dir, 'shop.log') }),
        db,
        migrations: 'verify' as const,
        merchantApiKey: 'sk_test_unused',
        authBaseUrl: 'https://127.0.0.1:1',
        caCertPem: '',
        webhookSecrets: ['whsec_unused'],
        issuers: { 'sakura-bank': 'https://127.0.0.1:1/.well-known/jwks.json' },
        publicBaseUrl: 'https://127.0.0.1:2',
      };
      await expect(buildShop(config)).rejects.toThrow(/0001_init\.sql.* pending .*run kessai db migrate/);
      expect(await codeOf(buildShop(config))).toBe('migrations_pending');
      expect(await db.query("SELECT to_regclass('schema_migrations') AS t")).toEqual([{ t: null }]);
    } finally {
      await db.close();
    }
  });
});

describe(`kessai db export: a PGlite folder's rows loaded into ${process.env.KESSAI_TEST_PG_URL ? 'PostgreSQL with psql' : 'another database (PGlite; PostgreSQL with psql when KESSAI_TEST_PG_URL is set)'}`, () => {
  let dir: string;
  let drop: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'kessai-db-export-'));
  });
  afterAll(async () => {
    await drop?.();
    await rm(dir, { recursive: true, force: true });
  });

  /** Every row of every table, as JSON text, sorted: equal on both sides means the data moved exactly. */
  const contents = async (db: Db) => {
    const tables = (await db.query<{ name: string }>("SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'schema_migrations' ORDER BY 1")).map((t) => t.name);
    const all: Record<string, string[]> = {};
    for (const table of tables) all[table] = (await db.query<{ row: string }>(`SELECT row_to_json(t)::text AS row FROM "${table}" t ORDER BY 1`)).map((r) => r.row);
    return all;
  };

  it('exports every row (bigint, timestamptz, text with quotes and dollar signs, the audit chain) and loads it into an empty migrated database, identical', async () => {
    const source: DbOptions = { role: 'shop', dataDir: path.join(dir, 'shop') };
    expect((await dbMigrate(source)).exitCode).toBe(dbExit.upToDate);
    const db = await openDb({ dataDir: path.join(dir, 'shop', 'db') });
    let before: Record<string, string[]>;
    try {
      await seedCatalogue(db);
      await db.query("INSERT INTO carts (id, currency, status) VALUES ('cart_1', 'JPY', 'checked_out')");
      await db.query("INSERT INTO cart_items (cart_id, product_id, quantity) SELECT 'cart_1', id, 3 FROM products ORDER BY id LIMIT 1");
      await db.query(
        "INSERT INTO orders (id, cart_id, currency, amount_minor, status, decline_code, created_at) VALUES ('ord_1', 'cart_1', 'JPY', $1, 'declined', $2, '2026-02-28T23:59:59.123456+09:00')",
        [999_999_999_999_999n, `it's $$ "quoted" \\ 決済 $kessai_x$`],
      );
      await appendAuditEntries(db, [{ actor: 'system', action: 'export.test', resource: 'ord_1', outcome: 'ok', origin: null }]);
      before = await contents(db);
    } finally {
      await db.close();
    }
    expect(before.products!.length).toBeGreaterThan(0);
    expect(before.audit_log).toHaveLength(1);

    const out = path.join(dir, 'shop.sql');
    const printed = await runKessaiProcess(['db', 'export', '--role', 'shop', '--data-dir', path.join(dir, 'shop'), '--out', out]);
    expect(printed.code, printed.stderr).toBe(0);
    expect(printed.stderr).toMatch(/shop at .*: \d+ rows of \d+ tables written to/);
    expect((await stat(out)).mode & 0o777).toBe(0o600);
    const sql = await readFile(out, 'utf8');

    const scratch = await scratchPostgres('kessai_db_export');
    drop = scratch?.drop;
    const target = scratch ? await openDb({ url: scratch.url }) : await openDb({ pgliteTemplate: await pgliteTemplate() });
    try {
      if (scratch) {
        expect((await dbMigrate({ role: 'shop', databaseUrl: scratch.url })).exitCode).toBe(dbExit.upToDate);
        await run('/usr/lib/postgresql/15/bin/psql', ['-v', 'ON_ERROR_STOP=1', '--single-transaction', '--quiet', '-f', out, scratch.url]);
      } else {
        await migrate(target, dbMigrationsDirs.shop);
        await ensureAuditLog(target);
        await target.exec(sql);
      }
      expect(await contents(target)).toEqual(before);
      expect((await verifyAuditChain(target)).ok).toBe(true);
      // Loading twice is refused: the target is no longer empty.
      const again = scratch
        ? await run('/usr/lib/postgresql/15/bin/psql', ['-v', 'ON_ERROR_STOP=1', '--single-transaction', '--quiet', '-f', out, scratch.url]).then(() => '', (err: { stderr: string }) => err.stderr)
        : await target.exec(sql).then(() => '', (err: Error) => err.message);
      expect(again).toMatch(/the target table \w+ is not empty/);
    } finally {
      await target.close();
    }
  }, 300_000);
});
