/**
 * Step 405, embodiment 1 (re-seal): open cipher 1 in memory and seal the same personal data with
 * cipher 2, the key the settlement server publishes. The plaintext exists only inside this
 * function and is never logged or stored. The protected header's bindings (credential id,
 * issuer, device key thumbprint) are carried over unchanged.
 */
import { openJson, sealJson, typ, type KeyEntry, type KeyRing } from '@kessai/protocol';

export async function reseal(sealedCredential: string, cipher1: KeyRing, cipher2: KeyEntry): Promise<string> {
  // step 405: cipher 1 opened, sealed again with cipher 2 (re-seal)
  const { header, value } = await openJson(sealedCredential, cipher1, typ.credential, 'credential_invalid');
  return sealJson(value, cipher2, { typ: typ.credential, cred: String(header.cred), iss: String(header.iss), dkt: String(header.dkt) });
}
