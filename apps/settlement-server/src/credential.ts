/**
 * Step 406 (first half): open the sealed credential with cipher 2 and find the card it names.
 * The plaintext stays in this module's return value only as Secrets and is never logged.
 */
import { credentialPlaintext, KessaiError, openJson, Secret, thumbprint, typ, type JWK, type KeyRing } from '@kessai/protocol';
import type { Queryable } from '@kessai/service';

export interface OpenedCredential {
  credentialId: string;
  deviceJwk: JWK;
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
  if (header.iss !== issuerId) throw new KessaiError('credential_invalid', 'sealed for another issuer');
  if (typeof header.cred !== 'string') throw new KessaiError('credential_invalid');
  if (header.dkt !== (await thumbprint(plain.device_jwk))) throw new KessaiError('credential_device_mismatch');
  return {
    credentialId: header.cred,
    deviceJwk: plain.device_jwk,
    cardNumber: new Secret(plain.card_number),
    holderName: new Secret(plain.holder_name),
    expiry: new Secret(plain.expiry),
  };
}

export interface CardRow {
  card_number: string;
  account_id: string;
  status: 'active' | 'blocked' | 'locked';
  pin_verifier: string;
  pin_failures: number;
}

/** The card the credential names, if its holder name and expiry match the account store. */
export async function findCard(tx: Queryable, credential: OpenedCredential, lock: boolean): Promise<CardRow | undefined> {
  const [row] = await tx.query<CardRow>(
    `select card_number, account_id, status, pin_verifier, pin_failures from cards
      where card_number = $1 and holder_name = $2 and expiry = $3 ${lock ? 'for update' : ''}`,
    [credential.cardNumber.expose(), credential.holderName.expose(), credential.expiry.expose()],
  );
  return row;
}
