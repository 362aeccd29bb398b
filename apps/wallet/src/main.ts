/**
 * `kessai wallet …` on its own, for the wallet's tests and for trying it without the full
 * `kessai` program (apps/cli/src/main.ts registers the same commands).
 */
import { Command } from 'commander';
import { registerWalletCommands } from './commands/index.ts';

const program = new Command('kessai').description('Kessai command-line wallet');
registerWalletCommands(program, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env });
await program.parseAsync(process.argv);
