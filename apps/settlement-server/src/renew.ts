/**
 * Key rotation, pass-through mode: a credential sealed under a previous cipher 2 key is re-sealed
 * under the current one when it is used, and handed back (through the authentication server, which
 * cannot open either) to the terminal. The protected header's bindings are carried over unchanged.
 */
import { KessaiError, openJson, readHeader, sealJson, typ } from '@kessai/protocol';
import type { SettlementConfig } from './config.ts';

export async function renewedCredential(config: SettlementConfig, sealed: string): Promise<{ sealed_credential?: string }> {
  if (config.conversionMode !== 'pass_through') return {};
  const current = config.keys.current('enc');
  if (readHeader(sealed, 'credential_invalid').kid === current.kid) return {};
  // Runs after the decision is committed: it must not turn a decision into a refusal. A key
  // retired meanwhile leaves the credential as it is (its next use answers key_retired, before anything is held).
  try {
    const { header, value } = await openJson(sealed, config.keys, typ.credential, 'credential_invalid');
    return { sealed_credential: await sealJson(value, current, { typ: typ.credential, cred: String(header.cred), iss: String(header.iss), dkt: String(header.dkt) }) };
  } catch (err) {
    if (!(err instanceof KessaiError)) throw err;
    config.logger.warn({ code: err.code }, 'the credential could not be re-sealed under the current key; answered without it');
    return {};
  }
}
