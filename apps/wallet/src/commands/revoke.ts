/** `kessai wallet revoke`: a credential whose storage is lost, revoked from any device with the recovery code. */
import type { Command } from 'commander';
import { idPattern, Secret } from '@kessai/protocol';
import { WalletClient } from '@kessai/sdk';
import { ask, httpsUrl, lines, readCaCert, run, WalletCliError, type WalletIo } from './common.ts';

export function registerRevoke(wallet: Command, io: WalletIo): void {
  wallet
    .command('revoke')
    .description(
      'revoke a credential whose storage is lost, from any device, with the recovery code shown at enrollment',
    )
    .requiredOption('--credential <id>', 'the credential id (cred_…) printed at enrollment')
    .requiredOption('--auth <url>', 'the authentication server, https://…')
    .requiredOption('--ca <file>', 'the CA certificate (PEM) the servers are signed by')
    .option(
      '--recovery-code <code>',
      'the recovery code (asked if absent; on the command line it is visible to other users of this machine)',
    )
    .action(
      run((options: { credential: string; auth: string; ca: string; recoveryCode?: string }) => revoke(io, options)),
    );
}

async function revoke(
  io: WalletIo,
  options: { credential: string; auth: string; ca: string; recoveryCode?: string },
): Promise<void> {
  if (!idPattern('cred').test(options.credential))
    throw new WalletCliError(
      'input_invalid',
      `--credential ${options.credential.slice(0, 80)} is not a credential id (cred_…)`,
    );
  const authBaseUrl = httpsUrl(options.auth, '--auth');
  const caCertPem = await readCaCert(options.ca);
  const checkCode = (value: string | undefined) =>
    (value ?? '').replace(/[\s-]/g, '').length === 20
      ? undefined
      : 'a recovery code is 20 letters and digits (dashes optional)';
  const recoveryCode = new Secret(
    options.recoveryCode ?? (await ask(io, 'password', 'Recovery code', checkCode, 'pass --recovery-code')),
  );
  const revoked = await WalletClient.revoke({
    authBaseUrl,
    caCertPem,
    credentialId: options.credential,
    recoveryCode: recoveryCode.expose(),
  });
  lines(io.stdout)(
    `revoked: credential ${revoked.credential_id} at ${revoked.revoked_at} (by the ${revoked.revoked_by}) — ` +
      'every later use of it is refused',
  );
}
