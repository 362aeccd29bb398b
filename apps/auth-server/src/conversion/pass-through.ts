/**
 * Step 405, embodiment 2 (pass-through, patent claim 3): the credential was sealed for the
 * settlement server at enrollment, so it is forwarded byte for byte. This server holds no key
 * that opens it.
 */
export function passThrough(sealedCredential: string): string {
  // step 405: pass-through, the credential is already sealed for the issuer
  return sealedCredential;
}
