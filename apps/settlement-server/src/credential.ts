/**
 * Step 406 (first half): open the sealed credential with cipher 2 and find the card it names.
 * The plaintext stays in this module's return value only as Secrets and is never logged.
 */
import { checkCredentialBinding, credentialPlaintext, KessaiError, openJson, Secret, thumbprint, typ, type JWK, type KeyRing } from '@kessai/protocol';
import type { Queryable } from '@kessai/service';
import { openCard, panLookup, sameText, type CardKeys } from './card-vault.ts';

export interface OpenedCredential {
  credentialId: string;
  deviceJwk: JWK;
  /** RFC 7638 thumbprint of the device key inside, which the header is bound to. */
  deviceJkt: string;
  cardNumber: Secret<string>;
  holderName: Secret<string>;
  expiry: Secret<string>;
}

/** Opens a credential sealed for this issuer; refuses one whose header is not bound to its content. */
export async function openCredential(sealed: string, keys: KeyRing, issuerId: string): Promise<OpenedCredential> {
  const { header, value } = await openJson(sealed, keys, typ.credential, 'credential_invalid');
  const parsed = credentialPlaintext.safeParse(value);
  if (!parsed.success) throw new KessaiError('credential_invalid');
  const plain = parsed.data;
  if (typeof header.cred !== 'string') throw new KessaiError('credential_invalid');
  const deviceJkt = await thumbprint(plain.device_jwk);
  checkCredentialBinding(header, { credentialId: header.cred, issuerId, deviceJkt });
  return {
    credentialId: header.cred,
    deviceJwk: plain.device_jwk,
    deviceJkt,
    cardNumber: new Secret(plain.card_number),
    holderName: new Secret(plain.holder_name),
    expiry: new Secret(plain.expiry),
  };
}

export interface CardRow {
  pan_lookup: string;
  account_id: string;
  status: 'active' | 'blocked' | 'locked';
  pin_verifier: string;
  pin_failures: number;
  /** A test card (migration 0012); null: imported before modes, taken as live. */
  test: boolean | null;
}

/**
 * The card the credential names, if its holder name and expiry match the account store: found by
 * the keyed hash of its number, its sealed record opened in memory to compare the rest.
 */
export async function findCard(tx: Queryable, keys: CardKeys, credential: OpenedCredential, lock: boolean): Promise<CardRow | undefined> {
  const lookup = panLookup(keys, credential.cardNumber.expose());
  const [row] = await tx.query<CardRow & { card_record: string; card_key_id: string }>(
    `select pan_lookup, card_record, card_key_id, account_id, status, pin_verifier, pin_failures, test from cards
      where pan_lookup = $1 ${lock ? 'for update' : ''}`,
    [lookup],
  );
  return matchCard(keys, credential, row);
}

/** The card row read for the credential's card number (or none), if its holder name and expiry match. */
export function matchCard(
  keys: CardKeys,
  credential: OpenedCredential,
  row: (CardRow & { card_record: string; card_key_id: string }) | undefined | null,
): CardRow | undefined {
  if (!row) return undefined;
  const stored = openCard(keys, row.pan_lookup, row.card_record, row.card_key_id);
  if (!sameText(stored.holderName.expose(), credential.holderName.expose()) || !sameText(stored.expiry.expose(), credential.expiry.expose())) return undefined;
  const { pan_lookup, account_id, status, pin_verifier, pin_failures, test } = row;
  return { pan_lookup, account_id, status, pin_verifier, pin_failures, test };
}
