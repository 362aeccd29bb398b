/**
 * `kessai`'s commands (main.ts loads this module for every command but `serve`): the one command
 * for everything a person does by hand. With main.ts and serve/, the only modules that read the
 * environment.
 */
import { Command } from 'commander';
import { registerWalletCommands } from '@kessai/wallet';
import { registerAccountsCommands } from './accounts-commands.ts';
import { registerAuditCommands } from './audit-commands.ts';
import { registerCardsCommands } from './cards-commands.ts';
import { registerCredentialsCommands } from './credentials-commands.ts';
import { registerDbCommands } from './db-commands.ts';
import { registerKeysCommands } from './keys-commands.ts';
import { registerListenCommands } from './listen-commands.ts';
import { registerTriggerCommands } from './trigger-commands.ts';
import { registerMerchantsCommands } from './merchants-commands.ts';
import { demo } from './demo.ts';
import { registerSettleCommands } from './settle-commands.ts';
import { registerWebhooksCommands } from './webhooks-commands.ts';
import { issuerDatabaseEnv, issuerIds, start } from './start.ts';

const program = new Command('kessai').description('Kessai: settlement without keeping the payer’s personal data (JP 2001-076059)');

program
  .command('start')
  .description('start the authentication server, the settlement servers and the shop')
  .option('--data-dir <dir>', 'where keys, certificates, databases and logs live', process.env.KESSAI_DATA_DIR ?? './.kessai')
  .option('--log', 'also print the servers’ logs', false)
  .action(async (options: { dataDir: string; log: boolean }) => {
    await start({
      dataDir: options.dataDir,
      logToStdout: options.log,
      databaseUrls: {
        auth: process.env.AUTH_DATABASE_URL,
        shop: process.env.SHOP_DATABASE_URL,
        issuers: Object.fromEntries(issuerIds.map((id) => [id, process.env[issuerDatabaseEnv(id)]])),
      },
    });
  });

program
  .command('serve')
  .description('run one role as this process, configured by KESSAI_* variables over KESSAI_CONFIG_FILE (docs/operations.md)')
  .argument('<role>', 'auth, settlement, shop or wallet-host')
  .action(async (role: string) => {
    const { serveCommand } = await import('./serve/index.ts');
    await serveCommand(role, process.env);
  });

program
  .command('demo')
  .description('walk one purchase in each conversion mode on a fresh system, printing each patent step')
  .action(async () => {
    process.exitCode = await demo();
  });

registerWalletCommands(program);
registerAccountsCommands(program, process.env.KESSAI_DATA_DIR ?? './.kessai');
registerAuditCommands(program, process.env.KESSAI_DATA_DIR ?? './.kessai');
registerCredentialsCommands(program, process.env.KESSAI_DATA_DIR ?? './.kessai');
registerCardsCommands(program, process.env.KESSAI_DATA_DIR ?? './.kessai');
registerKeysCommands(program, process.env.KESSAI_DATA_DIR ?? './.kessai', process.env.KESSAI_BACKUP_PASSPHRASE_FILE);
registerDbCommands(program, process.env.KESSAI_DATABASE_URL);
registerMerchantsCommands(program, process.env.KESSAI_DATA_DIR ?? './.kessai');
registerSettleCommands(program, process.env.KESSAI_DATA_DIR ?? './.kessai');
registerWebhooksCommands(program, process.env.KESSAI_DATA_DIR ?? './.kessai');
registerListenCommands(program, process.env.KESSAI_DATA_DIR ?? './.kessai', process.env);
registerTriggerCommands(program, process.env);

await program.parseAsync(process.argv);
