/**
 * The PIN-block rule (the nonce rule): a PIN block is encrypted by the terminal to the issuer and
 * bound, inside the encryption, to what it unlocks — at enrollment the credential id and device
 * key; at payment the request id, the approval's nonce and the device key — so a PIN block cannot
 * be moved to another enrollment, request, approval or device. Run by the issuer, the only party
 * that can open one.
 */
import { KessaiError } from '../errors.ts';

export interface PaymentPinBinding {
  rid: string;
  nonce: string;
  dkt: string;
}

export interface EnrollmentPinBinding {
  cred: string;
  dkt: string;
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
