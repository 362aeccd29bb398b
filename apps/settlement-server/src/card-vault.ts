/**
 * The account store's card data at rest (PCI DSS 3.5): a card is found by `pan_lookup`, an
 * HMAC-SHA-256 of the normalized card number under the lookup key, and its number, holder name
 * and expiry are kept only as an AES-256-GCM record under the data key, whose kid is stored beside
 * it so the key can rotate. The keys live in the server's key folder (`card-lookup.private.jwk`,
 * `card-data.private.jwk`, and `pin-verification.private.jwk` for pin.ts), never in the database. The record is opened in memory only, to match
 * a credential's holder name and expiry.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import path from 'node:path';
import { normalizeCardNumber, Secret } from '@kessai/protocol';
import { loadOrCreateSecretKeys, type Queryable } from '@kessai/service';
import { filePinKeys, type PinKeyProvider } from './pin.ts';

export interface CardKeys {
  /** HMAC key of pan_lookup. */
  lookup: Buffer;
  /** Data keys of the records, the current (used to seal) first. */
  data: ReadonlyArray<{ kid: string; key: Buffer }>;
  /** The PIN verification key (pin.ts): `pin-verification.private.jwk` today, a KMS or HSM later. */
  pin: PinKeyProvider;
}

/** Loads or creates the card keys in the settlement server's key folder. */
export async function loadOrCreateCardKeys(keyDir: string): Promise<CardKeys> {
  const [lookup] = await loadOrCreateSecretKeys(keyDir, 'card-lookup');
  const data = await loadOrCreateSecretKeys(keyDir, 'card-data');
  const pin = await loadOrCreateSecretKeys(keyDir, 'pin-verification');
  if (!lookup || data.length === 0 || pin.length === 0) throw new Error(`card keys missing in ${path.resolve(keyDir)}`);
  return { lookup: lookup.key, data, pin: filePinKeys(pin) };
}

export function panLookup(keys: CardKeys, cardNumber: string): string {
  return createHmac('sha256', keys.lookup).update(normalizeCardNumber(cardNumber)).digest('base64url');
}

interface CardData {
  card_number: string;
  holder_name: string;
  expiry: string;
}

/** AES-256-GCM over the card's data; the lookup value is the additional data, binding record to row. */
export function sealCard(keys: CardKeys, lookup: string, card: { cardNumber: string; holderName: string; expiry: string }): { record: string; kid: string } {
  const current = keys.data[0]!;
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', current.key, iv);
  cipher.setAAD(Buffer.from(lookup));
  const plain: CardData = { card_number: normalizeCardNumber(card.cardNumber), holder_name: card.holderName, expiry: card.expiry };
  const ciphertext = Buffer.concat([cipher.update(JSON.stringify(plain), 'utf8'), cipher.final()]);
  return { record: [iv, ciphertext, cipher.getAuthTag()].map((part) => part.toString('base64url')).join('.'), kid: current.kid };
}

export function openCard(keys: CardKeys, lookup: string, record: string, kid: string): { cardNumber: Secret<string>; holderName: Secret<string>; expiry: Secret<string> } {
  const key = keys.data.find((k) => k.kid === kid);
  if (!key) throw new Error('card record sealed under an unknown data key');
  const [iv, ciphertext, tag] = record.split('.').map((part) => Buffer.from(part, 'base64url'));
  if (!iv || !ciphertext || !tag) throw new Error('card record malformed');
  const decipher = createDecipheriv('aes-256-gcm', key.key, iv);
  decipher.setAAD(Buffer.from(lookup));
  decipher.setAuthTag(tag);
  const plain = JSON.parse(Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8')) as CardData;
  return { cardNumber: new Secret(plain.card_number), holderName: new Secret(plain.holder_name), expiry: new Secret(plain.expiry) };
}

/** Equality that takes the same time wherever the first difference is. */
export function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

export interface NewCard {
  cardNumber: string;
  holderName: string;
  expiry: string;
  accountId: string;
  status: 'active' | 'blocked';
  pin: Secret<string>;
  creditLineAccountId?: string | null;
}

/** Inserts a card into the account store: keyed hash and sealed record, never the plaintext. */
export async function insertCard(tx: Queryable, keys: CardKeys, card: NewCard): Promise<void> {
  const lookup = panLookup(keys, card.cardNumber);
  const { record, kid } = sealCard(keys, lookup, card);
  const verifier = keys.pin.derive(lookup, card.pin);
  await tx.query('insert into cards (pan_lookup, card_record, card_key_id, account_id, status, pin_verifier, credit_line_account_id) values ($1, $2, $3, $4, $5, $6, $7)', [lookup, record, kid, card.accountId, card.status, verifier, card.creditLineAccountId ?? null]);
}

/** The ledger account of a card, found by its keyed hash (operators' tools and tests). */
export async function accountIdOfCard(db: Queryable, keys: CardKeys, cardNumber: string): Promise<string | undefined> {
  const [row] = await db.query<{ account_id: string }>('select account_id from cards where pan_lookup = $1', [panLookup(keys, cardNumber)]);
  return row?.account_id;
}
