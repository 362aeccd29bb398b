/**
 * The merchant API's settlement reports (docs/ledger.md): `GET /v1/settlement-batches` lists the
 * merchant's batches at every issuer; `GET /v1/settlement-batches/:id/report.json` and
 * `report.csv` download one batch's report. Only the calling merchant's batches are found.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { limits, settlementBatchId, settlementBatchPage, settlementReport } from '@kessai/protocol';
import { textAnswer } from '@kessai/service';
import { authenticateMerchant } from '../callers.ts';
import type { AuthContext } from '../context.ts';
import { listMerchantBatches, merchantReport, merchantReportCsv } from '../settlements.ts';

export async function settlementRoutes(plugin: FastifyInstance, context: AuthContext): Promise<void> {
  const app = plugin.withTypeProvider<ZodTypeProvider>();
  const { config } = context;
  const byId = z.strictObject({ id: settlementBatchId });

  const listQuery = z.strictObject({
    limit: z.coerce.number().int().min(1).max(limits.settlementBatchesListMax).default(limits.settlementBatchesListMax),
    starting_after: settlementBatchId.optional(),
  });
  app.get('/v1/settlement-batches', { schema: { summary: 'List your settlement batches at every issuer', operationId: 'listSettlementBatches', querystring: listQuery, response: { 200: settlementBatchPage } } }, async (request) => {
    const merchant = await authenticateMerchant(config.db, request);
    const { limit, starting_after } = request.query;
    const { items, hasMore } = await listMerchantBatches(context, merchant, { limit, startingAfter: starting_after });
    return { items, limit, has_more: hasMore };
  });

  app.get('/v1/settlement-batches/:id/report.json', { schema: { summary: "A settlement batch's report", operationId: 'getSettlementReport', params: byId, response: { 200: settlementReport } } }, async (request) =>
    merchantReport(context, await authenticateMerchant(config.db, request), request.params.id),
  );

  const csvSchema = {
    summary: "A settlement batch's report as CSV",
    operationId: 'getSettlementReportCsv',
    params: byId,
    response: { 200: textAnswer('text/csv', 'The report as CSV (an attachment).') },
  };
  app.get('/v1/settlement-batches/:id/report.csv', { schema: csvSchema }, async (request, reply) => {
    const csv = await merchantReportCsv(context, await authenticateMerchant(config.db, request), request.params.id);
    return reply.type('text/csv; charset=utf-8').header('content-disposition', `attachment; filename="${request.params.id}.csv"`).send(csv);
  });
}
