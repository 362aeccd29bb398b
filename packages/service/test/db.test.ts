/**
 * The shared database layer and migrations, run once on PGlite (cloned from the run's template)
 * and once on PostgreSQL when KESSAI_TEST_PG_URL is set: both backends must behave alike.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, onTestFinished, test, vi } from 'vitest';
import { openDb, sqlState, type Db } from '../src/db.ts';
import { migrate, migrationStatus, prepareSchema, verifyMigrations } from '../src/migrate.ts';
import { KessaiError } from '@kessai/protocol';
import { pgliteTemplate, scratchPostgres } from '../../../test/support/database.ts';

const pgUrl = process.env.KESSAI_TEST_PG_URL;

interface Backend {
  kind: Db['kind'];
  name: string;
  skip: boolean;
  /** A new, empty database and how to get rid of it. */
  open(): Promise<{ db: Db; dispose(): Promise<void> }>;
}

const backends: Backend[] = [
  {
    kind: 'pglite',
    name: 'on PGlite',
    skip: false,
    async open() {
      const db = await openDb({ pgliteTemplate: await pgliteTemplate() });
      return { db, dispose: () => db.close() };
    },
  },
  {
    kind: 'postgres',
    name: pgUrl ? 'on PostgreSQL' : 'on PostgreSQL (skipped: set KESSAI_TEST_PG_URL to an admin URL to run)',
    skip: !pgUrl,
    async open() {
      const scratch = await scratchPostgres('kessai_db_test');
      if (!scratch) throw new Error('KESSAI_TEST_PG_URL is not set');
      const db = await openDb({ url: scratch.url });
      return { db, dispose: async () => (await db.close(), await scratch.drop()) };
    },
  },
];

/** The code of the KessaiError a promise rejects with. */
const codeOf = (promise: Promise<unknown>) => promise.then(() => 'resolved', (err: unknown) => (err instanceof KessaiError ? err.code : String(err)));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A folder of migration files, deleted when the test ends. */
async function migrationDir(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'kessai-migrations-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  for (const [name, sql] of Object.entries(files)) await writeFile(path.join(dir, name), sql);
  return dir;
}

for (const backend of backends) {
  describe.skipIf(backend.skip)(backend.name, () => {
    // Tests on the shared database each use their own tables.
    let shared: Awaited<ReturnType<Backend['open']>> | undefined;
    let db: Db;
    beforeAll(async () => {
      shared = await backend.open();
      db = shared.db;
    });
    afterAll(() => shared?.dispose());

    test('reports which backend it is', () => {
      expect(db.kind).toBe(backend.kind);
    });

    test('maps column types to the same JS values: int8 bigint, int4 number, numeric string, timestamptz Date, json parsed, text string, bytea bytes', async () => {
      await db.exec(`CREATE TABLE mapping (
        i8 int8, i4 int4, n numeric, ts timestamptz, jb jsonb, j json, t text, b bytea,
        a8 int8[], d date, iv interval)`);
      const big = 2n ** 62n + 1n; // beyond Number.MAX_SAFE_INTEGER
      const at = new Date('2024-05-06T07:08:09.123Z');
      await db.query('INSERT INTO mapping VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)', [
        big, 42, '12345678901234567890.12', at, { a: [1, 'x'], none: null }, JSON.stringify([1, 2]), 'héllo',
        new Uint8Array([0, 255, 7]), [big, -1n, null], '2024-02-29', '1 day 02:00:00',
      ]);
      const [row] = await db.query('SELECT * FROM mapping');
      expect(row).toEqual({
        i8: big, i4: 42, n: '12345678901234567890.12', ts: at, jb: { a: [1, 'x'], none: null }, j: [1, 2], t: 'héllo',
        b: expect.any(Uint8Array), a8: [big, -1n, null], d: '2024-02-29', iv: '1 day 02:00:00',
      });
      expect(typeof row?.i4).toBe('number');
      expect(row?.ts).toBeInstanceOf(Date);
      expect([...(row?.b as Uint8Array)]).toEqual([0, 255, 7]);
    });

    test('returns small int8 values and count(*) as bigint too', async () => {
      const [row] = await db.query('SELECT 5::int8 AS small, count(*) AS n FROM (VALUES (1), (2)) AS v(x)');
      expect(row).toEqual({ small: 5n, n: 2n });
    });

    test('accepts bigint parameters for int8, int4, numeric and text', async () => {
      const [row] = await db.query('SELECT $1::int8 AS i8, $2::int4 AS i4, $3::numeric AS n, $4::text AS t', [
        2n ** 63n - 1n, 7n, 10n ** 30n, -11n,
      ]);
      expect(row).toEqual({ i8: 2n ** 63n - 1n, i4: 7, n: String(10n ** 30n), t: '-11' });
    });

    test('refuses several statements in one query without running any of them; exec runs several', async () => {
      await db.exec('CREATE TABLE statements (id int); INSERT INTO statements VALUES (1)');
      const err = await db.query('INSERT INTO statements VALUES (2); INSERT INTO statements VALUES (3)').catch((e: unknown) => e);
      expect(sqlState(err)).toBe('42601');
      expect(await db.query('SELECT id FROM statements')).toEqual([{ id: 1 }]);
    });

    test('commits a transaction and returns what its callback returned', async () => {
      await db.exec('CREATE TABLE committed (id int)');
      const result = await db.transaction(async (tx) => {
        await tx.query('INSERT INTO committed VALUES (1)');
        await tx.exec('INSERT INTO committed VALUES (2); INSERT INTO committed VALUES (3)');
        return 'done';
      });
      expect(result).toBe('done');
      expect(await db.query('SELECT id FROM committed ORDER BY id')).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }]);
    });

    test('rolls back every write of a transaction whose callback throws, and rethrows its error', async () => {
      await db.exec('CREATE TABLE rolled_back (id int)');
      const failure = new Error('changed my mind');
      await expect(
        db.transaction(async (tx) => {
          await tx.query('INSERT INTO rolled_back VALUES (1)');
          throw failure;
        }),
      ).rejects.toBe(failure);
      expect(await db.query('SELECT * FROM rolled_back')).toEqual([]);
    });

    test('refuses to commit a transaction whose callback swallowed a failed statement', async () => {
      await db.exec('CREATE TABLE swallowed (id int)');
      await expect(
        db.transaction(async (tx) => {
          await tx.query('INSERT INTO swallowed VALUES (1)');
          await tx.query('SELECT 1 / 0').catch(() => undefined);
        }),
      ).rejects.toThrow(/rolled back at COMMIT/);
      expect(await db.query('SELECT * FROM swallowed')).toEqual([]);
      expect(await db.query('SELECT 1 AS ok')).toEqual([{ ok: 1 }]); // the connection is usable again
    });

    test('runs 20 concurrent read-modify-write transactions without losing an update, rolling back only the one that throws', async () => {
      await db.exec('CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL); INSERT INTO counter VALUES (1, 0)');
      const outcomes = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) =>
          db.transaction(async (tx) => {
            const [row] = await tx.query<{ n: number }>('SELECT n FROM counter WHERE id = 1 FOR UPDATE');
            await sleep(2); // give the other callers every chance to interleave
            await tx.query('UPDATE counter SET n = $1 WHERE id = 1', [row!.n + 1]);
            if (i === 7) throw new Error('transaction 7 fails');
            return i;
          }),
        ),
      );
      expect(outcomes.filter((o) => o.status === 'rejected').map((o) => (o.reason as Error).message)).toEqual([
        'transaction 7 fails',
      ]);
      expect(await db.query('SELECT n FROM counter')).toEqual([{ n: 19 }]);
    });

    test('keeps a standalone query made while a transaction is open out of that transaction', async () => {
      await db.exec('CREATE TABLE origins (origin text)');
      let inserted!: () => void;
      const insertedInTx = new Promise<void>((resolve) => (inserted = resolve));
      const transaction = db
        .transaction(async (tx) => {
          await tx.query("INSERT INTO origins VALUES ('transaction')");
          inserted();
          await sleep(50);
          throw new Error('undo');
        })
        .catch((err: Error) => err.message);
      await insertedInTx;
      await db.query("INSERT INTO origins VALUES ('standalone')");
      expect(await transaction).toBe('undo');
      expect(await db.query('SELECT origin FROM origins')).toEqual([{ origin: 'standalone' }]);
    });

    test('refuses use of the Db inside its own transaction callback instead of deadlocking', async () => {
      let leaked: Parameters<Parameters<Db['transaction']>[0]>[0] | undefined;
      const result = await db.transaction(async (tx) => {
        leaked = tx;
        await expect(db.query('SELECT 1')).rejects.toThrow(/use the `tx` argument/);
        await expect(db.exec('SELECT 1')).rejects.toThrow(/use the `tx` argument/);
        await expect(db.transaction(async () => 1)).rejects.toThrow(/use the `tx` argument/);
        return (await tx.query<{ one: number }>('SELECT 1 AS one'))[0]?.one;
      });
      expect(result).toBe(1);
      await expect(leaked!.query('SELECT 1')).rejects.toThrow(/already finished/);
      expect(await db.query('SELECT 2 AS two')).toEqual([{ two: 2 }]);
    });

    test('exposes the SQLSTATE of a unique violation through sqlState, also when rethrown by a transaction', async () => {
      await db.exec('CREATE TABLE unique_ids (id int PRIMARY KEY); INSERT INTO unique_ids VALUES (1)');
      const direct = await db.query('INSERT INTO unique_ids VALUES (1)').catch((err: unknown) => err);
      expect(sqlState(direct)).toBe('23505');
      const viaTransaction = await db
        .transaction((tx) => tx.query('INSERT INTO unique_ids VALUES (1)'))
        .catch((err: unknown) => err);
      expect(sqlState(viaTransaction)).toBe('23505');
    });

    describe('migrate', () => {
      // A database of its own (cloning one per test costs seconds on PGlite), emptied before each test.
      let migrated: Awaited<ReturnType<Backend['open']>> | undefined;
      let own: Db;
      beforeAll(async () => {
        migrated = await backend.open();
        own = migrated.db;
      });
      afterAll(() => migrated?.dispose());
      beforeEach(() => own.exec('DROP SCHEMA public CASCADE; CREATE SCHEMA public'));

      const files = {
        '0001_accounts.sql': 'CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL);',
        '0002_seed.sql': "INSERT INTO accounts VALUES (1, 'a');\nINSERT INTO accounts VALUES (2, 'b');",
        '0003_balance.sql': 'ALTER TABLE accounts ADD COLUMN balance int8 NOT NULL DEFAULT 0;',
        'README.md': 'not a migration',
      };

      test('applies the migrations in order, records them, and applies nothing on a second run', async () => {
        const dir = await migrationDir(files);
        expect(await migrate(own, dir)).toEqual(['0001_accounts', '0002_seed', '0003_balance']);
        expect(await own.query('SELECT id, name, balance FROM accounts ORDER BY id')).toEqual([
          { id: 1, name: 'a', balance: 0n },
          { id: 2, name: 'b', balance: 0n },
        ]);
        const recorded = await own.query('SELECT version, name, applied_at FROM schema_migrations ORDER BY version');
        expect(recorded.map(({ version, name }) => ({ version, name }))).toEqual([
          { version: 1, name: '0001_accounts' },
          { version: 2, name: '0002_seed' },
          { version: 3, name: '0003_balance' },
        ]);
        expect(recorded[0]?.applied_at).toBeInstanceOf(Date);
        expect(await migrate(own, dir)).toEqual([]);
      });

      test('applies only the files added since the last run', async () => {
        const dir = await migrationDir({ '0001_accounts.sql': files['0001_accounts.sql'] });
        expect(await migrate(own, dir)).toEqual(['0001_accounts']);
        await writeFile(path.join(dir, '0002_seed.sql'), files['0002_seed.sql']);
        expect(await migrate(own, dir)).toEqual(['0002_seed']);
      });

      test('applies each migration once when two migrators start at the same time', async () => {
        const dir = await migrationDir(files);
        const [first, second] = await Promise.all([migrate(own, dir), migrate(own, dir)]);
        expect([...first!, ...second!].sort()).toEqual(['0001_accounts', '0002_seed', '0003_balance']);
        expect(await own.query('SELECT count(*) AS n FROM accounts')).toEqual([{ n: 2n }]);
      });

      test('refuses a gap in the numbering before touching the database', async () => {
        const dir = await migrationDir({ '0001_accounts.sql': files['0001_accounts.sql'], '0003_balance.sql': '' });
        await expect(migrate(own, dir)).rejects.toThrow(/gap .*expected migration 0002, found 0003_balance\.sql/);
        expect(await own.query("SELECT to_regclass('schema_migrations') AS t")).toEqual([{ t: null }]);
      });

      test('refuses a numbering that does not start at 0001', async () => {
        const dir = await migrationDir({ '0002_seed.sql': '' });
        await expect(migrate(own, dir)).rejects.toThrow(/expected migration 0001/);
      });

      test('refuses two migrations with the same number', async () => {
        const dir = await migrationDir({ '0001_accounts.sql': '', '0001_other.sql': '' });
        await expect(migrate(own, dir)).rejects.toThrow(/duplicate migration number 0001/);
      });

      test('refuses a .sql file not named NNNN_name.sql', async () => {
        const dir = await migrationDir({ '1_accounts.sql': '' });
        await expect(migrate(own, dir)).rejects.toThrow(/not named NNNN_name\.sql/);
      });

      test('refuses a recorded migration whose file is missing', async () => {
        const dir = await migrationDir(files);
        await migrate(own, dir);
        await unlink(path.join(dir, '0003_balance.sql'));
        await expect(migrate(own, dir)).rejects.toThrow(/0003_balance is recorded as applied but .* has no file 0003_balance\.sql/);
      });

      test('records the SHA-256 of each file it applies', async () => {
        const dir = await migrationDir(files);
        await migrate(own, dir);
        const rows = await own.query<{ name: string; sha256: string }>('SELECT name, sha256 FROM schema_migrations ORDER BY version');
        expect(rows.map((r) => r.name)).toEqual(['0001_accounts', '0002_seed', '0003_balance']);
        expect(rows[0]?.sha256).toBe(createHash('sha256').update(files['0001_accounts.sql']).digest('hex'));
      });

      test("refuses a changed applied migration with migration_changed naming the file, before applying anything else", async () => {
        const dir = await migrationDir({ '0001_accounts.sql': files['0001_accounts.sql'], '0002_seed.sql': files['0002_seed.sql'] });
        await migrate(own, dir);
        await writeFile(path.join(dir, '0002_seed.sql'), `${files['0002_seed.sql']}\n-- edited after release`);
        await writeFile(path.join(dir, '0003_balance.sql'), files['0003_balance.sql']);
        const err = await migrate(own, dir).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(KessaiError);
        expect((err as KessaiError).code).toBe('migration_changed');
        expect((err as KessaiError).message).toContain(path.join(dir, '0002_seed.sql'));
        // The pending 0003 was not applied.
        expect(await own.query("SELECT count(*) AS n FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'balance'")).toEqual([{ n: 0n }]);
        const status = await migrationStatus(own, dir);
        expect(status).toMatchObject({ applied: ['0001_accounts'], changed: ['0002_seed'], pending: ['0003_balance'], missing: [], unrecorded: [] });
        expect(await codeOf(verifyMigrations(own, dir))).toBe('migration_changed');
      });

      test('refuses a missing applied migration with migration_missing, also when verifying', async () => {
        const dir = await migrationDir(files);
        await migrate(own, dir);
        await unlink(path.join(dir, '0002_seed.sql'));
        await rename(path.join(dir, '0003_balance.sql'), path.join(dir, '0002_balance.sql'));
        const err = await migrate(own, dir).catch((e: unknown) => e);
        expect((err as KessaiError).code).toBe('migration_missing');
        expect((err as KessaiError).message).toMatch(/0002_seed is recorded as applied but .* has no file 0002_seed\.sql/);
        expect(await codeOf(prepareSchema(own, dir, 'verify'))).toBe('migration_missing');
        expect((await migrationStatus(own, dir)).missing).toEqual(['0002_seed', '0003_balance']);
      });

      test("fills in the checksums of a database migrated before checksums existed, from the files as they are", async () => {
        const dir = await migrationDir(files);
        // As the migrator before checksums left it.
        await own.exec(`CREATE TABLE schema_migrations (version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());
          CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL);
          INSERT INTO schema_migrations (version, name) VALUES (1, '0001_accounts')`);
        const before = await migrationStatus(own, dir);
        expect(before).toMatchObject({ applied: [], unrecorded: ['0001_accounts'], pending: ['0002_seed', '0003_balance'] });
        // Verifying writes nothing and refuses: the checksums are not recorded yet.
        expect(await codeOf(verifyMigrations(own, dir))).toBe('migrations_pending');
        expect(await own.query("SELECT count(*) AS n FROM information_schema.columns WHERE table_name = 'schema_migrations' AND column_name = 'sha256'")).toEqual([{ n: 0n }]);
        expect(await migrate(own, dir)).toEqual(['0002_seed', '0003_balance']);
        const after = await migrationStatus(own, dir);
        expect(after).toMatchObject({ applied: ['0001_accounts', '0002_seed', '0003_balance'], unrecorded: [], pending: [] });
        expect(after.files[0]?.recordedSha256).toBe(createHash('sha256').update(files['0001_accounts.sql']).digest('hex'));
      });

      test("verify mode applies nothing and refuses pending migrations with migrations_pending; it passes once they are applied", async () => {
        const dir = await migrationDir({ '0001_accounts.sql': files['0001_accounts.sql'] });
        const err = await prepareSchema(own, dir, 'verify').catch((e: unknown) => e);
        expect((err as KessaiError).code).toBe('migrations_pending');
        expect((err as KessaiError).message).toContain('0001_accounts.sql');
        expect(await own.query("SELECT to_regclass('schema_migrations') AS t")).toEqual([{ t: null }]);
        expect(await migrationStatus(own, dir)).toMatchObject({ applied: [], pending: ['0001_accounts'] });
        await prepareSchema(own, dir, 'apply');
        await expect(prepareSchema(own, dir, 'verify')).resolves.toBeUndefined();
        await writeFile(path.join(dir, '0002_seed.sql'), files['0002_seed.sql']);
        expect(await codeOf(prepareSchema(own, dir, 'verify'))).toBe('migrations_pending');
      });

      test('rolls back a failing migration, keeps the ones before it and names the file in the error', async () => {
        const dir = await migrationDir({
          '0001_accounts.sql': files['0001_accounts.sql'],
          '0002_broken.sql': 'CREATE TABLE half_done (id int);\nSELECT 1 / 0;',
        });
        const err = await migrate(own, dir).catch((e: unknown) => e as Error);
        expect(err).toBeInstanceOf(Error);
        expect((err as Error).message).toMatch(/0002_broken\.sql failed: division by zero/);
        expect(sqlState((err as Error).cause)).toBe('22012');
        expect(await own.query("SELECT to_regclass('half_done') AS t")).toEqual([{ t: null }]);
        expect(await own.query('SELECT name FROM schema_migrations')).toEqual([{ name: '0001_accounts' }]);
      });
    });
  });
}

describe('on PGlite only', () => {
  test('keeps a persistent database in its data folder, created on first open', async () => {
    const parent = await mkdtemp(path.join(tmpdir(), 'kessai-pglite-'));
    onTestFinished(() => rm(parent, { recursive: true, force: true }));
    const dataDir = path.join(parent, 'not', 'yet', 'there');
    const first = await openDb({ dataDir });
    await first.exec("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')");
    await first.close();
    const second = await openDb({ dataDir });
    onTestFinished(() => second.close());
    expect(await second.query('SELECT v FROM kept')).toEqual([{ v: 'still here' }]);
  });
});

describe('openDb and sqlState without a database', () => {
  test('openDb refuses more than one of url, dataDir and pgliteTemplate', async () => {
    await expect(openDb({ url: 'postgres://x', dataDir: '/tmp/x' })).rejects.toThrow(/at most one/);
  });

  test('openDb with an unreachable PostgreSQL URL fails at once, and sqlState finds no SQLSTATE in that error', async () => {
    const err = await openDb({ url: 'postgres://postgres@127.0.0.1:1/none' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ECONNREFUSED' });
    expect(sqlState(err)).toBeUndefined();
  });

  test('sqlState returns undefined for errors that did not come from the database', () => {
    expect(sqlState(Object.assign(new Error('pipe'), { code: 'EPIPE' }))).toBeUndefined();
    expect(sqlState('23505')).toBeUndefined();
    expect(sqlState(undefined)).toBeUndefined();
  });
});

describe.skipIf(!pgUrl)(pgUrl ? 'scratchPostgres' : 'scratchPostgres (skipped: KESSAI_TEST_PG_URL is not set)', () => {
  test('creates a fresh database and drop() removes it even while a pool is connected to it', async () => {
    const scratch = await scratchPostgres('kessai_scratch-Test');
    expect(scratch).toBeDefined();
    const name = new URL(scratch!.url).pathname.slice(1);
    expect(name).toMatch(/^kessai_scratch_test_[0-9a-f]{8}$/);
    const db = await openDb({ url: scratch!.url });
    expect(await db.query('SELECT current_database() AS name')).toEqual([{ name }]);
    await scratch!.drop();
    await db.close();
    const admin = await openDb({ url: pgUrl! });
    onTestFinished(() => admin.close());
    expect(await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).toEqual([]);
  });
});

describe('scratchPostgres without KESSAI_TEST_PG_URL', () => {
  test('returns undefined', async () => {
    vi.stubEnv('KESSAI_TEST_PG_URL', undefined);
    onTestFinished(() => void vi.unstubAllEnvs());
    expect(await scratchPostgres('unused')).toBeUndefined();
  });
});
