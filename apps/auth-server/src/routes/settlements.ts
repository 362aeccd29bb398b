/**
 * The merchant API's settlement reports (docs/ledger.md): `GET /v1/settlement-batches` lists the
 * merchant's batches at every issuer; `GET /v1/settlement-batches/:id/report.json` and
 * `report.csv` download one batch's report. Only the calling merchant's batches are found.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { settlementBatchId, settlementBatchList, settlementReport } from '@kessai/protocol';
import { authenticateMerchant } from '../callers.ts';
import type { AuthContext } from '../context.ts';
import { listMerchantBatches, merchantReport, merchantReportCsv } from '../settlements.ts';

export async function settlementRoutes(plugin: FastifyInstance, context: AuthContext): Promise<void> {
  const app = plugin.withTypeProvider<ZodTypeProvider>();
  const { config } = context;
  const byId = z.strictObject({ id: settlementBatchId });

  app.get('/v1/settlement-batches', { schema: { response: { 200: settlementBatchList } } }, async (request) => ({
    batches: await listMerchantBatches(context, await authenticateMerchant(config.db, request)),
  }));

  app.get('/v1/settlement-batches/:id/report.json', { schema: { params: byId, response: { 200: settlementReport } } }, async (request) =>
    merchantReport(context, await authenticateMerchant(config.db, request), request.params.id),
  );

  app.get('/v1/settlement-batches/:id/report.csv', { schema: { params: byId } }, async (request, reply) => {
    const csv = await merchantReportCsv(context, await authenticateMerchant(config.db, request), request.params.id);
    return reply.type('text/csv; charset=utf-8').header('content-disposition', `attachment; filename="${request.params.id}.csv"`).send(csv);
  });
}
