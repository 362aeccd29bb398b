/**
 * `kessai credentials revoke <id>`: the operator revokes a credential at the running
 * authentication server (`POST /admin/v1/credentials/:id/revoke`), e.g. when a payer who lost the
 * storage and the recovery code calls the help desk. Every later use of it is refused.
 */
import type { Command } from 'commander';
import { credentialRevocation, idPattern, KessaiError } from '@kessai/protocol';
import { defaultRoleUrl, operatorCall } from './operator.ts';

export function registerCredentialsCommands(program: Command, dataDirDefault: string): Command {
  const credentials = program.command('credentials').description('operator: credentials at the authentication server');
  credentials
    .command('revoke')
    .description('revoke a credential (operator); the payer can do the same with the recovery code: kessai wallet revoke')
    .argument('<credential-id>', 'the credential id (cred_…)')
    .option('--data-dir <dir>', 'the data folder of the running system (CA and operator token)', dataDirDefault)
    .option('--url <url>', 'the authentication server', defaultRoleUrl('auth'))
    .action(async (credentialId: string, options: { dataDir: string; url: string }, command: Command) => {
      try {
        if (!idPattern('cred').test(credentialId)) throw new KessaiError('validation_failed', `${credentialId.slice(0, 80)} is not a credential id (cred_…)`);
        const revoked = await operatorCall({ dataDir: options.dataDir, url: options.url }, 'POST', `/admin/v1/credentials/${credentialId}/revoke`, credentialRevocation);
        process.stdout.write(`revoked: credential ${revoked.credential_id} at ${revoked.revoked_at} (by the ${revoked.revoked_by})\n`);
      } catch (err) {
        if (err instanceof KessaiError) command.error(`kessai credentials: ${err.message} (${err.code})`, { exitCode: 1, code: `kessai.${err.code}` });
        throw err;
      }
    });
  return credentials;
}
