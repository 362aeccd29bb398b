/**
 * Step 303 at the issuer: enrollment the issuer can trust. The authentication server forwards the
 * card data sealed for this issuer (sealed by itself in re-seal mode, by the terminal in
 * pass-through mode), the device public key and the PIN block the terminal encrypted to this
 * issuer's key from the signed directory, bound to the credential id and device key. The checks,
 * in order:
 *   1. the sealed card data opens and its header is bound to this credential, issuer and device key;
 *   2. the card's enrollment budget (enrollmentPerCard, keyed by its lookup hash) is not spent;
 *   3. the PIN block opens and is bound to this credential id, device key and card (pin-block rule);
 *   4. in one transaction: a retry of a registration already made is answered again, PIN untested
 *      and counts untouched; otherwise the card exists with this name and expiry, is active and
 *      not expired, its PIN velocity is not exceeded, and the PIN matches (a wrong one is counted
 *      and locks as at payment); then the credential is registered (registry.ts) and a receipt signed.
 * Every refusal of step 4 is the one code enrollment_refused, whichever field was wrong: no oracle
 * for card data. Only a caller who knows the PIN learns that a card is at its credential limit.
 */
import {
  checkEnrollmentPinBinding,
  checkEnrollmentPinCard,
  enrollmentPinPlaintext,
  isExpired,
  KessaiError,
  openJson,
  Secret,
  signJson,
  thumbprint,
  typ,
  type RegistrationPayload,
} from '@kessai/protocol';
import { spendRateLimit, type RateLimiters } from '@kessai/service';
import { panLookup } from './card-vault.ts';
import type { SettlementConfig } from './config.ts';
import { findCard, openCredential } from './credential.ts';
import { countWrongPin, resetPinFailures, velocityExceeded } from './pin.ts';
import { isRegistered, registerCredential } from './registry.ts';

export interface IssuerEnrollment {
  credential_id: string;
  device_jwk: { kty: 'EC'; crv: 'P-256'; x: string; y: string };
  sealed_credential: string;
  pin_block: string;
}

async function openEnrollmentPin(config: SettlementConfig, jwe: string, binding: { cred: string; dkt: string }, cardNumber: string): Promise<Secret<string>> {
  const { header, value } = await openJson(jwe, config.keys, typ.enrollmentPin, 'pin_invalid');
  const parsed = enrollmentPinPlaintext.safeParse(value);
  if (!parsed.success) throw new KessaiError('pin_invalid');
  checkEnrollmentPinBinding(header as Record<string, unknown>, parsed.data, binding);
  await checkEnrollmentPinCard(parsed.data, cardNumber);
  return new Secret(parsed.data.pin);
}

export async function enrollCredential(config: SettlementConfig, limiters: RateLimiters, body: IssuerEnrollment, now: Date): Promise<string> {
  const credential = await openCredential(body.sealed_credential, config.keys, config.issuerId);
  const dkt = await thumbprint(body.device_jwk);
  if (credential.credentialId !== body.credential_id || credential.deviceJkt !== dkt) throw new KessaiError('credential_device_mismatch');
  spendRateLimit(limiters, 'enrollmentPerCard', panLookup(config.cardKeys, credential.cardNumber.expose()));
  const pin = await openEnrollmentPin(config, body.pin_block, { cred: credential.credentialId, dkt }, credential.cardNumber.expose());
  const outcome = await config.db.transaction(async (tx) => {
    const card = await findCard(tx, config.cardKeys, credential, true);
    // A retry of a registration already made is answered again without testing the PIN: a replayed
    // enrollment must not reset the card's wrong-PIN count between someone else's guesses.
    if (card && (await isRegistered(tx, { id: credential.credentialId, device_jkt: dkt, pan_lookup: card.pan_lookup }))) return card.account_id;
    if (!card || card.status !== 'active' || isExpired(credential.expiry.expose(), now)) return 'refused' as const;
    if (await velocityExceeded(tx, card.pan_lookup, now)) return 'refused' as const;
    if (!config.cardKeys.pin.matches(card.pin_verifier, card.pan_lookup, pin)) {
      // Counted and committed like a wrong PIN at payment: enrollment is no free PIN oracle.
      await countWrongPin(config.logger, tx, card, undefined, now);
      return 'refused' as const;
    }
    await resetPinFailures(tx, card, undefined);
    // step 303: the issuer registers the credential against the card
    await registerCredential(tx, { id: credential.credentialId, device_jkt: dkt, pan_lookup: card.pan_lookup, account_id: card.account_id }, config.credentialsPerCardMax);
    return card.account_id;
  });
  if (outcome === 'refused') throw new KessaiError('enrollment_refused');
  config.logger.info({ credential: credential.credentialId, account: outcome }, 'step 303: credential registered by the issuer');
  const key = config.keys.current('sig');
  if (!key.privateKey) throw new Error('settlement signing key has no private part');
  const receipt: RegistrationPayload = { iss: config.issuerId, cred: credential.credentialId, dkt, iat: Math.floor(now.getTime() / 1000) };
  return signJson(receipt, key.privateKey, { typ: typ.registration, kid: key.kid });
}
