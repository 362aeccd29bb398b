/**
 * The SQL ledger store against the same table as the pure rules (one row per result code), plus
 * what only the store does: batches (later transfers see earlier ones), the expiry pass, and the
 * group commit's bounded queue; and the expiry of authorization holds (the pass, the worker, a
 * capture that finds its hold due). Runs on PGlite, or PostgreSQL when KESSAI_TEST_PG_URL is set.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KessaiError, limits } from '@kessai/protocol';
import { sqlState, type Db } from '@kessai/service';
import { pino } from 'pino';
import { settleHold } from '../src/capture.ts';
import type { SettlementConfig } from '../src/config.ts';
import { expireHolds, startExpiryWorker } from '../src/expiry.ts';
import { GroupCommit } from '../src/ledger/group-commit.ts';
import { createTransfers, expirePendingTransfers, readAccount, readTransfer } from '../src/ledger/store.ts';
import { fixtureAccounts, fund, hold, resultCases, t0, type FixtureAccount } from './ledger-cases.ts';
import { backend, expectBalanced, insertAccounts, openLedgerDb } from './ledger-db.ts';

let db: Db;
let close: () => Promise<void>;
beforeAll(async () => ({ db, close } = await openLedgerDb('kessai_ledger_store')));
afterAll(async () => close?.());

/** Each row gets its own accounts (suffix) so rows do not see each other. */
const rename = (id: string | undefined, suffix: string) => (id === undefined || id === '' ? id : `${id}_${suffix}`);

describe(`ledger store on ${backend}: one row per result code`, () => {
  it.each(resultCases.map((c, i) => ({ ...c, i })))('$result: $name', async ({ result, setup = [], transfer, atSeconds = 0, i }) => {
    const suffix = `r${i}`;
    const accounts: FixtureAccount[] = fixtureAccounts.map((a) => ({ ...a, id: `${a.id}_${suffix}` }));
    const map = (t: typeof transfer) => ({ ...t, id: t.id === '' ? '' : (rename(t.id, suffix) as string), debitAccountId: rename(t.debitAccountId, suffix), creditAccountId: rename(t.creditAccountId, suffix), pendingId: rename(t.pendingId, suffix) });
    await db.transaction(async (tx) => {
      await insertAccounts(tx, accounts);
      expect(await createTransfers(tx, [fund, hold, ...setup].map(map), new Date(t0))).toEqual([fund, hold, ...setup].map(() => 'ok'));
    });
    const before = await Promise.all(accounts.map((a) => readAccount(db, a.id)));
    const [got] = await db.transaction((tx) => createTransfers(tx, [map(transfer)], new Date(t0 + atSeconds * 1000)));
    expect(got).toBe(result);
    if (result !== 'ok') expect(await Promise.all(accounts.map((a) => readAccount(db, a.id)))).toEqual(before);
    await expectBalanced(db);
  });
});

describe(`ledger store on ${backend}: batches, expiry, group commit`, () => {
  const accounts: FixtureAccount[] = [
    { id: 'acct_bA', currency: 'JPY', debitsMustNotExceedCredits: true },
    { id: 'acct_bB', currency: 'JPY' },
    { id: 'acct_bF', currency: 'JPY' },
  ];
  beforeAll(async () => {
    await db.transaction((tx) => insertAccounts(tx, accounts));
  });

  it('applies a batch in order: a later transfer sees an earlier one, a refused one changes nothing', async () => {
    const results = await db.transaction((tx) => createTransfers(tx, [
      { id: 'xfer_b1', kind: 'single', debitAccountId: 'acct_bF', creditAccountId: 'acct_bA', amount: 100n, currency: 'JPY' },
      { id: 'xfer_b2', kind: 'pending', debitAccountId: 'acct_bA', creditAccountId: 'acct_bB', amount: 80n, currency: 'JPY', timeoutSeconds: 30 },
      { id: 'xfer_b3', kind: 'single', debitAccountId: 'acct_bA', creditAccountId: 'acct_bB', amount: 21n, currency: 'JPY' },
      { id: 'xfer_b4', kind: 'post_pending', pendingId: 'xfer_b2', amount: 50n, currency: 'JPY' },
      { id: 'xfer_b5', kind: 'single', debitAccountId: 'acct_bA', creditAccountId: 'acct_bB', amount: 50n, currency: 'JPY' },
      { id: 'xfer_b1', kind: 'single', debitAccountId: 'acct_bF', creditAccountId: 'acct_bA', amount: 100n, currency: 'JPY' },
    ], new Date(t0)));
    expect(results).toEqual(['ok', 'ok', 'exceeds_credits', 'ok', 'ok', 'exists']);
    expect(await readAccount(db, 'acct_bA')).toMatchObject({ debitsPending: 0n, debitsPosted: 100n, creditsPosted: 100n });
    expect(await readTransfer(db, 'xfer_b2')).toMatchObject({ state: 'posted', expiresAtMs: t0 + 30_000 });
    expect(await readTransfer(db, 'xfer_b3')).toBeUndefined();
    await expectBalanced(db);
  });

  it('the expiry pass releases only holds whose timeout has passed', async () => {
    await db.transaction((tx) => createTransfers(tx, [
      { id: 'xfer_e0', kind: 'single', debitAccountId: 'acct_bF', creditAccountId: 'acct_bA', amount: 10n, currency: 'JPY' },
      { id: 'xfer_e1', kind: 'pending', debitAccountId: 'acct_bA', creditAccountId: 'acct_bB', amount: 4n, currency: 'JPY', timeoutSeconds: 10 },
      { id: 'xfer_e2', kind: 'pending', debitAccountId: 'acct_bA', creditAccountId: 'acct_bB', amount: 5n, currency: 'JPY', timeoutSeconds: 20 },
    ], new Date(t0)));
    expect(await db.transaction((tx) => expirePendingTransfers(tx, new Date(t0 + 10_000), 100))).toEqual(['xfer_e1']);
    expect(await readAccount(db, 'acct_bA')).toMatchObject({ debitsPending: 5n });
    expect(await db.transaction((tx) => expirePendingTransfers(tx, new Date(t0 + 10_000), 100))).toEqual([]);
    expect(await db.transaction((tx) => expirePendingTransfers(tx, new Date(t0 + 20_000), 100))).toEqual(['xfer_e2']);
    expect(await readAccount(db, 'acct_bA')).toMatchObject({ debitsPending: 0n });
    expect(await readTransfer(db, 'xfer_e2')).toMatchObject({ state: 'expired' });
    await expectBalanced(db);
  });

  it('group commit writes concurrent jobs several per transaction, and a failing job rolls back only itself', async () => {
    const ledger = new GroupCommit(db);
    const jobs = Array.from({ length: 20 }, (_, i) => ledger.run(async (tx) => {
      if (i === 7) {
        await tx.query('insert into ledger_accounts (id, kind, currency) values ($1, $2, $3)', ['acct_gc_bad', 'merchant', 'JPY']);
        throw new Error('job 7 fails after writing');
      }
      const [r] = await createTransfers(tx, [{ id: `xfer_gc${i}`, kind: 'single', debitAccountId: 'acct_bF', creditAccountId: 'acct_bB', amount: 1n, currency: 'JPY' }], new Date(t0));
      return r;
    }));
    const settled = await Promise.allSettled(jobs);
    expect(settled.filter((s) => s.status === 'fulfilled').map((s) => s.value)).toEqual(Array(19).fill('ok'));
    expect(settled[7]).toMatchObject({ status: 'rejected' });
    expect(await db.query('select id from ledger_accounts where id = $1', ['acct_gc_bad'])).toEqual([]);
    expect(ledger.stats.jobs).toBe(20);
    expect(ledger.stats.batches).toBeLessThan(20);
    await expectBalanced(db);
  });

  it('a job alone in its transaction runs without a savepoint: its failure rolls back its writes and reaches the caller as thrown, a conflict runs it again', async () => {
    const ledger = new GroupCommit(db, { batchSizeMax: 1 });
    const failure = new KessaiError('account_not_found');
    const lone = ledger.run(async (tx) => {
      await tx.query('insert into ledger_accounts (id, kind, currency) values ($1, $2, $3)', ['acct_lone_bad', 'merchant', 'JPY']);
      throw failure;
    });
    await expect(lone).rejects.toBe(failure);
    expect(await db.query('select id from ledger_accounts where id = $1', ['acct_lone_bad'])).toEqual([]);
    // A duplicate id (what another process inserting first looks like) rolls back and runs the job
    // again, as a conflicted batch does; the second attempt sees the row and goes on.
    let attempts = 0;
    const raced = ledger.run(async (tx) => {
      attempts += 1;
      await tx.query('insert into ledger_accounts (id, kind, currency) values ($1, $2, $3)', ['acct_lone_dup', 'merchant', 'JPY']);
      if (attempts === 1) await tx.query('insert into ledger_accounts (id, kind, currency) values ($1, $2, $3)', ['acct_lone_dup', 'merchant', 'JPY']);
      return attempts;
    });
    await expect(raced).resolves.toBe(2);
    expect(await db.query('select id from ledger_accounts where id = $1', ['acct_lone_dup'])).toEqual([{ id: 'acct_lone_dup' }]);
    // One that conflicts every time is refused after ledgerBatchAttemptsMax attempts, with nothing written.
    let tries = 0;
    const hopeless = ledger.run(async (tx) => {
      tries += 1;
      await tx.query('insert into ledger_accounts (id, kind, currency) values ($1, $2, $3)', ['acct_lone_dup2', 'merchant', 'JPY']);
      await tx.query('insert into ledger_accounts (id, kind, currency) values ($1, $2, $3)', ['acct_lone_dup2', 'merchant', 'JPY']);
    });
    await expect(hopeless).rejects.toSatisfy((err: unknown) => sqlState(err) === '23505');
    expect(tries).toBe(limits.ledgerBatchAttemptsMax);
    expect(await db.query('select id from ledger_accounts where id = $1', ['acct_lone_dup2'])).toEqual([]);
    expect(await ledger.createTransfers([{ id: 'xfer_lone_ok', kind: 'single', debitAccountId: 'acct_bF', creditAccountId: 'acct_bB', amount: 1n, currency: 'JPY' }], new Date(t0))).toEqual(['ok']);
    expect(ledger.stats).toMatchObject({ batches: 3, jobs: 3 });
    await expectBalanced(db);
  });

  it('group commit merges concurrent transfer submissions into one store call and answers each its own results', async () => {
    const ledger = new GroupCommit(db);
    const now = new Date(t0);
    const submissions = Array.from({ length: 30 }, (_, i) => ledger.createTransfers([
      { id: `xfer_m${i}`, kind: 'single', debitAccountId: 'acct_bF', creditAccountId: 'acct_bB', amount: 1n, currency: 'JPY' },
      { id: `xfer_m${i}`, kind: 'single', debitAccountId: 'acct_bF', creditAccountId: 'acct_bB', amount: 2n, currency: 'JPY' },
    ], now));
    expect(await Promise.all(submissions)).toEqual(Array(30).fill(['ok', 'exists_with_different_amount']));
    expect(ledger.stats).toMatchObject({ batches: 1, jobs: 30 });
    await expectBalanced(db);
  });

  it('answers ledger_busy once queueDepthMax jobs are waiting, and runs the rest', async () => {
    const ledger = new GroupCommit(db, { queueDepthMax: 2, batchSizeMax: 1 });
    const jobs = [1, 2, 3].map((n) => ledger.run(async () => n));
    const settled = await Promise.allSettled(jobs);
    expect(settled.slice(0, 2)).toEqual([{ status: 'fulfilled', value: 1 }, { status: 'fulfilled', value: 2 }]);
    const third = settled[2];
    expect(third?.status === 'rejected' && third.reason instanceof KessaiError && third.reason.code).toBe('ledger_busy');
  });
});

describe(`settlement on the ledger on ${backend}: expiry of authorization holds`, () => {
  const logger = pino({ level: 'silent' });
  const config = { logger } as unknown as SettlementConfig;

  async function heldAuthorization(rid: string, holdId: string, atMs: number): Promise<void> {
    await db.transaction(async (tx) => {
      expect(await createTransfers(tx, [
        { id: `${holdId}_fund`, kind: 'single', debitAccountId: 'acct_bF', creditAccountId: 'acct_bA', amount: 300n, currency: 'JPY' },
        { id: holdId, kind: 'pending', debitAccountId: 'acct_bA', creditAccountId: 'acct_bB', amount: 300n, currency: 'JPY', timeoutSeconds: 1 },
      ], new Date(atMs))).toEqual(['ok', 'ok']);
      await tx.query("insert into authorizations (id, request_id, merchant_id, account_id, amount, currency, decision, status, hold_transfer_id, jws) values ($1, $2, 'mer_x', 'acct_bA', 300, 'JPY', 'approved', 'held', $3, 'jws')", [`auth_${rid}`, rid, holdId]);
    });
  }

  it('a capture of a hold that is due before the expiry pass ran is refused, and releases the hold at once', async () => {
    await heldAuthorization('pr_due', 'xfer_due', t0);
    const ledger = new GroupCommit(db);
    const late = settleHold(config, ledger, 'pr_due', 'capture', undefined, new Date(t0 + 1_000));
    await expect(late).rejects.toMatchObject({ code: 'authorization_not_capturable' });
    expect(await readTransfer(db, 'xfer_due')).toMatchObject({ state: 'expired' });
    expect(await db.query("select status from authorizations where request_id = 'pr_due'")).toEqual([{ status: 'expired' }]);
    await expectBalanced(db);
  });

  it('the expiry worker releases due holds on its own and marks their authorizations expired', async () => {
    await heldAuthorization('pr_worker', 'xfer_worker', Date.now() - 5_000);
    const ledger = new GroupCommit(db);
    const worker = startExpiryWorker(ledger, logger, 20);
    try {
      for (let i = 0; i < 200 && (await readTransfer(db, 'xfer_worker'))?.state !== 'expired'; i += 1) await new Promise((resolve) => setTimeout(resolve, 20));
    } finally {
      await worker.stop();
    }
    expect(await readTransfer(db, 'xfer_worker')).toMatchObject({ state: 'expired' });
    expect(await db.query("select status from authorizations where request_id = 'pr_worker'")).toEqual([{ status: 'expired' }]);
    expect(await db.transaction((tx) => expireHolds(tx, new Date()))).toEqual([]);
    await expectBalanced(db);
  });
});
