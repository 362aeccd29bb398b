/**
 * Model-based test of settlement (after ledger-model.test.ts): a seeded random workload of
 * authorizations, captures (full, partial, zero, retried), voids, expiry of holds, refunds and
 * day closes (and repeated closes of days already closed) runs through the settlement server's own capture,
 * refund and close code on the SQL ledger, and against an independent model of what each batch
 * must hold: per merchant and currency the captured, refunded and fee totals (each fee rounded
 * half up by a formula of its own, in integers), the carried amount and the payout. After every
 * close the batches, the report's sums and the balances of the merchant, fee income and payout
 * accounts must match, and debits = credits.
 *
 * Replay a failure with the seed it prints: KESSAI_SEED=<seed> npx vitest run …/settlement-model.test.ts.
 * KESSAI_SETTLEMENT_MODEL_STEPS sets the workload's length (default 150; longer until every kind of
 * operation has occurred).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { newId, type SettlementBatchView } from '@kessai/protocol';
import type { Db } from '@kessai/service';
import { settleHold } from '../src/capture.ts';
import type { SettlementConfig } from '../src/config.ts';
import { GroupCommit } from '../src/ledger/group-commit.ts';
import { createTransfers, readAccount } from '../src/ledger/store.ts';
import { expireHolds } from '../src/expiry.ts';
import { refund } from '../src/refund.ts';
import { addDays, businessDayOf, endOfDay } from '../src/settlement/business-day.ts';
import { closeDay } from '../src/settlement/batches.ts';
import { setFeeSchedule } from '../src/settlement/fees.ts';
import { resolveSettlementOptions } from '../src/settlement/options.ts';
import { loadReport, reportCsv } from '../src/settlement/report.ts';
import { backend, expectBalanced, modelSeed, openLedgerDb, replayable, seededDice } from './ledger-db.ts';

const seed = modelSeed;
const steps = Number(process.env.KESSAI_SETTLEMENT_MODEL_STEPS ?? 150);
/** The timeout of the holds that have one: long enough that none expires on its own while the test runs. */
const holdTimeoutSeconds = 3_600;

interface ModelMerchant { id: string; currency: 'JPY' | 'KWD'; account: string; bp: number; fixed: number; balance: bigint; carried: bigint }
/** `expires`: the hold has a timeout (most holds here have none, so they stay until captured or voided). */
interface ModelHold { rid: string; merchant: ModelMerchant; card: string; amount: bigint; expires: boolean; state: 'held' | 'captured' | 'voided' | 'expired'; captured: bigint; refunded: bigint }
/** A capture or refund not yet in a batch. */
interface ModelLine { merchant: ModelMerchant; kind: 'capture' | 'refund'; amount: bigint }

/** The model's fee: Math.round of the float product (exact for these amounts: halves are exact in binary). */
const modelFee = (amount: bigint, m: ModelMerchant) => {
  // Round half up, written as floor((2·amount·bp + 10000) / 20000): the same rule as the
  // server's, by another formula, in integers.
  const fee = (2n * amount * BigInt(m.bp) + 10_000n) / 20_000n + BigInt(m.fixed);
  return fee > amount ? amount : fee;
};

let db: Db;
let close: () => Promise<void>;
beforeAll(async () => ({ db, close } = await openLedgerDb('kessai_settlement_model')));
afterAll(async () => close?.());

describe(`settlement model-based test on ${backend}`, () => {
  it(`matches an independent model of batches, fees, carried amounts and payouts (${steps} steps)`, async () => {
    await replayable('settlement model test', 'apps/settlement-server/test/settlement-model.test.ts', seed, run);
  });
});

async function run(): Promise<void> {
  const { int, pick } = seededDice(seed);
  const config = { logger: pino({ level: 'silent' }) } as unknown as SettlementConfig;
  const ledger = new GroupCommit(db, { batchSizeMax: 8 });
  const options = resolveSettlementOptions({ workerIntervalMs: 0 });

  // Merchants: the default fee (250 bp), a fixed part that can exceed a small amount, a 3-decimal currency.
  const merchants: ModelMerchant[] = [];
  const cards: Record<string, string> = {};
  await db.transaction(async (tx) => {
    for (const [currency, bp, fixed] of [['JPY', 250, 0], ['JPY', 360, 10], ['KWD', 175, 5]] as const) {
      const m: ModelMerchant = { id: newId('mer'), currency, account: newId('acct'), bp, fixed, balance: 0n, carried: 0n };
      await tx.query("insert into ledger_accounts (id, kind, currency) values ($1, 'merchant', $2)", [m.account, currency]);
      await tx.query('insert into merchant_accounts (merchant_id, currency, account_id) values ($1, $2, $3)', [m.id, currency, m.account]);
      if (bp !== 250) await setFeeSchedule(tx, m.id, currency, { basisPoints: bp, fixedMinor: BigInt(fixed) });
      merchants.push(m);
    }
    for (const currency of ['JPY', 'KWD']) {
      const funding = newId('acct');
      const card = newId('acct');
      await tx.query("insert into ledger_accounts (id, kind, currency) values ($1, 'issuer_funding', $2)", [funding, currency]);
      await tx.query("insert into ledger_accounts (id, kind, currency, debits_must_not_exceed_credits) values ($1, 'cardholder', $2, true)", [card, currency]);
      expect(await createTransfers(tx, [{ id: newId('xfer'), kind: 'single', debitAccountId: funding, creditAccountId: card, amount: 10n ** 12n, currency }], new Date())).toEqual(['ok']);
      cards[currency] = card;
    }
  });

  const holds: ModelHold[] = [];
  let unsettled: ModelLine[] = [];
  const fees: Record<string, bigint> = { JPY: 0n, KWD: 0n };
  const payouts: Record<string, bigint> = { JPY: 0n, KWD: 0n };
  const closed: Array<{ day: string; batches: SettlementBatchView[] }> = [];
  let day = businessDayOf(new Date(), 'UTC');
  const counts = new Map<string, number>();
  const count = (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);

  // Every kind of operation must occur: past `steps`, the workload goes on (at most 8 × steps) until each has.
  const kinds = ['authorize', 'capture:full', 'capture:partial', 'capture:zero', 'void', 'expire', 'refund', 'close:payout', 'close:no-payout', 'close:carried-in', 'close-again'];
  const missing = () => kinds.some((kind) => (counts.get(kind) ?? 0) === 0);
  for (let step = 0; step < steps || (missing() && step < steps * 8); step += 1) {
    const roll = int(100);
    const now = new Date();
    const held = holds.filter((h) => h.state === 'held');
    const refundable = holds.filter((h) => h.state === 'captured' && h.captured > h.refunded);
    if (roll < 28 || held.length === 0) {
      const merchant = pick(merchants);
      // Small amounts too, where the fixed part would exceed the amount.
      const amount = BigInt(int(4) === 0 ? 1 + int(20) : 1 + int(20_000));
      const rid = newId('pr');
      const holdId = newId('xfer');
      const expires = int(2) === 0;
      await db.transaction(async (tx) => {
        expect(await createTransfers(tx, [{ id: holdId, kind: 'pending', debitAccountId: cards[merchant.currency]!, creditAccountId: merchant.account, amount, currency: merchant.currency, ...(expires ? { timeoutSeconds: holdTimeoutSeconds } : {}) }], now)).toEqual(['ok']);
        await tx.query("insert into authorizations (id, request_id, merchant_id, account_id, amount, currency, decision, status, hold_transfer_id, jws) values ($1, $2, $3, $4, $5, $6, 'approved', 'held', $7, 'x.y.z')", [
          newId('auth'), rid, merchant.id, cards[merchant.currency], amount, merchant.currency, holdId,
        ]);
      });
      holds.push({ rid, merchant, card: cards[merchant.currency]!, amount, expires, state: 'held', captured: 0n, refunded: 0n });
      count('authorize');
    } else if (roll < 48) {
      const hold = pick(held);
      const kind = int(8);
      const amount = kind === 0 ? 0n : kind < 4 ? hold.amount : 1n + BigInt(int(Number(hold.amount))); // zero, full, or 1..amount
      const result = await settleHold(config, ledger, hold.rid, 'capture', amount.toString(), now);
      expect(result.captured_minor).toBe(amount.toString());
      hold.state = 'captured';
      hold.captured = amount;
      hold.merchant.balance += amount;
      if (amount > 0n) unsettled.push({ merchant: hold.merchant, kind: 'capture', amount });
      // A retried capture answers the same and settles nothing twice.
      if (int(3) === 0) expect((await settleHold(config, ledger, hold.rid, 'capture', amount.toString(), now)).captured_minor).toBe(amount.toString());
      count(amount === 0n ? 'capture:zero' : amount === hold.amount ? 'capture:full' : 'capture:partial');
    } else if (roll < 56) {
      const hold = pick(held);
      await settleHold(config, ledger, hold.rid, 'void', undefined, now);
      hold.state = 'voided';
      count('void');
    } else if (roll < 64 && held.some((h) => h.expires)) {
      // Time passes beyond every timeout: the expiry pass releases exactly the held holds that have one.
      const later = new Date(now.getTime() + (holdTimeoutSeconds + 60) * 1000);
      const released = await ledger.run((tx) => expireHolds(tx, later));
      const due = held.filter((h) => h.expires);
      expect([...released].sort(), `step ${step}: holds expired`).toEqual(due.map((h) => h.rid).sort());
      for (const hold of due) hold.state = 'expired';
      // A late capture of an expired hold is refused and moves nothing.
      const late = pick(due);
      const refused = await settleHold(config, ledger, late.rid, 'capture', late.amount.toString(), later).then(() => 'captured', (err: { code?: string }) => err.code);
      expect(refused, `step ${step}: capture after expiry`).toBe('authorization_not_capturable');
      count('expire');
    } else if (roll < 80 && refundable.length > 0) {
      const hold = pick(refundable);
      const left = hold.captured - hold.refunded;
      const amount = int(3) === 0 ? left : 1n + BigInt(int(Number(left)));
      await refund(config, ledger, hold.rid, { refund_id: newId('rf'), amount_minor: amount.toString() }, now);
      hold.refunded += amount;
      hold.merchant.balance -= amount;
      unsettled.push({ merchant: hold.merchant, kind: 'refund', amount });
      count('refund');
    } else if (roll < 92 || closed.length === 0) {
      // Close the next day, as if its end had just passed.
      const result = await ledger.run((tx) => closeDay(tx, options, 'model-bank', day, new Date(endOfDay(day, 'UTC').getTime() + 1)));
      expect(result.already_closed, `step ${step}`).toBe(false);
      const expected = [];
      for (const m of merchants) {
        const lines = unsettled.filter((l) => l.merchant === m);
        if (lines.length === 0) continue;
        const captured = lines.filter((l) => l.kind === 'capture').reduce((s, l) => s + l.amount, 0n);
        const refunded = lines.filter((l) => l.kind === 'refund').reduce((s, l) => s + l.amount, 0n);
        const fee = lines.filter((l) => l.kind === 'capture').reduce((s, l) => s + modelFee(l.amount, m), 0n);
        const due = captured - refunded - fee + m.carried;
        const payout = due > 0n ? due : 0n;
        const carriedIn = m.carried;
        m.carried = due < 0n ? due : 0n;
        m.balance -= fee + payout;
        fees[m.currency]! += fee;
        payouts[m.currency]! += payout;
        expected.push({ merchant_id: m.id, currency: m.currency, captured_minor: `${captured}`, refunded_minor: `${refunded}`, fees_minor: `${fee}`, net_minor: `${captured - refunded - fee}`, carried_in_minor: `${carriedIn}`, payout_minor: `${payout}`, carried_out_minor: `${m.carried}`, line_count: lines.length });
        count(payout === 0n ? 'close:no-payout' : carriedIn < 0n ? 'close:carried-in' : 'close:payout');
      }
      unsettled = [];
      const pickFields = (b: SettlementBatchView) => ({ merchant_id: b.merchant_id, currency: b.currency, captured_minor: b.captured_minor, refunded_minor: b.refunded_minor, fees_minor: b.fees_minor, net_minor: b.net_minor, carried_in_minor: b.carried_in_minor, payout_minor: b.payout_minor, carried_out_minor: b.carried_out_minor, line_count: b.line_count });
      const order = (a: { merchant_id: string }, b: { merchant_id: string }) => a.merchant_id.localeCompare(b.merchant_id);
      expect(result.batches.map(pickFields).sort(order), `step ${step}: batches of ${day}`).toEqual(expected.sort(order));
      // Each report adds up: lines to the fee transfer, lines and carry to the payout.
      for (const batch of result.batches) {
        const rows = reportCsv(await loadReport(db, 'model-bank', batch.id)).trimEnd().split('\r\n').slice(1).map((line) => line.split(','));
        const lines = rows.filter((r) => r[0] === 'capture' || r[0] === 'refund');
        const net = lines.reduce((s, r) => s + BigInt(r[9]!), 0n);
        const fee = lines.reduce((s, r) => s + BigInt(r[8]!), 0n);
        expect(net + BigInt(batch.carried_in_minor), `step ${step}: report of ${batch.id}`).toBe(BigInt(batch.payout_minor) + BigInt(batch.carried_out_minor));
        const transfers = await db.query<{ id: string; amount: bigint }>('select id, amount from transfers where id = any($1::text[])', [[`${batch.id}.fee`, `${batch.id}.payout`]]);
        const amountOf = (id: string) => BigInt(transfers.find((t) => t.id === id)?.amount ?? 0n);
        expect([amountOf(`${batch.id}.fee`), amountOf(`${batch.id}.payout`)], `step ${step}: transfers of ${batch.id}`).toEqual([fee, BigInt(batch.payout_minor)]);
      }
      closed.push({ day, batches: result.batches });
      day = addDays(day, 1);
    } else {
      // Close a day that is closed already: the same batches, nothing written.
      const earlier = pick(closed);
      const [before] = await db.query<{ n: number }>('select count(*)::int4 as n from transfers');
      const again = await ledger.run((tx) => closeDay(tx, options, 'model-bank', earlier.day, new Date(endOfDay(day, 'UTC').getTime() + 1)));
      expect(again.already_closed).toBe(true);
      expect(again.batches).toEqual(earlier.batches);
      const [after] = await db.query<{ n: number }>('select count(*)::int4 as n from transfers');
      expect(after).toEqual(before);
      count('close-again');
    }
    await compare(step);
  }

  async function compare(step: number): Promise<void> {
    // What the payers have on hold is exactly the holds still held.
    for (const [currency, card] of Object.entries(cards)) {
      const pending = holds.filter((h) => h.card === card && h.state === 'held').reduce((sum, h) => sum + h.amount, 0n);
      expect((await readAccount(db, card)).debitsPending, `step ${step}: ${currency} held`).toBe(pending);
    }
    for (const m of merchants) {
      const a = await readAccount(db, m.account);
      expect(a.creditsPosted - a.debitsPosted, `step ${step}: merchant ${m.id} balance`).toBe(m.balance);
    }
    const rows = await db.query<{ kind: string; currency: string; account_id: string }>('select kind, currency, account_id from settlement_accounts');
    for (const currency of ['JPY', 'KWD']) {
      for (const [kind, want] of [['fee_income', fees[currency]!], ['merchant_payout', payouts[currency]!]] as const) {
        const row = rows.find((r) => r.kind === kind && r.currency === currency);
        const got = row ? (await readAccount(db, row.account_id)).creditsPosted : 0n;
        expect(got, `step ${step}: ${kind} ${currency}`).toBe(want);
      }
    }
    await expectBalanced(db);
  }

  for (const key of kinds) {
    expect(counts.get(key) ?? 0, `workload never produced ${key}: ${JSON.stringify([...counts])}`).toBeGreaterThan(0);
  }
}
