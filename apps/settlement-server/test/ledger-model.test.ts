/**
 * Model-based test of the ledger (after TigerBeetle's auditor): a seeded random workload —
 * authorize (hold), partial capture (post), void, refund (reverse transfer), expire (clock moves,
 * expiry pass), retries with the same ids (same and other fields), several jobs per group-commit
 * batch (plain submissions merged into one store call, or jobs of their own) and several transfers
 * per job — runs against the SQL ledger and against an independent
 * in-memory model written at the level of payments, not of ledger rules. After every step the
 * results, every balance and every hold's state must match, and debits = credits per currency.
 *
 * Replay a failure with the seed it prints: KESSAI_SEED=<seed> npx vitest run …/ledger-model.test.ts.
 * KESSAI_MODEL_STEPS sets the workload's length (default 250, to keep CI fast).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '@kessai/service';
import { GroupCommit } from '../src/ledger/group-commit.ts';
import { createTransfers, expirePendingTransfers } from '../src/ledger/store.ts';
import type { TransferInput, TransferResult } from '../src/ledger/rules.ts';
import { t0, type FixtureAccount } from './ledger-cases.ts';
import { backend, expectBalanced, insertAccounts, modelSeed, openLedgerDb, replayable, seededDice } from './ledger-db.ts';

const seed = modelSeed;
const steps = Number(process.env.KESSAI_MODEL_STEPS ?? 250);

interface ModelAccount { currency: string; guarded: boolean; dp: bigint; dP: bigint; cp: bigint; cP: bigint }
interface ModelHold { id: string; card: string; merchant: string; amount: bigint; expiresAtMs: number | null; state: 'pending' | 'posted' | 'voided' | 'expired'; captured: bigint; refunded: bigint }

/** What a payment does, in payment terms; `toTransfer` says how it reaches the ledger. */
type Op =
  | { op: 'fund'; id: string; card: string; amount: bigint }
  | { op: 'authorize'; id: string; card: string; merchant: string; amount: bigint; timeoutSeconds: number }
  | { op: 'capture'; id: string; hold: string; amount: bigint }
  | { op: 'void'; id: string; hold: string }
  | { op: 'refund'; id: string; hold: string; card: string; merchant: string; amount: bigint };

const cards: FixtureAccount[] = [
  { id: 'acct_card1', currency: 'JPY', debitsMustNotExceedCredits: true },
  { id: 'acct_card2', currency: 'JPY', debitsMustNotExceedCredits: true },
  { id: 'acct_card3', currency: 'USD', debitsMustNotExceedCredits: true },
];
const merchants: FixtureAccount[] = [
  { id: 'acct_shop1', currency: 'JPY', debitsMustNotExceedCredits: true },
  { id: 'acct_shop2', currency: 'USD', debitsMustNotExceedCredits: true },
];
const funding: FixtureAccount[] = [{ id: 'acct_fundJ', currency: 'JPY' }, { id: 'acct_fundU', currency: 'USD' }];
const fundingOf = (currency: string) => (currency === 'JPY' ? 'acct_fundJ' : 'acct_fundU');

function toTransfer(o: Op, model: Model): TransferInput {
  switch (o.op) {
    case 'fund': return { id: o.id, kind: 'single', debitAccountId: fundingOf(model.accounts.get(o.card)!.currency), creditAccountId: o.card, amount: o.amount, currency: model.accounts.get(o.card)!.currency };
    case 'authorize': return { id: o.id, kind: 'pending', debitAccountId: o.card, creditAccountId: o.merchant, amount: o.amount, currency: model.accounts.get(o.card)!.currency, timeoutSeconds: o.timeoutSeconds };
    case 'capture': return { id: o.id, kind: 'post_pending', pendingId: o.hold, amount: o.amount, currency: model.currencyOfHold(o.hold) };
    case 'void': return { id: o.id, kind: 'void_pending', pendingId: o.hold, amount: 0n, currency: model.currencyOfHold(o.hold) };
    case 'refund': return { id: o.id, kind: 'single', debitAccountId: o.merchant, creditAccountId: o.card, amount: o.amount, currency: model.accounts.get(o.card)!.currency };
  }
}

/** The independent model: balances, holds, and what each payment operation answers. */
class Model {
  accounts = new Map<string, ModelAccount>();
  holds = new Map<string, ModelHold>();
  /** Operations the ledger accepted, by id, to answer retries. */
  accepted = new Map<string, Op>();

  constructor() {
    for (const a of [...cards, ...merchants, ...funding]) this.accounts.set(a.id, { currency: a.currency, guarded: a.debitsMustNotExceedCredits ?? false, dp: 0n, dP: 0n, cp: 0n, cP: 0n });
  }

  currencyOfHold(id: string): string {
    const hold = this.holds.get(id);
    return hold ? this.accounts.get(hold.card)!.currency : 'JPY';
  }

  spendable(id: string): bigint {
    const a = this.accounts.get(id)!;
    return a.cP - a.dP - a.dp;
  }

  apply(o: Op, nowMs: number): TransferResult {
    const before = this.accepted.get(o.id);
    if (before) return sameOp(before, o);
    const result = this.decide(o, nowMs);
    if (result === 'ok') {
      this.accepted.set(o.id, o);
      this.effect(o, nowMs);
    }
    return result;
  }

  decide(o: Op, nowMs: number): TransferResult {
    if (o.op === 'fund') return 'ok';
    if (o.op === 'authorize') {
      if (this.accounts.get(o.card)!.currency !== this.accounts.get(o.merchant)!.currency) return 'accounts_must_have_the_same_currency';
      return this.spendable(o.card) < o.amount ? 'exceeds_credits' : 'ok';
    }
    if (o.op === 'refund') return this.spendable(o.merchant) < o.amount ? 'exceeds_credits' : 'ok';
    const hold = this.holds.get(o.hold);
    if (!hold) return 'pending_transfer_not_found';
    if (o.op === 'capture' && o.amount > hold.amount) return 'exceeds_pending_transfer_amount';
    if (hold.state === 'posted') return 'pending_transfer_already_posted';
    if (hold.state === 'voided') return 'pending_transfer_already_voided';
    if (hold.state === 'expired' || (hold.expiresAtMs !== null && nowMs >= hold.expiresAtMs)) return 'pending_transfer_expired';
    return 'ok';
  }

  effect(o: Op, nowMs: number): void {
    const acct = (id: string) => this.accounts.get(id)!;
    if (o.op === 'fund') {
      acct(fundingOf(acct(o.card).currency)).dP += o.amount;
      acct(o.card).cP += o.amount;
    } else if (o.op === 'authorize') {
      acct(o.card).dp += o.amount;
      acct(o.merchant).cp += o.amount;
      this.holds.set(o.id, { id: o.id, card: o.card, merchant: o.merchant, amount: o.amount, expiresAtMs: o.timeoutSeconds > 0 ? nowMs + o.timeoutSeconds * 1000 : null, state: 'pending', captured: 0n, refunded: 0n });
    } else if (o.op === 'refund') {
      acct(o.merchant).dP += o.amount;
      acct(o.card).cP += o.amount;
      this.holds.get(o.hold)!.refunded += o.amount;
    } else {
      const hold = this.holds.get(o.hold)!;
      this.release(hold, o.op === 'capture' ? 'posted' : 'voided');
      if (o.op === 'capture') {
        acct(hold.card).dP += o.amount;
        acct(hold.merchant).cP += o.amount;
        hold.captured = o.amount;
      }
    }
  }

  release(hold: ModelHold, state: ModelHold['state']): void {
    this.accounts.get(hold.card)!.dp -= hold.amount;
    this.accounts.get(hold.merchant)!.cp -= hold.amount;
    hold.state = state;
  }

  expire(nowMs: number): string[] {
    const due = [...this.holds.values()].filter((h) => h.state === 'pending' && h.expiresAtMs !== null && nowMs >= h.expiresAtMs);
    for (const hold of due) this.release(hold, 'expired');
    return due.map((h) => h.id).sort();
  }
}

/** The answer to a retry of an accepted operation: `exists` only if it is the same. */
function sameOp(stored: Op, retry: Op): TransferResult {
  if (stored.op !== retry.op) return 'exists_with_different_kind';
  const amount = (o: Op) => ('amount' in o ? o.amount : 0n);
  return amount(stored) === amount(retry) ? 'exists' : 'exists_with_different_amount';
}

let db: Db;
let close: () => Promise<void>;
beforeAll(async () => ({ db, close } = await openLedgerDb('kessai_ledger_model')));
afterAll(async () => close?.());

describe(`ledger model-based test on ${backend}`, () => {
  it(`matches an independent model over a seeded random workload (${steps} steps)`, async () => {
    await replayable('ledger model test', 'apps/settlement-server/test/ledger-model.test.ts', seed, run);
  });
});

async function run(): Promise<void> {
  const { int, pick } = seededDice(seed);
  const model = new Model();
  const ledger = new GroupCommit(db, { batchSizeMax: 8 });
  await db.transaction((tx) => insertAccounts(tx, [...cards, ...merchants, ...funding]));
  let nowMs = t0;
  let seq = 0;
  const submitted: Op[] = [];
  const counts = new Map<string, number>();

  const next = (): Op => {
    const id = `xfer_${(seq += 1)}`;
    const holds = [...model.holds.values()];
    const roll = int(100);
    if (roll < 8) return { op: 'fund', id, card: pick(cards).id, amount: BigInt(1 + int(500)) };
    if (roll < 40 || holds.length === 0) {
      const card = pick(cards);
      // One in ten names a merchant account in whatever currency (refused when it differs).
      const merchant = int(10) === 0 ? pick(merchants) : merchants.find((m) => m.currency === card.currency)!;
      return { op: 'authorize', id, card: card.id, merchant: merchant.id, amount: BigInt(1 + int(400)), timeoutSeconds: pick([0, 5, 20, 60]) };
    }
    const hold = pick(holds);
    if (roll < 58) return { op: 'capture', id, hold: hold.id, amount: BigInt(int(Number(hold.amount) + 20)) };
    if (roll < 68) return { op: 'void', id, hold: hold.id };
    if (roll < 82) {
      const captured = holds.filter((h) => h.captured > h.refunded);
      const h = captured.length > 0 ? pick(captured) : hold;
      const left = h.captured - h.refunded;
      // Settlement refunds at most what is left of the capture; the ledger refuses beyond the merchant's balance.
      return { op: 'refund', id, hold: h.id, card: h.card, merchant: h.merchant, amount: left > 0n ? 1n + BigInt(int(Number(left))) : 1n };
    }
    // A retry: the same operation again, or (one in three) the same id with another amount.
    const again = pick(submitted);
    return int(3) === 0 && 'amount' in again ? { ...again, amount: again.amount + 1n } : again;
  };

  for (let step = 0; step < steps; step += 1) {
    if (int(10) === 0) {
      nowMs += int(30_000);
      const expected = model.expire(nowMs);
      const got = await ledger.run((tx) => expirePendingTransfers(tx, new Date(nowMs), 10_000));
      expect([...got].sort(), `step ${step}: expired holds`).toEqual(expected);
      counts.set('expire', (counts.get('expire') ?? 0) + expected.length);
    } else {
      // Several jobs queued at once share a batch; sometimes one job carries several transfers.
      const jobs = Array.from({ length: 1 + int(4) }, () => Array.from({ length: int(4) === 0 ? 2 + int(3) : 1 }, next));
      const transfers = jobs.map((ops) => ops.map((o) => toTransfer(o, model)));
      // Half the jobs are plain submissions, which the group commit merges into one store call.
      const pending = transfers.map((batch) => (int(2) === 0 ? ledger.createTransfers(batch, new Date(nowMs)) : ledger.run((tx) => createTransfers(tx, batch, new Date(nowMs)))));
      const expected = jobs.map((ops) => ops.map((o) => model.apply(o, nowMs)));
      const got = await Promise.all(pending);
      expect(got, `step ${step}: results of ${JSON.stringify(jobs, (_, v) => (typeof v === 'bigint' ? v.toString() : v))}`).toEqual(expected);
      for (const [i, ops] of jobs.entries()) ops.forEach((o, j) => counts.set(`${o.op}:${expected[i]![j]}`, (counts.get(`${o.op}:${expected[i]![j]}`) ?? 0) + 1));
      submitted.push(...jobs.flat());
    }
    await compare(model, step);
  }
  // The workload must have reached the interesting cases, or it proves little.
  const reached = (suffix: string) => [...counts].filter(([key]) => key === suffix || key.endsWith(`:${suffix}`)).reduce((sum, [, n]) => sum + n, 0);
  for (const key of ['authorize:ok', 'authorize:exceeds_credits', 'capture:ok', 'void:ok', 'refund:ok', 'expire', 'exists', 'exists_with_different_amount', 'pending_transfer_expired']) {
    expect(reached(key), `workload never produced ${key}: ${JSON.stringify([...counts])}`).toBeGreaterThan(0);
  }
}

async function compare(model: Model, step: number): Promise<void> {
  const rows = await db.query<{ id: string; debits_pending: bigint; debits_posted: bigint; credits_pending: bigint; credits_posted: bigint }>('select id, debits_pending, debits_posted, credits_pending, credits_posted from ledger_accounts order by id');
  const got = Object.fromEntries(rows.map((r) => [r.id, [r.debits_pending, r.debits_posted, r.credits_pending, r.credits_posted].map(BigInt)]));
  const want = Object.fromEntries([...model.accounts].sort(([a], [b]) => (a < b ? -1 : 1)).map(([id, a]) => [id, [a.dp, a.dP, a.cp, a.cP]]));
  expect(got, `step ${step}: balances`).toEqual(want);
  const holds = await db.query<{ id: string; state: string }>("select id, state from transfers where kind = 'pending' order by id");
  expect(Object.fromEntries(holds.map((h) => [h.id, h.state])), `step ${step}: hold states`).toEqual(Object.fromEntries([...model.holds.values()].map((h) => [h.id, h.state])));
  for (const [id, a] of model.accounts) if (a.guarded) expect(a.dp + a.dP <= a.cP, `step ${step}: ${id} overdrawn`).toBe(true);
  await expectBalanced(db);
}
