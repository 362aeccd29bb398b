/**
 * The PIN-block rule (the nonce rule): a PIN block is encrypted by the terminal to the issuer and
 * bound, inside the encryption, to what it unlocks — at enrollment the credential id, device key
 * and card; at payment the request id, the approval's nonce and the device key — so a PIN block
 * cannot be moved to another enrollment, card, request, approval or device. At payment the device
 * also signs the PIN block's hash in the approval: the issuer's key is public, so without it anyone
 * relaying an approval could seal a PIN of their own choosing beside it and have it tested. Run by
 * the issuer, the only party that can open a PIN block.
 */
import { KessaiError } from '../errors.ts';
import { sha256Base64url } from '../crypto.ts';
import { normalizeCardNumber } from '../card.ts';

export interface PaymentPinBinding {
  rid: string;
  nonce: string;
  dkt: string;
}

export interface EnrollmentPinBinding {
  cred: string;
  dkt: string;
}

/** The PIN block the approval signed (its `pbh`): a PIN block the device did not send is never tested. */
export async function checkPinBlockSigned(pinBlock: string, approvalPbh: string): Promise<void> {
  if ((await sha256Base64url(pinBlock)) !== approvalPbh) throw new KessaiError('pin_invalid', 'the PIN block is not the one the approval signed');
}

/** The enrollment PIN block is for this card only: the hash of its number inside the encryption must match the card data sealed beside it. */
export async function checkEnrollmentPinCard(plain: { cnh: string }, cardNumber: string): Promise<void> {
  if ((await sha256Base64url(normalizeCardNumber(cardNumber))) !== plain.cnh) throw new KessaiError('pin_invalid', 'the enrollment PIN block is for another card');
}

function bound(kind: string, header: Record<string, unknown>, plain: Record<string, unknown>, expected: Record<string, string>): void {
  for (const [key, value] of Object.entries(expected)) {
    if (plain[key] !== value || header[key] !== value) throw new KessaiError('pin_invalid', `the ${kind} PIN block is bound to another ${key}`);
  }
}

export function checkPaymentPinBinding(header: Record<string, unknown>, plain: Record<string, unknown>, expected: PaymentPinBinding): void {
  bound('payment', header, plain, { rid: expected.rid, nonce: expected.nonce, dkt: expected.dkt });
}

export function checkEnrollmentPinBinding(header: Record<string, unknown>, plain: Record<string, unknown>, expected: EnrollmentPinBinding): void {
  bound('enrollment', header, plain, { cred: expected.cred, dkt: expected.dkt });
}
