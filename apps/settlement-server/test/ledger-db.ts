/**
 * A migrated settlement database for ledger tests: a clone of the run's PGlite template, or a
 * scratch PostgreSQL database when KESSAI_TEST_PG_URL is set. Fixture accounts get fixed ids.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { migrate, openDb, type Db, type Queryable } from '@kessai/service';
import { ledgerTotals } from '../src/ledger/store.ts';
import { pgliteTemplate, scratchPostgres } from '../../../test/support/database.ts';
import type { FixtureAccount } from './ledger-cases.ts';

const migrationsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'migrations');

export const backend = process.env.KESSAI_TEST_PG_URL ? 'postgres' : 'pglite';

export async function openLedgerDb(prefix: string): Promise<{ db: Db; close(): Promise<void> }> {
  const scratch = await scratchPostgres(prefix);
  const db = scratch ? await openDb({ url: scratch.url, poolSizeMax: 4 }) : await openDb({ pgliteTemplate: await pgliteTemplate() });
  await migrate(db, migrationsDir);
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
    await tx.query('insert into ledger_accounts (id, kind, currency, debits_must_not_exceed_credits, credits_must_not_exceed_debits) values ($1, $2, $3, $4, $5)', [
      a.id, kind, a.currency, a.debitsMustNotExceedCredits ?? false, a.creditsMustNotExceedDebits ?? false,
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
