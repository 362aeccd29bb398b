/**
 * The operator's account import (`POST /admin/v1/accounts/import`, `kessai accounts import`): at
 * most accountsImportRowsMax rows per call, each answered by its row number (accounts-import.ts).
 * The log and the audit log get counts only: no row of the file, not even a last-four.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { accountsImportRequest, accountsImportResponse, KessaiError, limits } from '@kessai/protocol';
import { auditActorOf, recordDomainEvent, requireOperator } from '@kessai/service';
import { importAccounts } from './accounts-import.ts';
import type { SettlementConfig } from './config.ts';

export async function adminAccountRoutes(plugin: FastifyInstance, config: SettlementConfig): Promise<void> {
  const operatorToken = config.operatorToken;
  if (!operatorToken) return;
  const app = plugin.withTypeProvider<ZodTypeProvider>();
  app.addHook('onRequest', requireOperator(operatorToken));
  app.post('/admin/v1/accounts/import', { bodyLimit: limits.bodyBytesMax, schema: { summary: 'Import accounts and cards', operationId: 'importAccounts', body: accountsImportRequest, response: { 200: accountsImportResponse } } }, async (request) => {
    const { rows, first_row: firstRow = 1 } = request.body;
    if (rows.length > limits.accountsImportRowsMax) throw new KessaiError('import_batch_too_large', `${rows.length} rows; at most ${limits.accountsImportRowsMax} per call`);
    const imported = await importAccounts(config.db, config.cardKeys, rows, firstRow, new Date());
    const operator = auditActorOf(request) ?? 'operator';
    const outcome = `rows ${firstRow}-${firstRow + rows.length - 1}: ${imported.created} created, ${imported.unchanged} unchanged, ${imported.conflicts} conflicts, ${imported.rejected} rejected`;
    request.log.info({ operator, firstRow, rows: rows.length, created: imported.created, unchanged: imported.unchanged, conflicts: imported.conflicts, rejected: imported.rejected }, 'accounts imported');
    void recordDomainEvent(config.db, { actor: operator, action: 'accounts.imported', resource: null, outcome });
    return imported;
  });
}
