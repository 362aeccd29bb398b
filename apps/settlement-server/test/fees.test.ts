/**
 * Fees, business days and closing a day at the settlement server's store level: the rounding rule
 * (round half up of amount × bp / 10000, plus the fixed part, never more than the amount) on JPY
 * (exponent 0), USD (2) and KWD (3); days in a time zone; a batch's fee and payout transfers; a
 * second close that changes nothing; a negative net carried forward to the merchant's next batch.
 * Runs on PGlite, or PostgreSQL when KESSAI_TEST_PG_URL is set.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KessaiError, newId, type Currency } from '@kessai/protocol';
import type { Db, Queryable } from '@kessai/service';
import { createTransfers, readAccount } from '../src/ledger/store.ts';
import { addDays, businessDayOf, endOfDay, startOfDay } from '../src/settlement/business-day.ts';
import { closeDay, settlementBatchIdOf } from '../src/settlement/batches.ts';
import { feeOf, setFeeSchedule } from '../src/settlement/fees.ts';
import { resolveSettlementOptions } from '../src/settlement/options.ts';
import { loadReport, reportCsv } from '../src/settlement/report.ts';
import { backend, expectBalanced, openLedgerDb } from './ledger-db.ts';

describe('the fee rule', () => {
  it.each([
    // [amount, basis points, fixed, fee, why]
    [10_000n, 250, 0n, 250n, 'JPY 10,000 at 2.5 %'],
    [20n, 250, 0n, 1n, 'JPY 20 × 2.5 % = 0.5: an exact half rounds up'],
    [19n, 250, 0n, 0n, 'JPY 19 × 2.5 % = 0.475 rounds down'],
    [1n, 250, 30n, 1n, 'JPY 1 with a fixed 30: the fee never exceeds the amount'],
    [0n, 250, 30n, 0n, 'nothing captured, no fee'],
    [1_000n, 250, 0n, 25n, 'KWD 1.000 (1000 fils) at 2.5 % = 25 fils'],
    [1_020n, 250, 0n, 26n, 'KWD 1.020 × 2.5 % = 25.5 fils rounds up'],
    [1_019n, 250, 0n, 25n, 'KWD 1.019 × 2.5 % = 25.475 fils rounds down'],
    [12_345n, 290, 30n, 388n, 'USD 123.45 at 2.9 % + 0.30 = 3.58005 + 0.30'],
    [999_999_999_999_999n, 10_000, 0n, 999_999_999_999_999n, 'the whole amount at 100 %'],
    [1_000_000_000_000_000n, 1, 0n, 100_000_000_000n, 'amountMinorMax at 1 bp, exact in bigint'],
  ])('%s minor units at %s bp + %s → %s (%s)', (amount, bp, fixed, fee) => {
    expect(feeOf(amount, { basisPoints: bp, fixedMinor: fixed })).toBe(fee);
  });

  it('refuses a negative amount and a schedule outside 0..10000 bp', () => {
    expect(() => feeOf(-1n, { basisPoints: 1, fixedMinor: 0n })).toThrow(RangeError);
    expect(() => resolveSettlementOptions({ defaultFee: { basisPoints: 10_001, fixedMinor: 0n } })).toThrow(TypeError);
    expect(() => resolveSettlementOptions({ timeZone: 'Mars/Olympus' })).toThrow(TypeError);
  });
});

describe('business days', () => {
  it('counts a day in the configured time zone, default UTC', () => {
    expect(businessDayOf(new Date('2026-03-01T14:59:59Z'), 'Asia/Tokyo')).toBe('2026-03-01');
    expect(businessDayOf(new Date('2026-03-01T15:00:00Z'), 'Asia/Tokyo')).toBe('2026-03-02');
    expect(startOfDay('2026-03-02', 'Asia/Tokyo').toISOString()).toBe('2026-03-01T15:00:00.000Z');
    expect(endOfDay('2026-03-01', 'UTC').toISOString()).toBe('2026-03-02T00:00:00.000Z');
    expect(addDays('2026-02-28', 1)).toBe('2026-03-01');
  });

  it('is 23 hours long on the day daylight saving time starts', () => {
    const length = endOfDay('2026-03-08', 'America/New_York').getTime() - startOfDay('2026-03-08', 'America/New_York').getTime();
    expect(length).toBe(23 * 3600 * 1000);
    expect(startOfDay('2026-03-08', 'America/New_York').toISOString()).toBe('2026-03-08T05:00:00.000Z');
  });
});

let db: Db;
let close: () => Promise<void>;
beforeAll(async () => ({ db, close } = await openLedgerDb('kessai_settlement_fees')));
afterAll(async () => close?.());

interface Merchant {
  id: string;
  accounts: Record<string, string>;
}

async function newAccount(tx: Queryable, kind: string, currency: string, flags = false): Promise<string> {
  const id = newId('acct');
  await tx.query('insert into ledger_accounts (id, kind, currency, debits_must_not_exceed_credits) values ($1, $2, $3, $4)', [id, kind, currency, flags]);
  return id;
}

async function newMerchant(currencies: Currency[]): Promise<Merchant> {
  const merchant: Merchant = { id: newId('mer'), accounts: {} };
  await db.transaction(async (tx) => {
    for (const currency of currencies) {
      merchant.accounts[currency] = await newAccount(tx, 'merchant', currency);
      await tx.query('insert into merchant_accounts (merchant_id, currency, account_id) values ($1, $2, $3)', [merchant.id, currency, merchant.accounts[currency]]);
    }
  });
  return merchant;
}

/** A funded card pays `amount`, held and captured in full or in part; returns the authorization's request id. */
async function captured(merchant: Merchant, currency: Currency, amount: bigint, capture = amount): Promise<{ rid: string; authorizationId: string; holdId: string; card: string }> {
  const rid = newId('pr');
  const authorizationId = newId('auth');
  const holdId = newId('xfer');
  const now = new Date();
  const card = await db.transaction(async (tx) => {
    const funding = await newAccount(tx, 'issuer_funding', currency);
    const account = await newAccount(tx, 'cardholder', currency, true);
    expect(await createTransfers(tx, [
      { id: newId('xfer'), kind: 'single', debitAccountId: funding, creditAccountId: account, amount, currency },
      { id: holdId, kind: 'pending', debitAccountId: account, creditAccountId: merchant.accounts[currency]!, amount, currency },
    ], now)).toEqual(['ok', 'ok']);
    await tx.query("insert into authorizations (id, request_id, merchant_id, account_id, amount, currency, decision, status, hold_transfer_id, jws) values ($1, $2, $3, $4, $5, $6, 'approved', 'held', $7, 'x.y.z')", [
      authorizationId, rid, merchant.id, account, amount, currency, holdId,
    ]);
    return account;
  });
  await db.transaction(async (tx) => {
    expect(await createTransfers(tx, [{ id: `${holdId}.capture`, kind: 'post_pending', pendingId: holdId, amount: capture, currency }], now)).toEqual(['ok']);
    await tx.query("update authorizations set status = 'captured', captured_amount = $2 where id = $1", [authorizationId, capture]);
  });
  return { rid, authorizationId, holdId, card };
}

async function refunded(payment: { authorizationId: string; holdId: string; card: string }, merchant: Merchant, currency: Currency, amount: bigint): Promise<string> {
  const refundId = newId('rf');
  await db.transaction(async (tx) => {
    const transferId = `${payment.holdId}.refund.${refundId}`;
    expect(await createTransfers(tx, [{ id: transferId, kind: 'single', debitAccountId: merchant.accounts[currency]!, creditAccountId: payment.card, amount, currency }], new Date())).toEqual(['ok']);
    await tx.query('insert into refunds (id, authorization_id, amount, transfer_id) values ($1, $2, $3, $4)', [refundId, payment.authorizationId, amount, transferId]);
    await tx.query('update authorizations set refunded_amount = refunded_amount + $2 where id = $1', [payment.authorizationId, amount]);
  });
  return refundId;
}

const options = resolveSettlementOptions({ workerIntervalMs: 0 });
const balance = async (id: string) => {
  const account = await readAccount(db, id);
  return account.creditsPosted - account.debitsPosted;
};
/** Closes `day` as if the clock read `now`. */
const close1 = (day: string, now: Date) => db.transaction((tx) => closeDay(tx, options, 'test-bank', day, now));

describe(`closing a day on ${backend}`, () => {
  const today = businessDayOf(new Date(), 'UTC');
  const tomorrow = addDays(today, 1);
  const afterToday = new Date(endOfDay(today, 'UTC').getTime() + 1000);
  const afterTomorrow = new Date(endOfDay(tomorrow, 'UTC').getTime() + 1000);

  it('refuses the current, unfinished day and a day in the future with settlement_day_not_over', async () => {
    for (const day of [today, tomorrow]) {
      const refused = await close1(day, new Date()).catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(KessaiError);
      expect((refused as KessaiError).code).toBe('settlement_day_not_over');
    }
    const [row] = await db.query('select count(*)::int4 as n from settlement_days');
    expect(row).toEqual({ n: 0 });
  });

  let jpy: Merchant;
  let kwd: Merchant;
  it('settles every merchant and currency: fees to fee income, the rest paid out, lines adding up to both transfers', async () => {
    jpy = await newMerchant(['JPY']);
    kwd = await newMerchant(['KWD']);
    await db.transaction((tx) => setFeeSchedule(tx, jpy.id, 'JPY', { basisPoints: 360, fixedMinor: 10n }));
    const a = await captured(jpy, 'JPY', 5_000n);
    const b = await captured(jpy, 'JPY', 3_000n, 1_250n); // partial capture
    await refunded(a, jpy, 'JPY', 1_000n);
    const k = await captured(kwd, 'KWD', 1_020n); // KWD 1.020, default 2.5 %: 25.5 fils rounds up to 26
    const result = await close1(today, afterToday);
    expect(result.already_closed).toBe(false);
    const mine = result.batches.filter((x) => x.merchant_id === jpy.id || x.merchant_id === kwd.id);
    expect(mine).toHaveLength(2);
    const j = mine.find((x) => x.merchant_id === jpy.id)!;
    // 5000 × 3.6 % = 180 + 10; 1250 × 3.6 % = 45 + 10; the refund returns no fee.
    expect(j).toMatchObject({ id: settlementBatchIdOf(today, jpy.id, 'JPY'), currency: 'JPY', captured_minor: '6250', refunded_minor: '1000', fees_minor: '245', net_minor: '5005', payout_minor: '5005', carried_in_minor: '0', carried_out_minor: '0', line_count: 3, fee_schedule: { basis_points: 360, fixed_minor: '10' } });
    const kb = mine.find((x) => x.merchant_id === kwd.id)!;
    expect(kb).toMatchObject({ currency: 'KWD', captured_minor: '1020', fees_minor: '26', net_minor: '994', payout_minor: '994', fee_schedule: { basis_points: 250, fixed_minor: '0' } });
    // The merchant account is emptied into fee income and the payout account.
    expect(await balance(jpy.accounts.JPY!)).toBe(0n);
    expect(await balance(kwd.accounts.KWD!)).toBe(0n);
    const [fee] = await db.query<{ amount: bigint; credit_account_id: string }>('select amount, credit_account_id from transfers where id = $1', [`${j.id}.fee`]);
    const [payout] = await db.query<{ amount: bigint; credit_account_id: string }>('select amount, credit_account_id from transfers where id = $1', [`${j.id}.payout`]);
    expect([BigInt(fee!.amount), BigInt(payout!.amount)]).toEqual([245n, 5005n]);
    const [kinds] = await db.query<{ kinds: string }>("select string_agg(kind, ',' order by kind) as kinds from ledger_accounts where id in ($1, $2)", [fee!.credit_account_id, payout!.credit_account_id]);
    expect(kinds!.kinds).toBe('fee_income,merchant_payout');
    const report = await loadReport(db, 'test-bank', j.id);
    expect(report.lines.map((l) => [l.kind, l.payment_request_id, l.amount_minor, l.fee_minor, l.net_minor])).toEqual([
      ['capture', a.rid, '5000', '190', '4810'],
      ['capture', b.rid, '1250', '55', '1195'],
      ['refund', a.rid, '1000', '0', '-1000'],
    ]);
    expect(report.totals).toEqual({ captured_minor: '6250', refunded_minor: '1000', fees_minor: '245', net_minor: '5005', carried_in_minor: '0', payout_minor: '5005', carried_out_minor: '0' });
    const csv = reportCsv(report).trimEnd().split('\r\n').map((line) => line.split(','));
    expect(csv[0]).toEqual(['kind', 'authorization_id', 'payment_request_id', 'refund_id', 'transfer_id', 'posted_at', 'currency', 'amount_minor', 'fee_minor', 'net_minor']);
    const body = csv.slice(1).filter((row) => row[0] === 'capture' || row[0] === 'refund');
    expect(body.reduce((sum, row) => sum + BigInt(row[9]!), 0n)).toBe(5005n);
    expect(csv.find((row) => row[0] === 'payout')![9]).toBe('5005');
    expect((await loadReport(db, 'test-bank', kb.id)).lines.map((l) => [l.payment_request_id, l.fee_minor])).toEqual([[k.rid, '26']]);
    await expectBalanced(db);
  });

  it('closing the same day again returns the same batches and moves nothing', async () => {
    const [before] = await db.query<{ n: number; sum: bigint }>('select count(*)::int4 as n, sum(amount)::int8 as sum from transfers');
    const first = await db.query('select * from settlement_batches order by id');
    const again = await close1(today, new Date(afterToday.getTime() + 3_600_000));
    expect(again.already_closed).toBe(true);
    expect(again.batches.map((x) => x.id).sort()).toEqual(first.map((x) => (x as { id: string }).id));
    const [after] = await db.query<{ n: number; sum: bigint }>('select count(*)::int4 as n, sum(amount)::int8 as sum from transfers');
    expect(after).toEqual(before);
    expect(await db.query('select * from settlement_batches order by id')).toEqual(first);
  });

  it('pays nothing when refunds exceed captures less fees: the negative net is carried into the next batch', async () => {
    // A capture settled today, refunded in full tomorrow together with a small new capture.
    const p = await captured(jpy, 'JPY', 2_000n);
    const day2 = tomorrow;
    // Closing tomorrow settles p (every unsettled line posted before its end).
    const r0 = await close1(day2, afterTomorrow);
    const settledP = r0.batches.find((x) => x.merchant_id === jpy.id)!;
    expect(settledP).toMatchObject({ captured_minor: '2000', fees_minor: '82', payout_minor: '1918' });
    await refunded(p, jpy, 'JPY', 2_000n);
    await captured(jpy, 'JPY', 100n); // fee 3.6 + 10 → 14
    const day3 = addDays(day2, 1);
    const r1 = await close1(day3, new Date(endOfDay(day3, 'UTC').getTime() + 1));
    const negative = r1.batches.find((x) => x.merchant_id === jpy.id)!;
    expect(negative).toMatchObject({ captured_minor: '100', refunded_minor: '2000', fees_minor: '14', net_minor: '-1914', carried_in_minor: '0', payout_minor: '0', carried_out_minor: '-1914', payout_transfer_id: null });
    expect(negative.fee_transfer_id).toBe(`${negative.id}.fee`);
    expect(await balance(jpy.accounts.JPY!)).toBe(-1914n);
    // The next batch sets the carried amount against its own net before paying out.
    await captured(jpy, 'JPY', 5_000n); // fee 180 + 10
    const day4 = addDays(day3, 1);
    const r2 = await close1(day4, new Date(endOfDay(day4, 'UTC').getTime() + 1));
    expect(r2.batches.find((x) => x.merchant_id === jpy.id)).toMatchObject({ captured_minor: '5000', fees_minor: '190', net_minor: '4810', carried_in_minor: '-1914', payout_minor: '2896', carried_out_minor: '0' });
    expect(await balance(jpy.accounts.JPY!)).toBe(0n);
    await expectBalanced(db);
  });

  it('two closes of the same day at once: one closes it, the other finds it closed and writes nothing', async () => {
    const m = await newMerchant(['JPY']);
    await captured(m, 'JPY', 4_000n);
    const day = addDays(tomorrow, 3);
    const now = new Date(endOfDay(day, 'UTC').getTime() + 1);
    const [x, y] = await Promise.all([close1(day, now), close1(day, now)]);
    expect([x.already_closed, y.already_closed].sort()).toEqual([false, true]);
    expect(x.batches).toEqual(y.batches);
    expect(x.batches.find((b) => b.merchant_id === m.id)).toMatchObject({ captured_minor: '4000', fees_minor: '100', payout_minor: '3900' });
    const [payouts] = await db.query<{ n: number }>('select count(*)::int4 as n from transfers where id = $1', [`${settlementBatchIdOf(day, m.id, 'JPY')}.payout`]);
    expect(payouts!.n).toBe(1);
    await expectBalanced(db);
  });
});
