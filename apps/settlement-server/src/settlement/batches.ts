/**
 * Closing a business day (docs/ledger.md, "Settlement"): every capture and refund posted before
 * the day's end and not yet in a batch is settled, one batch per merchant and currency. A batch
 * charges each captured transaction's fee (fees.ts) with one transfer merchant → fee income, and
 * pays out what is left with one transfer merchant → merchant payout; both ids are derived from
 * the batch id, itself derived from the day, merchant and currency, so a re-run can only find
 * `exists`. A day is closed once: the second close returns the batches of the first.
 */
import { createHash } from 'node:crypto';
import { KessaiError, limits, newId, type SettlementBatchView, type Currency } from '@kessai/protocol';
import { appendAuditEntriesIn, type Queryable } from '@kessai/service';
import type { TransferInput } from '../ledger/rules.ts';
import { createTransfers } from '../ledger/store.ts';
import { endOfDay, parseBusinessDay } from './business-day.ts';
import { feeOf, feeScheduleFor } from './fees.ts';
import type { ResolvedSettlementOptions } from './options.ts';

export interface CloseDayResult {
  business_day: string;
  time_zone: string;
  closed_at: string;
  already_closed: boolean;
  batches: SettlementBatchView[];
}

interface PendingLine {
  transfer_id: string;
  kind: 'capture' | 'refund';
  authorization_id: string;
  payment_request_id: string;
  refund_id: string | null;
  merchant_id: string;
  currency: string;
  merchant_account_id: string;
  amount: bigint;
  posted_at: Date;
}

export interface BatchRow {
  id: string;
  business_day: string;
  time_zone: string;
  merchant_id: string;
  currency: Currency;
  merchant_account_id: string;
  basis_points: number;
  fixed_minor: bigint;
  captured: bigint;
  refunded: bigint;
  fees: bigint;
  net: bigint;
  carried_in: bigint;
  payout: bigint;
  carried_out: bigint;
  fee_transfer_id: string | null;
  payout_transfer_id: string | null;
  line_count: number;
  created_at: Date;
}

const alphabet = '0123456789abcdefghjkmnpqrstvwxyz';

/** `stb_` + 26 Crockford base32 characters of SHA-256(day, merchant, currency): the same batch always gets the same id. */
export function settlementBatchIdOf(day: string, merchantId: string, currency: string): string {
  const bytes = createHash('sha256').update(`${day}\n${merchantId}\n${currency}`, 'utf8').digest().subarray(0, 16);
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = ((value << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return `stb_${out}`;
}

export function batchView(row: BatchRow, issuerId: string): SettlementBatchView {
  return {
    id: row.id,
    issuer_id: issuerId,
    business_day: String(row.business_day),
    time_zone: row.time_zone,
    merchant_id: row.merchant_id,
    currency: row.currency,
    fee_schedule: { basis_points: Number(row.basis_points), fixed_minor: BigInt(row.fixed_minor).toString() },
    captured_minor: BigInt(row.captured).toString(),
    refunded_minor: BigInt(row.refunded).toString(),
    fees_minor: BigInt(row.fees).toString(),
    net_minor: BigInt(row.net).toString(),
    carried_in_minor: BigInt(row.carried_in).toString(),
    payout_minor: BigInt(row.payout).toString(),
    carried_out_minor: BigInt(row.carried_out).toString(),
    fee_transfer_id: row.fee_transfer_id,
    payout_transfer_id: row.payout_transfer_id,
    line_count: Number(row.line_count),
    created_at: new Date(row.created_at).toISOString(),
  };
}

const batchColumns = 'b.*, d.time_zone';

/** The batches of one day, or of one merchant (newest first), at most limits.settlementBatchesListMax. */
export async function listBatches(db: Queryable, filter: { day?: string; merchantId?: string }): Promise<BatchRow[]> {
  return db.query<BatchRow>(
    `select ${batchColumns} from settlement_batches b join settlement_days d on d.business_day = b.business_day
     where ($1::date is null or b.business_day = $1::date) and ($2::text is null or b.merchant_id = $2)
     order by b.business_day desc, b.merchant_id, b.currency limit $3`,
    [filter.day ?? null, filter.merchantId ?? null, limits.settlementBatchesListMax],
  );
}

/** A batch in the order batches were closed, with its feed cursor and the payment requests it settles. */
export interface ClosedBatchRow extends BatchRow {
  at_us: string;
  payment_request_ids: string[];
}

/** `<created_at in epoch microseconds>:<batch id>`: a batch's place in the close order (closedBatchesAfter). */
export const batchCursorOf = (row: ClosedBatchRow): string => `${row.at_us}:${row.id}`;

/**
 * Every merchant's batches closed after `cursor` (a batchCursorOf; undefined: from the first),
 * oldest first, at most `limit`. The order is (created_at, id), and closeDay stamps created_at
 * after taking the close lock, so a batch committed later is always ordered after every batch
 * committed before it: a reader that moves its cursor past what it read never skips one.
 */
export async function closedBatchesAfter(
  db: Queryable,
  cursor: string | undefined,
  limit: number,
): Promise<ClosedBatchRow[]> {
  const colon = cursor?.indexOf(':') ?? -1;
  const [atUs, id] = cursor === undefined ? [null, null] : [cursor.slice(0, colon), cursor.slice(colon + 1)];
  return db.query<ClosedBatchRow>(
    `select ${batchColumns}, (extract(epoch from b.created_at) * 1000000)::bigint::text as at_us,
            array(select distinct l.payment_request_id from settlement_lines l where l.batch_id = b.id order by 1)
              as payment_request_ids
       from settlement_batches b join settlement_days d on d.business_day = b.business_day
      where $1::bigint is null
         or (b.created_at, b.id) > (timestamptz 'epoch' + $1::bigint * interval '1 microsecond', $2::text)
      order by b.created_at, b.id limit $3`,
    [atUs, id, limit],
  );
}

export async function findBatch(db: Queryable, id: string): Promise<BatchRow | undefined> {
  const [row] = await db.query<BatchRow>(`select ${batchColumns} from settlement_batches b join settlement_days d on d.business_day = b.business_day where b.id = $1`, [id]);
  return row;
}

/** The fee income or payout account of `currency`, created on first use. */
async function settlementAccount(tx: Queryable, kind: 'fee_income' | 'merchant_payout', currency: string): Promise<string> {
  const [found] = await tx.query<{ account_id: string }>('select account_id from settlement_accounts where kind = $1 and currency = $2', [kind, currency]);
  if (found) return found.account_id;
  const id = newId('acct');
  await tx.query('insert into ledger_accounts (id, kind, currency) values ($1, $2, $3)', [id, kind, currency]);
  await tx.query('insert into settlement_accounts (kind, currency, account_id) values ($1, $2, $3)', [kind, currency, id]);
  return id;
}

/** Captures and refunds posted before `end` that no batch has settled yet, in posting order. */
async function unsettledLines(tx: Queryable, end: Date): Promise<PendingLine[]> {
  const rows = await tx.query<PendingLine>(
    `select t.id as transfer_id, 'capture' as kind, a.id as authorization_id, a.request_id as payment_request_id, null::text as refund_id,
            a.merchant_id, t.currency, t.credit_account_id as merchant_account_id, t.amount, t.created_at as posted_at
       from transfers t join authorizations a on a.hold_transfer_id = t.pending_id
      where t.kind = 'post_pending' and t.amount > 0 and t.created_at < $1
        and not exists (select 1 from settlement_lines l where l.transfer_id = t.id)
     union all
     select t.id, 'refund', a.id, a.request_id, r.id, a.merchant_id, t.currency, t.debit_account_id, t.amount, t.created_at
       from refunds r join transfers t on t.id = r.transfer_id join authorizations a on a.id = r.authorization_id
      where t.created_at < $1 and not exists (select 1 from settlement_lines l where l.transfer_id = t.id)
     order by posted_at, transfer_id`,
    [end],
  );
  return rows.map((row) => ({ ...row, amount: BigInt(row.amount), posted_at: new Date(row.posted_at) }));
}

/** Lines grouped per merchant and currency: one batch each. */
function byMerchantAndCurrency(lines: readonly PendingLine[]): PendingLine[][] {
  const groups = new Map<string, PendingLine[]>();
  for (const line of lines) {
    const key = `${line.merchant_id}\n${line.currency}`;
    const group = groups.get(key) ?? [];
    group.push(line);
    groups.set(key, group);
  }
  return [...groups.values()];
}

/**
 * Closes `day` inside the caller's transaction (a job of the ledger's group commit). Refuses a
 * day that has not ended by `now` with settlement_day_not_over.
 */
export async function closeDay(tx: Queryable, options: ResolvedSettlementOptions, issuerId: string, day: string, now: Date): Promise<CloseDayResult> {
  parseBusinessDay(day);
  const { timeZone } = options;
  const end = endOfDay(day, timeZone);
  if (now.getTime() < end.getTime()) throw new KessaiError('settlement_day_not_over', `business day ${day} (${timeZone}) ends at ${end.toISOString()}`);
  // One close at a time, across every process on this database: carried amounts are read and written in order.
  await tx.query('lock table settlement_days in share row exclusive mode');
  const [fresh] = await tx.query<{ closed_at: Date }>('insert into settlement_days (business_day, time_zone, closed_at) values ($1, $2, $3) on conflict (business_day) do nothing returning closed_at', [day, timeZone, now]);
  if (!fresh) {
    const [closed] = await tx.query<{ closed_at: Date; time_zone: string }>('select closed_at, time_zone from settlement_days where business_day = $1', [day]);
    const rows = await tx.query<BatchRow>(`select ${batchColumns} from settlement_batches b join settlement_days d on d.business_day = b.business_day where b.business_day = $1 order by b.merchant_id, b.currency`, [day]);
    return { business_day: day, time_zone: closed!.time_zone, closed_at: new Date(closed!.closed_at).toISOString(), already_closed: true, batches: rows.map((row) => batchView(row, issuerId)) };
  }

  const created: BatchRow[] = [];
  for (const lines of byMerchantAndCurrency(await unsettledLines(tx, end))) {
    const { merchant_id: merchantId, currency, merchant_account_id: merchantAccountId } = lines[0]!;
    if (lines.some((line) => line.merchant_account_id !== merchantAccountId)) throw new Error(`merchant ${merchantId} has two ${currency} accounts`);
    const schedule = await feeScheduleFor(tx, merchantId, currency, options.defaultFees, options.defaultFee);
    const priced = lines.map((line) => {
      const fee = line.kind === 'capture' ? feeOf(line.amount, schedule) : 0n;
      return { ...line, fee, net: line.kind === 'capture' ? line.amount - fee : -line.amount };
    });
    const sum = (values: bigint[]) => values.reduce((a, b) => a + b, 0n);
    const captured = sum(priced.filter((l) => l.kind === 'capture').map((l) => l.amount));
    const refunded = sum(priced.filter((l) => l.kind === 'refund').map((l) => l.amount));
    const fees = sum(priced.map((l) => l.fee));
    const net = captured - refunded - fees;
    const [previous] = await tx.query<{ carried_out: bigint }>('select carried_out from settlement_batches where merchant_id = $1 and currency = $2 order by created_at desc, business_day desc limit 1', [merchantId, currency]);
    const carriedIn = previous ? BigInt(previous.carried_out) : 0n;
    const due = net + carriedIn;
    const payout = due > 0n ? due : 0n;
    const carriedOut = due < 0n ? due : 0n;

    const id = settlementBatchIdOf(day, merchantId, currency);
    const transfers: TransferInput[] = [];
    if (fees > 0n) transfers.push({ id: `${id}.fee`, kind: 'single' as const, debitAccountId: merchantAccountId, creditAccountId: await settlementAccount(tx, 'fee_income', currency), amount: fees, currency });
    if (payout > 0n) transfers.push({ id: `${id}.payout`, kind: 'single' as const, debitAccountId: merchantAccountId, creditAccountId: await settlementAccount(tx, 'merchant_payout', currency), amount: payout, currency });
    const results = await createTransfers(tx, transfers, now);
    results.forEach((result, i) => {
      if (result !== 'ok' && result !== 'exists') throw new Error(`ledger refused settlement transfer ${transfers[i]!.id}: ${result}`);
    });
    const [row] = await tx.query<BatchRow>(
      // created_at after the close lock (not the transaction's start): the close order closedBatchesAfter reads.
      `insert into settlement_batches (id, business_day, merchant_id, currency, merchant_account_id, basis_points, fixed_minor, captured, refunded, fees, net,
                                       carried_in, payout, carried_out, fee_transfer_id, payout_transfer_id, line_count,
                                       created_at)
       values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, clock_timestamp()) returning *, $18::text as time_zone`,
      [id, day, merchantId, currency, merchantAccountId, schedule.basisPoints, schedule.fixedMinor, captured, refunded, fees, net, carriedIn, payout, carriedOut,
        fees > 0n ? `${id}.fee` : null, payout > 0n ? `${id}.payout` : null, priced.length, timeZone],
    );
    await tx.query(
      `insert into settlement_lines (transfer_id, batch_id, kind, authorization_id, payment_request_id, refund_id, amount, fee, net, posted_at)
       select transfer_id, $1, kind, authorization_id, payment_request_id, refund_id, amount, fee, net, posted_at
       from unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[], $8::int8[], $9::int8[], $10::timestamptz[])
         as x (transfer_id, kind, authorization_id, payment_request_id, refund_id, amount, fee, net, posted_at)`,
      [id, priced.map((l) => l.transfer_id), priced.map((l) => l.kind), priced.map((l) => l.authorization_id), priced.map((l) => l.payment_request_id), priced.map((l) => l.refund_id),
        priced.map((l) => l.amount.toString()), priced.map((l) => l.fee.toString()), priced.map((l) => l.net.toString()), priced.map((l) => l.posted_at.toISOString())],
    );
    created.push(row!);
  }
  created.sort((a, b) => (a.merchant_id === b.merchant_id ? a.currency.localeCompare(b.currency) : a.merchant_id.localeCompare(b.merchant_id)));
  // In this transaction: the day is closed in the audit chain exactly when it is closed in the ledger.
  await appendAuditEntriesIn(tx, [{ actor: 'system', action: 'settlement.day_closed', resource: created.length > 0 ? created.map((row) => row.id).join(' ') : null, outcome: `closed ${day} ${created.length} batches` }]);
  return { business_day: day, time_zone: timeZone, closed_at: now.toISOString(), already_closed: false, batches: created.map((row) => batchView(row, issuerId)) };
}
