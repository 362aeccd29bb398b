/**
 * `kessai wallet …`: the terminal (role 10) on the command line, one module per verb. Enrollment
 * (301–305) onto the removable storage; payments pushed to it (403) or opened from a payment link,
 * shown from the authentication server's signed view and answered with the device key and the PIN
 * (404); the wallet's state and a request's final state (408); revocation of a lost storage with
 * the recovery code. Prompts go to the terminal (stderr); results go to stdout, one line each.
 */
import type { Command } from 'commander';
import type { WalletIo } from './common.ts';
import { registerEnroll } from './enroll.ts';
import { registerListen } from './listen.ts';
import { registerPay } from './pay.ts';
import { registerRevoke } from './revoke.ts';
import { registerStatus } from './status.ts';

export { WalletCliError, type WalletCliErrorCode, type WalletIo } from './common.ts';
export { directoryKeyFile } from './enroll.ts';
export { listenReconnectDelayMsFirst, listenReconnectsMax } from './listen.ts';
export { outcomeExitCodes, printable, type AnswerEnd } from './pay.ts';

const processIo: WalletIo = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env };

export function registerWalletCommands(program: Command, io: WalletIo = processIo): Command {
  const wallet = program
    .command('wallet')
    .description('the terminal (role 10): enroll a card onto removable storage and pay from it');
  for (const register of [registerEnroll, registerRevoke, registerListen, registerPay, registerStatus])
    register(wallet, io);
  return wallet;
}
