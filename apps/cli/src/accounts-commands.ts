/**
 * `kessai accounts import FILE --issuer <id>`: the bank's operator loads accounts and cards into
 * its settlement server (`POST /admin/v1/accounts/import`, the bank's own operator token), in
 * batches of accountsImportRowsMax rows, and prints each row's result by its row number — never a
 * card number, PIN or name: at most the last four digits. Exits 1 when a row was rejected or in
 * conflict; importing the same file again is harmless (those rows answer `unchanged`).
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { accountsImportResponse, KessaiError, limits, type AccountImportResult } from '@kessai/protocol';
import { parseAccountFile } from './accounts-file.ts';
import { defaultRoleUrl, operatorCall } from './operator.ts';

interface ImportOptions {
  issuer: string;
  dataDir: string;
  url?: string;
}

function describe(result: AccountImportResult): string {
  const card = result.card_last4 ? ` card ••••${result.card_last4}` : '';
  const fields = result.fields?.length ? `: ${result.fields.join(', ')}` : '';
  const account = result.account_id ? ` ${result.account_id}` : '';
  return `row ${result.row}: ${result.result}${card}${account}${result.code ? ` (${result.code}${fields})` : ''}\n`;
}

export function registerAccountsCommands(program: Command, dataDirDefault: string): Command {
  const accounts = program.command('accounts').description('operator: the accounts and cards of an issuer');
  accounts
    .command('import')
    .description('import accounts and cards from a CSV (header row) or JSON file into an issuer’s settlement server')
    .argument('<file>', 'CSV with columns card_number, holder_name, expiry, pin, balance, currency, kind[, credit_line, status, test (true: a test card; default live), note], or a JSON array of such objects')
    .requiredOption('--issuer <id>', 'the issuer (settlement server), e.g. sakura-bank')
    .option('--data-dir <dir>', 'the data folder of the running system (CA and operator tokens)', dataDirDefault)
    .option('--url <url>', 'the settlement server (default: the issuer’s port under kessai start)')
    .action(async (file: string, options: ImportOptions, command: Command) => {
      try {
        if (!/^[a-z0-9][a-z0-9-]{0,63}$/.test(options.issuer)) throw new KessaiError('validation_failed', '--issuer is an issuer id');
        const role = `settlement-${options.issuer}` as const;
        const target = { dataDir: options.dataDir, role, url: options.url ?? defaultRoleUrl(role) };
        const rows = parseAccountFile(await readFile(file, 'utf8'));
        const totals = { created: 0, unchanged: 0, conflicts: 0, rejected: 0 };
        for (let start = 0; start < rows.length; start += limits.accountsImportRowsMax) {
          const answer = await operatorCall(target, 'POST', '/admin/v1/accounts/import', accountsImportResponse, { first_row: start + 1, rows: rows.slice(start, start + limits.accountsImportRowsMax) });
          for (const result of answer.results) process.stdout.write(describe(result));
          totals.created += answer.created;
          totals.unchanged += answer.unchanged;
          totals.conflicts += answer.conflicts;
          totals.rejected += answer.rejected;
        }
        process.stdout.write(`imported into ${options.issuer}: ${rows.length} rows, ${totals.created} created, ${totals.unchanged} unchanged, ${totals.conflicts} conflicts, ${totals.rejected} rejected\n`);
        if (totals.conflicts + totals.rejected > 0) command.error(`kessai accounts import: ${totals.conflicts + totals.rejected} row(s) not imported (see above)`, { exitCode: 1, code: 'kessai.rows_not_imported' });
      } catch (err) {
        if (err instanceof KessaiError) command.error(`kessai accounts import: ${err.message} (${err.code})`, { exitCode: 1, code: `kessai.${err.code}` });
        throw err;
      }
    });
  return accounts;
}
