/**
 * The credential-binding rule: a sealed credential's protected header names the credential id,
 * the issuer and the device key's thumbprint (RFC 7638) it was issued for, and is used only with
 * that credential, issuer and device key. Checked by the authentication server (against its
 * record), the issuer (against its registry and the key inside) and the wallet (a credential
 * handed back after key rotation).
 */
import { KessaiError } from '../errors.ts';
import { typ } from '../crypto.ts';

export interface CredentialBinding {
  credentialId: string;
  issuerId: string;
  deviceJkt: string;
}

/** Throws credential_device_mismatch (another credential or device key) or credential_invalid (another issuer or kind). */
export function checkCredentialBinding(header: Record<string, unknown>, expected: CredentialBinding): void {
  if (header.typ !== typ.credential) throw new KessaiError('credential_invalid', 'not a sealed credential');
  if (header.cred !== expected.credentialId || header.dkt !== expected.deviceJkt) throw new KessaiError('credential_device_mismatch');
  if (header.iss !== expected.issuerId) throw new KessaiError('credential_invalid', 'sealed for another issuer');
}
