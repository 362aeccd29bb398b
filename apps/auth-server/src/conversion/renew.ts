/**
 * Key rotation at the terminal's side: a credential that came under a previous key is handed back
 * re-sealed under the current one, in the approve answer (`sealed_credential`). Re-seal mode: this
 * server re-seals under its current cipher 1. Pass-through: the issuer re-sealed it under its
 * current cipher 2; this server cannot open it and only checks that its header is bound to the
 * same credential, device key and issuer.
 */
import { checkCredentialBinding, readHeader } from '@kessai/protocol';
import type { TerminalCaller } from '../callers.ts';
import type { AuthContext } from '../context.ts';
import type { Issuer } from '../issuers.ts';
import { reseal } from './reseal.ts';

export async function renewedForTerminal(context: AuthContext, terminal: TerminalCaller, issuer: Issuer, sealed: string, fromIssuer: string | undefined): Promise<{ sealed_credential?: string }> {
  if (issuer.metadata.conversion_mode === 'pass_through') {
    if (fromIssuer === undefined) return {};
    try {
      checkCredentialBinding(readHeader(fromIssuer, 'issuer_refused'), terminal);
    } catch {
      context.config.logger.warn({ credential: terminal.credentialId, issuer: issuer.route.id }, 'issuer handed back a re-sealed credential bound elsewhere; not passed on');
      return {};
    }
    return { sealed_credential: fromIssuer };
  }
  const current = context.config.keys.current('enc');
  if (readHeader(sealed, 'credential_invalid').kid === current.kid) return {};
  return { sealed_credential: await reseal(sealed, context.config.keys, current) };
}
