/**
 * Settlement on the settlement server: the operator's endpoints (`/admin/v1/settlement-batches…`,
 * `/admin/v1/fee-schedules`; operator token), the authentication server's (`/internal/v1/merchants/
 * :merchant_id/settlement-batches…`; mutual TLS), and the closing schedule.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  amountString,
  businessDay,
  closedBatchFeed,
  closedBatchesQuery,
  closeDayRequest,
  closeDayResponse,
  currencyCode,
  feeScheduleRequest,
  merchantId,
  parseAmount,
  settlementBatchId,
  settlementBatchList,
  settlementReport,
} from '@kessai/protocol';
import { requireOperator, textAnswer } from '@kessai/service';
import type { SettlementConfig } from '../config.ts';
import type { GroupCommit } from '../ledger/group-commit.ts';
import { addDays, businessDayOf } from './business-day.ts';
import { batchCursorOf, batchView, closeDay, closedBatchesAfter, listBatches } from './batches.ts';
import { feeScheduleFor, setFeeSchedule } from './fees.ts';
import { resolveSettlementOptions } from './options.ts';
import { loadReport, reportCsv } from './report.ts';
import { startSettlementWorker } from './worker.ts';

const feeScheduleView = z.strictObject({ merchant_id: merchantId, currency: currencyCode, basis_points: z.number().int(), fixed_minor: amountString });
const reportQuery = z.strictObject({ format: z.enum(['json', 'csv']).default('json') });
/** A report is JSON, or CSV with `format=csv`. */
const reportAnswer = {
  description: 'The report: JSON, or CSV with `format=csv`.',
  content: { 'application/json': { schema: settlementReport }, ...textAnswer('text/csv', '').content },
};

/** A batch's report as JSON or CSV; `merchantId` limits it to that merchant's batches (the merchant API's view). */
async function sendReport(config: SettlementConfig, reply: FastifyReply, batchId: string, format: 'json' | 'csv', merchantId?: string) {
  const report = settlementReport.parse(await loadReport(config.db, config.issuerId, batchId, merchantId));
  if (format === 'csv') return reply.type('text/csv; charset=utf-8').send(reportCsv(report));
  return report;
}

export async function registerSettlement(app: FastifyInstance, config: SettlementConfig, ledger: GroupCommit): Promise<void> {
  const options = resolveSettlementOptions(config.settlement);
  if (options.workerIntervalMs > 0) {
    const worker = startSettlementWorker(ledger, options, config.issuerId, config.logger);
    app.addHook('onClose', () => worker.stop());
  }

  await app.register(async (plugin) => {
    const internal = plugin.withTypeProvider<ZodTypeProvider>();
    const merchantParams = z.strictObject({ merchant_id: merchantId });
    internal.get('/internal/v1/merchants/:merchant_id/settlement-batches', { schema: { summary: "A merchant's settlement batches (for the broker)", operationId: 'listMerchantSettlementBatches', params: merchantParams, response: { 200: settlementBatchList } } }, async (request) => ({
      batches: (await listBatches(config.db, { merchantId: request.params.merchant_id })).map((row) => batchView(row, config.issuerId)),
    }));
    // The authentication server learns of closed batches here (settlement events); the bank never calls it.
    const feedSchema = {
      summary: 'List the settlement batches closed after a cursor, every merchant (settlement events)',
      operationId: 'listClosedSettlementBatches',
      querystring: closedBatchesQuery,
      response: { 200: closedBatchFeed },
    };
    internal.get('/internal/v1/settlement-batches', { schema: feedSchema }, async (request) => {
      const { after, limit } = request.query;
      const rows = await closedBatchesAfter(config.db, after, limit + 1);
      const items = rows.slice(0, limit).map((row) => ({
        cursor: batchCursorOf(row),
        batch: batchView(row, config.issuerId),
        payment_request_ids: row.payment_request_ids,
      }));
      return { items, has_more: rows.length > limit };
    });
    internal.get(
      '/internal/v1/merchants/:merchant_id/settlement-batches/:batch_id/report',
      { schema: { summary: "A merchant's settlement report (for the broker)", operationId: 'getMerchantSettlementReport', params: z.strictObject({ merchant_id: merchantId, batch_id: settlementBatchId }), querystring: reportQuery, response: { 200: reportAnswer } } },
      async (request, reply) => sendReport(config, reply, request.params.batch_id, request.query.format, request.params.merchant_id),
    );
  });

  if (!config.operatorToken) return;
  await app.register(async (plugin) => {
    const admin = plugin.withTypeProvider<ZodTypeProvider>();
    admin.addHook('onRequest', requireOperator(config.operatorToken ?? ''));
    // Without a date: the previous business day.
    admin.post('/admin/v1/settlement-batches/close', { schema: { summary: 'Close a business day: its settlement batches', operationId: 'closeBusinessDay', body: closeDayRequest.nullish(), response: { 200: closeDayResponse } } }, async (request) => {
      const now = options.clock();
      const day = request.body?.date ?? addDays(businessDayOf(now, options.timeZone), -1);
      const result = await ledger.run((tx) => closeDay(tx, options, config.issuerId, day, now));
      config.logger.info({ day, batches: result.batches.length, already: result.already_closed }, 'step 409: business day closed by the operator');
      return result;
    });
    admin.get('/admin/v1/settlement-batches', { schema: { summary: 'List settlement batches', operationId: 'listSettlementBatches', querystring: z.strictObject({ date: businessDay.optional(), merchant_id: merchantId.optional() }), response: { 200: settlementBatchList } } }, async (request) => ({
      batches: (await listBatches(config.db, { ...(request.query.date ? { day: request.query.date } : {}), ...(request.query.merchant_id ? { merchantId: request.query.merchant_id } : {}) })).map((row) => batchView(row, config.issuerId)),
    }));
    // The operator reads every merchant's reports (the settlement console's View and CSV buttons).
    admin.get('/admin/v1/settlement-batches/:batch_id/report', { schema: { summary: "A settlement batch's report", operationId: 'getSettlementReport', params: z.strictObject({ batch_id: settlementBatchId }), querystring: reportQuery, response: { 200: reportAnswer } } }, async (request, reply) =>
      sendReport(config, reply, request.params.batch_id, request.query.format),
    );
    admin.post('/admin/v1/fee-schedules', { schema: { summary: "Set a merchant's fee schedule", operationId: 'setFeeSchedule', body: feeScheduleRequest, response: { 200: feeScheduleView } } }, async (request) => {
      const { merchant_id: merchant, currency, basis_points: basisPoints, fixed_minor: fixed } = request.body;
      await setFeeSchedule(config.db, merchant, currency, { basisPoints, fixedMinor: parseAmount(fixed) });
      const schedule = await feeScheduleFor(config.db, merchant, currency, undefined);
      return { merchant_id: merchant, currency, basis_points: schedule.basisPoints, fixed_minor: schedule.fixedMinor.toString() };
    });
  });
}
