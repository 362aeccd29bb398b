/**
 * `kessai settle close [--date YYYY-MM-DD] [--issuer <id>|all]` and `kessai settle list`: the
 * operator closes a business day (without a date: the previous one) or lists settlement batches at
 * running settlement servers (`/admin/v1/settlement-batches…`). Closing a day twice changes
 * nothing: the second answer says so and shows the same batches.
 */
import type { Command } from 'commander';
import { businessDay, closeDayResponse, KessaiError, settlementBatchList, type CloseDayResponse, type SettlementBatchView } from '@kessai/protocol';
import { demoIssuers } from './demo-data.ts';
import { defaultRoleUrl, operatorCall } from './operator.ts';

interface SettleOptions {
  date?: string;
  issuer: string;
  dataDir: string;
  url?: string;
  json: boolean;
}

/** The issuers a command addresses, each with its URL. */
function targets(options: SettleOptions): Array<{ issuer: string; url: string }> {
  const ids = options.issuer === 'all' ? demoIssuers.map((i) => i.id) : [options.issuer];
  if (options.url !== undefined && ids.length !== 1) throw new KessaiError('validation_failed', '--url needs one --issuer, not all');
  if (options.date !== undefined && !businessDay.safeParse(options.date).success) throw new KessaiError('validation_failed', '--date must be YYYY-MM-DD');
  return ids.map((issuer) => ({ issuer, url: options.url ?? defaultRoleUrl(`settlement-${issuer}`) }));
}

function batchLine(batch: SettlementBatchView): string {
  return `  ${batch.id}  ${batch.business_day}  ${batch.merchant_id}  ${batch.currency}  captured ${batch.captured_minor}  refunded ${batch.refunded_minor}  fees ${batch.fees_minor}  payout ${batch.payout_minor}  carried ${batch.carried_out_minor}  (${batch.line_count} lines)`;
}

function withOptions(command: Command, dataDirDefault: string): Command {
  return command
    .option('--issuer <id>', 'the issuer (settlement server), e.g. sakura-bank, or all', 'all')
    .option('--data-dir <dir>', 'the data folder of the running system (CA and operator token)', dataDirDefault)
    .option('--url <url>', 'the settlement server (default: the issuer’s port under kessai start; needs one --issuer)')
    .option('--json', 'print the servers’ answers as JSON', false);
}

async function run(command: Command, work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (err) {
    if (err instanceof KessaiError) command.error(`kessai settle: ${err.message} (${err.code})`, { exitCode: 1, code: `kessai.${err.code}` });
    // The CA or the operator token is missing: not the data folder of a started system.
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT' ? (err as NodeJS.ErrnoException).path : undefined;
    if (missing) command.error(`kessai settle: cannot read ${missing}; pass the --data-dir that kessai start uses`, { exitCode: 1, code: 'kessai.data_dir' });
    throw err;
  }
}

export function registerSettleCommands(program: Command, dataDirDefault: string): Command {
  const settle = program.command('settle').description('operator: settlement batches (fees and payouts per merchant and business day)');
  withOptions(settle.command('close').description('close a business day at each settlement server (default: the previous day)'), dataDirDefault)
    .option('--date <YYYY-MM-DD>', 'the business day to close')
    .action((options: SettleOptions, command: Command) =>
      run(command, async () => {
        const answers: Array<{ issuer: string } & CloseDayResponse> = [];
        for (const { issuer, url } of targets(options)) {
          const result = await operatorCall({ dataDir: options.dataDir, role: `settlement-${issuer}`, url }, 'POST', '/admin/v1/settlement-batches/close', closeDayResponse, options.date === undefined ? {} : { date: options.date });
          answers.push({ issuer, ...result });
        }
        if (options.json) return void process.stdout.write(`${JSON.stringify(answers, null, 2)}\n`);
        for (const answer of answers) {
          process.stdout.write(`${answer.issuer}: business day ${answer.business_day} (${answer.time_zone}) ${answer.already_closed ? 'was already closed' : 'closed'}, ${answer.batches.length} batch(es)\n`);
          for (const batch of answer.batches) process.stdout.write(`${batchLine(batch)}\n`);
        }
      }),
    );
  withOptions(settle.command('list').description('list settlement batches (newest first)'), dataDirDefault)
    .option('--date <YYYY-MM-DD>', 'only this business day')
    .action((options: SettleOptions, command: Command) =>
      run(command, async () => {
        const answers: Array<{ issuer: string; batches: SettlementBatchView[] }> = [];
        for (const { issuer, url } of targets(options)) {
          const query = options.date === undefined ? '' : `?date=${options.date}`;
          const list = await operatorCall({ dataDir: options.dataDir, role: `settlement-${issuer}`, url }, 'GET', `/admin/v1/settlement-batches${query}`, settlementBatchList);
          answers.push({ issuer, batches: list.batches });
        }
        if (options.json) return void process.stdout.write(`${JSON.stringify(answers, null, 2)}\n`);
        for (const answer of answers) {
          process.stdout.write(`${answer.issuer}: ${answer.batches.length} batch(es)\n`);
          for (const batch of answer.batches) process.stdout.write(`${batchLine(batch)}\n`);
        }
      }),
    );
  return settle;
}
