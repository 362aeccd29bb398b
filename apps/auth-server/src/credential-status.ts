/**
 * A terminal asks what became of its own credential (`kessai wallet status`). This server knows
 * only whether it revoked it; the PIN locks and the issuer's own revocations live in the issuer's
 * registry, which is asked over mutual TLS. Nothing of it is stored here, and nothing names the
 * card: the terminal keeps its card's last four digits on its own storage.
 */
import { issuerCredentialStatus, KessaiError, type TerminalCredentialStatus } from '@kessai/protocol';
import type { TerminalCaller } from './callers.ts';
import type { AuthContext } from './context.ts';

export async function credentialStatusOf(
  context: AuthContext,
  terminal: TerminalCaller & { status: 'active' | 'revoked' },
): Promise<TerminalCredentialStatus> {
  const { credentialId } = terminal;
  // Revoked here is revoked: the issuer is told (revocation-relay.ts) and every use is refused.
  if (terminal.status === 'revoked') {
    return { credential_id: credentialId, status: 'revoked', code: 'credential_revoked', pin_tries_left: null };
  }
  const issuer = await context.issuers.byId(terminal.issuerId);
  const answer = await context.http
    .call('GET', `${issuer.route.baseUrl}/internal/v1/credentials/${credentialId}`, {
      schema: issuerCredentialStatus,
      unavailable: 'issuer_unavailable',
    })
    .catch((err: unknown) => {
      // The issuer never registered it: no payment through it would pass (as at authorization).
      if (err instanceof KessaiError && err.code === 'credential_not_found')
        throw new KessaiError('credential_unknown');
      throw err;
    });
  // Registered for another device key than this server's record: the issuer refuses it all the same.
  if (answer.credential_id !== credentialId || answer.device_jkt !== terminal.deviceJkt) {
    throw new KessaiError('credential_unknown');
  }
  const { device_jkt: _registeredKey, ...status } = answer;
  return status;
}
