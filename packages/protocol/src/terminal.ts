/**
 * What a terminal (role 10) sends and accepts, built once for the command-line wallet (through
 * @kessai/sdk) and the browser wallet: the enrollment body (steps 301–303) with its PIN block and,
 * for a pass-through issuer, the card data sealed for the issuer; the checks an enrollment answer
 * must pass (the issuer's own receipt, the credential binding); the approval and the payment PIN
 * block (step 404); and the issuer's signed authorization (step 408). Every issuer key used here
 * comes from a directory verified with the pinned directory key (directory.ts).
 */
import { checkCredentialBinding } from './checks/credential-binding.ts';
import { base64url, readHeader, sealJson, sha256Base64url, signJson, thumbprint, typ, verifyJson, type KeyEntry, type KeyRing } from './crypto.ts';
import type { DirectoryIssuer } from './directory.ts';
import { KessaiError } from './errors.ts';
import { authorizationPayload, itemsHash, registrationPayload, type ApprovalPayload, type AuthorizationPayload, type CredentialPlaintext, type EnrollmentResponse, type TerminalRequestPayload } from './messages.ts';
import { normalizeCardNumber } from './card.ts';

export interface DevicePublicKey {
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
}

export function checkPinFormat(pin: string): void {
  if (!/^[0-9]{4,12}$/.test(pin)) throw new KessaiError('validation_failed', 'a PIN is 4 to 12 digits');
}

/** The body of `POST /v1/enrollments` for `issuer`, whose keys come from the verified directory. */
export async function enrollmentBody(issuer: DirectoryIssuer, issuerKeys: KeyRing, input: { credentialId: string; deviceJwk: DevicePublicKey; holderName: string; cardNumber: string; expiry: string; pin: string }) {
  checkPinFormat(input.pin);
  const dkt = await thumbprint(input.deviceJwk);
  const enc = issuerKeys.current('enc');
  const cnh = await sha256Base64url(normalizeCardNumber(input.cardNumber));
  // step 303: personal data and the PIN block, sealed for the issuer
  const pinBlock = await sealJson({ pin: input.pin, cred: input.credentialId, dkt, cnh }, enc, { typ: typ.enrollmentPin, cred: input.credentialId, dkt });
  const common = { credential_id: input.credentialId, issuer_id: issuer.id, device_jwk: input.deviceJwk, pin_block: pinBlock };
  if (issuer.conversion_mode === 'reseal') return { ...common, holder_name: input.holderName, card_number: input.cardNumber, expiry: input.expiry };
  // Pass-through: the card data is sealed here, for the issuer; the authentication server never sees it.
  const plaintext: CredentialPlaintext = { v: 1, holder_name: input.holderName, card_number: normalizeCardNumber(input.cardNumber), expiry: input.expiry, device_jwk: input.deviceJwk };
  return { ...common, sealed_card: await sealJson(plaintext, enc, { typ: typ.credential, cred: input.credentialId, iss: issuer.id, dkt }) };
}

/**
 * What a terminal accepts from an enrollment answer: the issuer's own receipt for this credential
 * and device key (signed with the issuer's key from the directory), and a sealed credential bound
 * to them. A broker that enrolled nothing at the issuer, or changed the binding, is refused here.
 */
export async function checkEnrollmentAnswer(answer: Pick<EnrollmentResponse, 'credential_id' | 'issuer' | 'registration' | 'sealed_credential'>, issuer: DirectoryIssuer, issuerKeys: KeyRing, expected: { credentialId: string; dkt: string }): Promise<void> {
  const { value } = await verifyJson(answer.registration, (kid) => issuerKeys.byKid(kid)?.publicKey, typ.registration, 'directory_invalid');
  const receipt = registrationPayload.safeParse(value);
  if (!receipt.success || receipt.data.iss !== issuer.id || receipt.data.cred !== expected.credentialId || receipt.data.dkt !== expected.dkt) {
    throw new KessaiError('directory_invalid', 'the registration receipt is not the issuer’s for this credential and device key');
  }
  if (answer.credential_id !== expected.credentialId || answer.issuer.id !== issuer.id || answer.issuer.conversion_mode !== issuer.conversion_mode) throw new KessaiError('credential_invalid', 'the enrollment answer names another credential or issuer');
  checkCredentialBinding(readHeader(answer.sealed_credential, 'credential_invalid'), { credentialId: expected.credentialId, issuerId: issuer.id, deviceJkt: expected.dkt });
}

/**
 * Step 404: the PIN block for the issuer, bound to the request id, the approval's nonce and the
 * device key, and the approval the device key signs (dynamic linking to the request, the merchant's
 * id and shown name, amount, currency, items hash, expiry and the mode it was shown) over the
 * hash of that PIN block, so the issuer tests no PIN block the device did not send.
 */
export async function approvalFor(view: TerminalRequestPayload, device: { privateKey: CryptoKey; jkt: string }, issuerKey: KeyEntry, pin: string, overrides: Partial<ApprovalPayload> = {}): Promise<{ approval: string; pin: string }> {
  // step 404: the payer approves; the terminal signs the approval and seals the PIN
  checkPinFormat(pin);
  const random = new Uint8Array(18);
  globalThis.crypto.getRandomValues(random);
  const nonce = overrides.nonce ?? base64url(random);
  const pinBlock = await sealJson({ pin, rid: view.rid, nonce, dkt: device.jkt }, issuerKey, { typ: typ.pin, rid: view.rid, nonce, dkt: device.jkt });
  const payload: ApprovalPayload = {
    rid: view.rid,
    mid: view.merchant.id,
    mnm: view.merchant.name,
    amt: view.amount_minor,
    cur: view.currency,
    ih: await itemsHash(view.line_items),
    iat: Math.floor(Date.now() / 1000),
    exp: Math.floor(Date.parse(view.expires_at) / 1000),
    nonce,
    pbh: await sha256Base64url(pinBlock),
    lm: view.livemode,
    ...overrides,
  };
  const approval = await signJson(payload, device.privateKey, { typ: typ.approval });
  return { approval, pin: pinBlock };
}

/** Step 408 at the terminal: the issuer's signed authorization, for exactly this payment. */
export async function verifyAuthorizationFor(jws: string, view: TerminalRequestPayload, issuerId: string, issuerKeys: KeyRing): Promise<AuthorizationPayload> {
  const { value } = await verifyJson(jws, (kid) => issuerKeys.byKid(kid)?.publicKey, typ.authorization, 'issuer_refused');
  const parsed = authorizationPayload.safeParse(value);
  if (!parsed.success) throw new KessaiError('issuer_refused', 'unreadable authorization');
  const payload = parsed.data;
  if (payload.iss !== issuerId || payload.rid !== view.rid || payload.mid !== view.merchant.id || payload.amt !== view.amount_minor || payload.cur !== view.currency) throw new KessaiError('issuer_refused', 'the authorization names another payment');
  if (payload.lm !== view.livemode) throw new KessaiError('issuer_refused', 'the authorization is of another mode');
  return payload;
}
