/**
 * The settlement report of one batch (docs/ledger.md, "Settlement report"): every capture and
 * refund it settled with its fee and net, and the totals, as JSON and as CSV. Both are built from
 * the stored lines, so they add up to the batch's fee and payout transfers.
 */
import { KessaiError, type SettlementReport } from '@kessai/protocol';
import type { Queryable } from '@kessai/service';
import { batchView, findBatch } from './batches.ts';

interface LineRow {
  transfer_id: string;
  kind: 'capture' | 'refund';
  authorization_id: string;
  payment_request_id: string;
  refund_id: string | null;
  amount: bigint;
  fee: bigint;
  net: bigint;
  posted_at: Date;
}

/** The report of batch `id`; settlement_batch_not_found if there is none (or it is another merchant's, when `merchantId` is given). */
export async function loadReport(db: Queryable, issuerId: string, id: string, merchantId?: string): Promise<SettlementReport> {
  const row = await findBatch(db, id);
  if (!row || (merchantId !== undefined && row.merchant_id !== merchantId)) throw new KessaiError('settlement_batch_not_found');
  const lines = await db.query<LineRow>('select * from settlement_lines where batch_id = $1 order by posted_at, transfer_id', [id]);
  const batch = batchView(row, issuerId);
  let captured = 0n;
  let refunded = 0n;
  let fees = 0n;
  let net = 0n;
  const views = lines.map((line) => {
    const amount = BigInt(line.amount);
    if (line.kind === 'capture') captured += amount;
    else refunded += amount;
    fees += BigInt(line.fee);
    net += BigInt(line.net);
    return {
      transfer_id: line.transfer_id,
      kind: line.kind,
      authorization_id: line.authorization_id,
      payment_request_id: line.payment_request_id,
      refund_id: line.refund_id,
      currency: batch.currency,
      amount_minor: amount.toString(),
      fee_minor: BigInt(line.fee).toString(),
      net_minor: BigInt(line.net).toString(),
      posted_at: new Date(line.posted_at).toISOString(),
    };
  });
  return {
    batch,
    lines: views,
    totals: {
      captured_minor: captured.toString(),
      refunded_minor: refunded.toString(),
      fees_minor: fees.toString(),
      net_minor: net.toString(),
      carried_in_minor: batch.carried_in_minor,
      payout_minor: batch.payout_minor,
      carried_out_minor: batch.carried_out_minor,
    },
  };
}

export const reportCsvHeader = ['kind', 'authorization_id', 'payment_request_id', 'refund_id', 'transfer_id', 'posted_at', 'currency', 'amount_minor', 'fee_minor', 'net_minor'] as const;

/**
 * The report as CSV (RFC 4180, CRLF line ends, a header row): one row per capture or refund, then
 * the summary rows `total` (amount = captured − refunded, fee = fees, net = net), `carried_in`,
 * `payout` and `carried_out` (net column only). Every value is an id, a timestamp, a currency
 * code or an integer, so none needs quoting.
 */
export function reportCsv(report: SettlementReport): string {
  const { batch, lines, totals } = report;
  const rows: string[][] = [[...reportCsvHeader]];
  for (const line of lines) {
    rows.push([line.kind, line.authorization_id, line.payment_request_id, line.refund_id ?? '', line.transfer_id, line.posted_at, line.currency, line.amount_minor, line.fee_minor, line.net_minor]);
  }
  const summary = (kind: string, amount: string, fee: string, net: string, transfer = '') => [kind, '', '', '', transfer, batch.created_at, batch.currency, amount, fee, net];
  rows.push(summary('total', (BigInt(totals.captured_minor) - BigInt(totals.refunded_minor)).toString(), totals.fees_minor, totals.net_minor, batch.fee_transfer_id ?? ''));
  rows.push(summary('carried_in', '', '', totals.carried_in_minor));
  rows.push(summary('payout', '', '', totals.payout_minor, batch.payout_transfer_id ?? ''));
  rows.push(summary('carried_out', '', '', totals.carried_out_minor));
  return rows.map((row) => row.join(',')).join('\r\n') + '\r\n';
}
