/**
 * The ledger alone: transfers per second through the settlement server's ledger code
 * (GroupCommit → createTransfers, store.ts) on a migrated settlement database, one submitter at a
 * time ("single": one transaction per transfer) and with many submitters in flight (group commit:
 * many transfers per transaction). Each transfer is a posted transfer of 1 minor unit from one of
 * `accounts` cardholder accounts to one of ten merchant accounts; every run ends by checking
 * debits = credits. Durable: a job's promise settles only after its COMMIT returned.
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { newId } from '@kessai/protocol';
import { migrate, type Db } from '@kessai/service';
import { GroupCommit } from '../apps/settlement-server/src/ledger/group-commit.ts';
import { ledgerTotals } from '../apps/settlement-server/src/ledger/store.ts';

const migrationsDir = path.join(import.meta.dirname, '..', 'apps', 'settlement-server', 'migrations');

export interface LedgerRun {
  backend: 'pglite' | 'postgres';
  /** Submitters in flight (1 = one transaction per transfer). */
  concurrency: number;
  seconds: number;
  transfers: number;
  transfersPerSecond: number;
  transactions: number;
  transfersPerTransaction: number;
  /** Results other than ok, and rejected submissions, by code. */
  errors: Record<string, number>;
  balanced: boolean;
}

async function seedAccounts(db: Db, cardholders: number): Promise<{ debit: string[]; credit: string[] }> {
  const debit = Array.from({ length: cardholders }, () => newId('acct'));
  const credit = Array.from({ length: 10 }, () => newId('acct'));
  await db.transaction(async (tx) => {
    for (const [ids, kind] of [[debit, 'cardholder'], [credit, 'merchant']] as const) {
      await tx.query("insert into ledger_accounts (id, kind, currency) select id, $2, 'JPY' from unnest($1::text[]) as x (id)", [ids, kind]);
    }
  });
  return { debit, credit };
}

export async function measureLedger(
  db: Db,
  backend: LedgerRun['backend'],
  options: { concurrency: number[]; seconds: number; accounts: number },
  onProgress: (label: string, done: number, total: number) => void,
): Promise<LedgerRun[]> {
  await migrate(db, migrationsDir);
  const { debit, credit } = await seedAccounts(db, options.accounts);
  const pick = (ids: string[]) => ids[Math.floor(Math.random() * ids.length)]!;
  const runs: LedgerRun[] = [];
  for (const concurrency of options.concurrency) {
    const ledger = new GroupCommit(db);
    const errors: Record<string, number> = {};
    let transfers = 0;
    const started = performance.now();
    const until = started + options.seconds * 1000;
    const label = `ledger ${backend}, ${concurrency} in flight`;
    const tick = setInterval(() => onProgress(label, Math.min(Math.round(performance.now() - started), options.seconds * 1000), options.seconds * 1000), 250);
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < until) {
          try {
            const [result] = await ledger.createTransfers([{ id: newId('xfer'), kind: 'single', debitAccountId: pick(debit), creditAccountId: pick(credit), amount: 1n, currency: 'JPY' }], new Date());
            if (result === 'ok') transfers++;
            else errors[result!] = (errors[result!] ?? 0) + 1;
          } catch (err) {
            const code = (err as { code?: string }).code ?? 'exception';
            errors[code] = (errors[code] ?? 0) + 1;
          }
        }
      }),
    );
    clearInterval(tick);
    onProgress(label, 1, 1);
    const seconds = (performance.now() - started) / 1000;
    const balanced = (await ledgerTotals(db)).every((row) => BigInt(row.debits_posted) === BigInt(row.credits_posted) && BigInt(row.debits_pending) === BigInt(row.credits_pending));
    runs.push({
      backend,
      concurrency,
      seconds,
      transfers,
      transfersPerSecond: transfers / seconds,
      transactions: ledger.stats.batches,
      transfersPerTransaction: ledger.stats.batches === 0 ? 0 : ledger.stats.jobs / ledger.stats.batches,
      errors,
      balanced,
    });
  }
  return runs;
}
