/**
 * A migrated settlement database for ledger tests: a clone of the run's PGlite template, or a
 * scratch PostgreSQL database when KESSAI_TEST_PG_URL is set. Fixture accounts get fixed ids.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { ensureAuditLog, migrate, openDb, type Db, type Queryable } from '@kessai/service';
import { ledgerTotals } from '../src/ledger/store.ts';
import { pgliteTemplate, scratchPostgres } from '../../../test/support/database.ts';
import type { FixtureAccount } from './ledger-cases.ts';

const migrationsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'migrations');

export const backend = process.env.KESSAI_TEST_PG_URL ? 'postgres' : 'pglite';

export async function openLedgerDb(prefix: string): Promise<{ db: Db; close(): Promise<void> }> {
  const scratch = await scratchPostgres(prefix);
  const db = scratch ? await openDb({ url: scratch.url, poolSizeMax: 4 }) : await openDb({ pgliteTemplate: await pgliteTemplate() });
  await migrate(db, migrationsDir);
  // The audit log comes from its one definition, as the server's start applies it (setUpAuditLog).
  await ensureAuditLog(db);
  return {
    db,
    async close() {
      await db.close();
      await scratch?.drop();
    },
  };
}

export async function insertAccounts(tx: Queryable, accounts: readonly FixtureAccount[], kind = 'cardholder'): Promise<void> {
  for (const a of accounts) {
    const sql = 'insert into ledger_accounts (id, kind, currency, debits_must_not_exceed_credits, credits_must_not_exceed_debits, '
      + 'debits_pending, credits_pending, debits_posted, credits_posted) values ($1, $2, $3, $4, $5, $6, $6, $7, $7)';
    await tx.query(sql, [
      a.id, kind, a.currency, a.debitsMustNotExceedCredits ?? false, a.creditsMustNotExceedDebits ?? false, a.pending ?? 0n, a.posted ?? 0n,
    ]);
  }
}

/** Debits equal credits, pending and posted, in every currency. */
export async function expectBalanced(db: Queryable): Promise<void> {
  for (const row of await ledgerTotals(db)) {
    expect(BigInt(row.debits_pending), `pending ${row.currency}`).toBe(BigInt(row.credits_pending));
    expect(BigInt(row.debits_posted), `posted ${row.currency}`).toBe(BigInt(row.credits_posted));
  }
}

/** The seed of a model-based run: KESSAI_SEED to replay one, else a fresh one. */
export const modelSeed = Number(process.env.KESSAI_SEED ?? Math.floor(Math.random() * 2 ** 32));

/** A seeded workload's dice (mulberry32, a small well-known PRNG), so a failing run replays from its seed. */
export function seededDice(seed: number) {
  let state = seed;
  const random = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  const int = (n: number) => Math.floor(random() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  return { int, pick };
}

/** Runs a model-based test; a failure names its seed and the command that replays it. */
export async function replayable(name: string, file: string, seed: number, run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (err) {
    console.error(`${name} failed with seed ${seed}; replay: KESSAI_SEED=${seed} npx vitest run ${file}`);
    if (err instanceof Error) err.message = `[KESSAI_SEED=${seed}] ${err.message}`;
    throw err;
  }
}
