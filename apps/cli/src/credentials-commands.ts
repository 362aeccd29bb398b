/**
 * `kessai credentials revoke <id>`: the operator revokes a credential at the running
 * authentication server (`POST /admin/v1/credentials/:id/revoke`, relayed to the issuer), or with
 * --issuer at the issuer's own registry with the bank's operator token, e.g. when a payer who lost the
 * storage and the recovery code calls the help desk. Every later use of it is refused.
 */
import type { Command } from 'commander';
import { credentialRevocation, idPattern, issuerRevocation, KessaiError } from '@kessai/protocol';
import { defaultRoleUrl, operatorCall } from './operator.ts';

export function registerCredentialsCommands(program: Command, dataDirDefault: string): Command {
  const credentials = program.command('credentials').description('operator: credentials at the authentication server');
  credentials
    .command('revoke')
    .description('revoke a credential (operator): at the authentication server, which relays it to the issuer, or with --issuer at the issuer’s own registry; the payer can do the same with the recovery code: kessai wallet revoke')
    .argument('<credential-id>', 'the credential id (cred_…)')
    .option('--issuer <id>', 'revoke in this issuer’s registry with its own operator token (the bank’s operator)')
    .option('--data-dir <dir>', 'the data folder of the running system (CA and operator tokens)', dataDirDefault)
    .option('--url <url>', 'the server (default: the authentication server, or the issuer’s port under kessai start)')
    .action(async (credentialId: string, options: { dataDir: string; url?: string; issuer?: string }, command: Command) => {
      try {
        if (!idPattern('cred').test(credentialId)) throw new KessaiError('validation_failed', `${credentialId.slice(0, 80)} is not a credential id (cred_…)`);
        const role = options.issuer === undefined ? ('auth' as const) : (`settlement-${options.issuer}` as const);
        const target = { dataDir: options.dataDir, role, url: options.url ?? defaultRoleUrl(role) };
        const revoked = options.issuer === undefined
          ? await operatorCall(target, 'POST', `/admin/v1/credentials/${credentialId}/revoke`, credentialRevocation)
          : await operatorCall(target, 'POST', `/admin/v1/credentials/${credentialId}/revoke`, issuerRevocation);
        process.stdout.write(`revoked: credential ${revoked.credential_id} at ${revoked.revoked_at} (by the ${revoked.revoked_by.replace('_', ' ')}${options.issuer ? ` at ${options.issuer}` : ''})\n`);
      } catch (err) {
        if (err instanceof KessaiError) command.error(`kessai credentials: ${err.message} (${err.code})`, { exitCode: 1, code: `kessai.${err.code}` });
        throw err;
      }
    });
  return credentials;
}
