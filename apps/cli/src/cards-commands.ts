/**
 * `kessai cards unlock --issuer <id> (--account <acct_…> | --credential <cred_…>)`: the operator
 * lifts a PIN lock at a running settlement server (`POST /admin/v1/cards/unlock`). Never by card
 * number: it would land in shell history and logs.
 */
import type { Command } from 'commander';
import { cardUnlockResponse, idPattern, KessaiError } from '@kessai/protocol';
import { defaultRoleUrl, operatorCall } from './operator.ts';

interface UnlockOptions {
  issuer: string;
  account?: string;
  credential?: string;
  dataDir: string;
  url?: string;
}

export function registerCardsCommands(program: Command, dataDirDefault: string): Command {
  const cards = program.command('cards').description('operator: cards at a settlement server');
  cards
    .command('unlock')
    .description('lift a PIN lock: --account unlocks the card and every credential lock on it, --credential only that credential')
    .requiredOption('--issuer <id>', 'the issuer (settlement server), e.g. sakura-bank')
    .option('--account <id>', 'the card account id (acct_…)')
    .option('--credential <id>', 'the credential id (cred_…)')
    .option('--data-dir <dir>', 'the data folder of the running system (CA and operator token)', dataDirDefault)
    .option('--url <url>', 'the settlement server (default: the issuer’s port under kessai start)')
    .action(async (options: UnlockOptions, command: Command) => {
      try {
        if ((options.account === undefined) === (options.credential === undefined)) throw new KessaiError('validation_failed', 'pass exactly one of --account and --credential');
        if (options.account !== undefined && !idPattern('acct').test(options.account)) throw new KessaiError('validation_failed', '--account is not an account id (acct_…)');
        if (options.credential !== undefined && !idPattern('cred').test(options.credential)) throw new KessaiError('validation_failed', '--credential is not a credential id (cred_…)');
        const url = options.url ?? defaultRoleUrl(`settlement-${options.issuer}`);
        const body = options.account !== undefined ? { account_id: options.account } : { credential_id: options.credential };
        const unlocked = await operatorCall({ dataDir: options.dataDir, role: `settlement-${options.issuer}`, url }, 'POST', '/admin/v1/cards/unlock', cardUnlockResponse, body);
        process.stdout.write(`unlocked: ${unlocked.accounts_unlocked} card account(s), ${unlocked.credentials_unlocked} credential(s) at ${options.issuer}\n`);
      } catch (err) {
        if (err instanceof KessaiError) command.error(`kessai cards: ${err.message} (${err.code})`, { exitCode: 1, code: `kessai.${err.code}` });
        throw err;
      }
    });
  return cards;
}
