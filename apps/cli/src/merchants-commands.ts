/**
 * `kessai merchants onboard|list --issuer <id>`: the issuer's operator onboards a merchant at its
 * settlement server (`POST /admin/v1/merchants`) under the name payers are shown; the issuer pays
 * no merchant it has not onboarded (DESIGN.md §1). Uses the issuer's own operator token.
 */
import type { Command } from 'commander';
import { idPattern, issuerMerchantList, issuerMerchantView, KessaiError } from '@kessai/protocol';
import { defaultRoleUrl, operatorCall } from './operator.ts';

interface MerchantOptions {
  issuer: string;
  dataDir: string;
  url?: string;
}

function target(options: MerchantOptions) {
  if (!/^[a-z0-9][a-z0-9-]{0,63}$/.test(options.issuer)) throw new KessaiError('validation_failed', '--issuer is an issuer id');
  const role = `settlement-${options.issuer}` as const;
  return { dataDir: options.dataDir, role, url: options.url ?? defaultRoleUrl(role) };
}

export function registerMerchantsCommands(program: Command, dataDirDefault: string): Command {
  const merchants = program.command('merchants').description('operator: the merchants an issuer pays');
  const withOptions = (command: Command) =>
    command
      .requiredOption('--issuer <id>', 'the issuer (settlement server), e.g. sakura-bank')
      .option('--data-dir <dir>', 'the data folder of the running system (CA and operator tokens)', dataDirDefault)
      .option('--url <url>', 'the settlement server (default: the issuer’s port under kessai start)');
  const fail = (command: Command, err: unknown) => {
    if (err instanceof KessaiError) command.error(`kessai merchants: ${err.message} (${err.code})`, { exitCode: 1, code: `kessai.${err.code}` });
    throw err;
  };
  withOptions(merchants.command('onboard').description('onboard a merchant (or rename it) at an issuer'))
    .requiredOption('--id <mer_…>', 'the merchant id the authentication server knows it by')
    .requiredOption('--name <name>', 'the name payers are shown (the approval must name it)')
    .action(async (options: MerchantOptions & { id: string; name: string }, command: Command) => {
      try {
        if (!idPattern('mer').test(options.id)) throw new KessaiError('validation_failed', '--id is not a merchant id (mer_…)');
        const onboarded = await operatorCall(target(options), 'POST', '/admin/v1/merchants', issuerMerchantView, { merchant_id: options.id, name: options.name });
        process.stdout.write(`onboarded: ${onboarded.merchant_id} as "${onboarded.name}" at ${options.issuer}\n`);
      } catch (err) {
        fail(command, err);
      }
    });
  withOptions(merchants.command('list').description('list the merchants an issuer pays (newest first)')).action(async (options: MerchantOptions, command: Command) => {
    try {
      const list = await operatorCall(target(options), 'GET', '/admin/v1/merchants', issuerMerchantList);
      for (const merchant of list.items) process.stdout.write(`  ${merchant.merchant_id}  ${merchant.name}  since ${merchant.created_at}\n`);
      if (list.items.length === 0) process.stdout.write(`no merchant is onboarded at ${options.issuer}\n`);
    } catch (err) {
      fail(command, err);
    }
  });
  return merchants;
}
