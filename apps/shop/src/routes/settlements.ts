/**
 * The shop's back office for settlement (docs/ledger.md): its settlement batches and each batch's
 * report, fetched through the merchant SDK from the authentication server; the CSV is passed
 * through unchanged. These are the merchant's books, not the storefront's: they answer only with
 * the operator token (`Authorization: Bearer …`), and are not served without one.
 */
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { settlementBatchId, settlementBatchList, settlementReport } from '@kessai/protocol';
import { requireOperator, textAnswer, type KessaiApp } from '@kessai/service';
import type { ShopContext } from '../app.ts';

const docs = {
  list: { summary: "The shop's settlement batches", operationId: 'listSettlements' },
  report: { summary: "A settlement batch's report", operationId: 'getSettlementReport' },
  csv: { summary: "A settlement batch's report as CSV", operationId: 'getSettlementReportCsv' },
};
const csv = { 200: textAnswer('text/csv', 'The report as CSV (an attachment).') };

export async function registerSettlementRoutes(app: KessaiApp, { config, merchant }: ShopContext): Promise<void> {
  if (!config.operatorToken) return;
  const operatorToken = config.operatorToken;
  await app.register(async (plugin) => {
    const routes = plugin.withTypeProvider<ZodTypeProvider>();
    routes.addHook('onRequest', requireOperator(operatorToken));
    const byId = z.strictObject({ id: settlementBatchId });
    routes.get('/api/settlements', { schema: { ...docs.list, response: { 200: settlementBatchList } } }, async () => ({
      batches: (await merchant.listSettlementBatches().page()).items,
    }));
    routes.get(
      '/api/settlements/:id/report.json',
      { schema: { ...docs.report, params: byId, response: { 200: settlementReport } } },
      async (request) => merchant.settlementReport(request.params.id),
    );
    routes.get(
      '/api/settlements/:id/report.csv',
      { schema: { ...docs.csv, params: byId, response: csv } },
      async (request, reply) =>
        reply
          .type('text/csv; charset=utf-8')
          .header('content-disposition', `attachment; filename="${request.params.id}.csv"`)
          .send(await merchant.settlementReportCsv(request.params.id)),
    );
  });
}
