/**
 * A merchant's settlement batches and reports, relayed from the settlement servers (over mutual
 * TLS): the list asks every configured issuer and merges the answers; a report is asked of each
 * issuer until one has the batch. An issuer answers only the batches of the merchant named in
 * the path, so one merchant never sees another's.
 */
import { KessaiError, settlementBatchList, settlementReport, type SettlementBatchView, type SettlementReport } from '@kessai/protocol';
import type { MerchantCaller } from './callers.ts';
import type { AuthContext } from './context.ts';

const base = (baseUrl: string, merchant: MerchantCaller) => `${baseUrl}/internal/v1/merchants/${encodeURIComponent(merchant.id)}/settlement-batches`;

/**
 * One page of every issuer's batches of this merchant, newest first (created_at desc, id desc), the
 * items older than `startingAfter` (starting_after_not_found when it names none of them). Each
 * issuer answers at most settlementBatchesListMax; the pages are cut from their merge.
 */
export async function listMerchantBatches(context: AuthContext, merchant: MerchantCaller, page: { limit: number; startingAfter?: string | undefined }): Promise<{ items: SettlementBatchView[]; hasMore: boolean }> {
  const answers = await Promise.all(
    context.config.issuers.map((issuer) => context.http.call('GET', base(issuer.baseUrl, merchant), { schema: settlementBatchList, unavailable: 'issuer_unavailable' })),
  );
  const batches = answers.flatMap((answer) => answer.batches);
  const key = (batch: SettlementBatchView) => `${new Date(batch.created_at).toISOString()} ${batch.id}`;
  batches.sort((a, b) => key(b).localeCompare(key(a)));
  let from = 0;
  if (page.startingAfter !== undefined) {
    from = batches.findIndex((batch) => batch.id === page.startingAfter) + 1;
    if (from === 0) throw new KessaiError('starting_after_not_found');
  }
  return { items: batches.slice(from, from + page.limit), hasMore: batches.length > from + page.limit };
}

/** Asks each issuer in turn; the first that has the batch answers. */
async function firstIssuerWith<T>(context: AuthContext, ask: (baseUrl: string) => Promise<T>): Promise<T> {
  let unavailable: unknown;
  for (const issuer of context.config.issuers) {
    try {
      return await ask(issuer.baseUrl);
    } catch (err) {
      if (err instanceof KessaiError && err.code === 'settlement_batch_not_found') continue;
      unavailable ??= err;
    }
  }
  throw unavailable ?? new KessaiError('settlement_batch_not_found');
}

export function merchantReport(context: AuthContext, merchant: MerchantCaller, batchId: string): Promise<SettlementReport> {
  return firstIssuerWith(context, (baseUrl) => context.http.call('GET', `${base(baseUrl, merchant)}/${batchId}/report?format=json`, { schema: settlementReport, unavailable: 'issuer_unavailable' }));
}

/** The CSV as the issuer rendered it, passed through unchanged. */
export function merchantReportCsv(context: AuthContext, merchant: MerchantCaller, batchId: string): Promise<string> {
  return firstIssuerWith(context, async (baseUrl) => {
    const answer = await context.http.text(`${base(baseUrl, merchant)}/${batchId}/report?format=csv`, { unavailable: 'issuer_unavailable' });
    if (!answer.contentType.startsWith('text/csv')) throw new KessaiError('issuer_unavailable', 'the report is not CSV');
    return answer.text;
  });
}
