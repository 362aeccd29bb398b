/**
 * A terminal and a broker played by hand against one settlement server's /internal API (tests that
 * call the bank as the authentication server would, with its client certificate): a device key
 * enrolled at the bank (step 303: card data sealed for the bank, PIN block, registration), and the
 * authorize body for one payment through that device (step 406: sealed credential, approval, PIN
 * block), each part overridable so a test can forge exactly one of them.
 */
import { exportJWK, generateKeyPair } from 'jose';
import { Agent, request } from 'undici';
import { base64url, itemsHash, keyEntryFromJwk, KeyRing, newId, sealJson, sha256Base64url, signJson, thumbprint, typ, type JWK, type LineItem } from '@kessai/protocol';

export interface BankCard {
  cardNumber: string;
  holderName: string;
  expiry: string;
  pin: string;
}

/** A device enrolled at the bank: its key pair, credential id and the credential sealed for the bank. */
export interface EnrolledDevice {
  credentialId: string;
  deviceJwk: { kty: 'EC'; crv: 'P-256'; x: string; y: string };
  dkt: string;
  privateKey: CryptoKey;
  sealed: string;
  issuerId: string;
  /** The card the device was made for (its number goes, hashed, into the enrollment PIN block). */
  cardNumber: string;
}

export interface AuthorizeOptions {
  rid?: string;
  mid?: string;
  /** The merchant name the approval names (default: the bank's onboarded name). */
  mnm?: string;
  approvedAmount?: string;
  requestedAmount?: string;
  currency?: string;
  items?: LineItem[];
  pin?: string;
  /** Another key signs the approval (not the device's). */
  approvalKey?: CryptoKey;
  iatOffsetS?: number;
  nonce?: string;
  /** The PIN-block hash the approval signs (default: the hash of the PIN block sent). */
  pbh?: string;
  /** The mode the approval signs (default false: a test request, as the demo cards are test cards). */
  lm?: boolean;
}

/** The bank's /internal API with the broker's client certificate. */
export class BankCaller {
  readonly url: string;
  readonly issuerId: string;
  readonly #agent: Agent;
  #keys: KeyRing | undefined;

  constructor(url: string, issuerId: string, tls: { caCertPem: string; certPem: string; keyPem: string }) {
    this.url = url;
    this.issuerId = issuerId;
    this.#agent = new Agent({ connect: { ca: tls.caCertPem, cert: tls.certPem, key: tls.keyPem } });
  }

  async call(method: 'GET' | 'POST', path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any -- tests read fields of the bank's JSON
    const response = await request(`${this.url}${path}`, { method, dispatcher: this.#agent, headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    const text = await response.body.text();
    return { status: response.statusCode, body: text ? JSON.parse(text) : undefined };
  }

  /** The bank's public keys (its JWKS), as a terminal's directory would list them. */
  async keys(): Promise<KeyRing> {
    if (!this.#keys) {
      const jwks = await this.call('GET', '/.well-known/jwks.json');
      this.#keys = new KeyRing(await Promise.all((jwks.body.keys as JWK[]).map((k) => keyEntryFromJwk(k))));
    }
    return this.#keys;
  }

  /** Step 303 at the bank: a new device key for `card`, registered with the card's PIN (or `pin`); throws on any refusal. */
  async enroll(card: BankCard, pin: string = card.pin): Promise<EnrolledDevice> {
    const device = await this.device(card);
    const answer = await this.call('POST', '/internal/v1/enrollments', await this.enrollmentBody(device, pin));
    if (answer.status !== 200) throw new Error(`enrollment refused: ${answer.status} ${JSON.stringify(answer.body)}`);
    return device;
  }

  /** A device key and the card data sealed for this bank, not yet enrolled. */
  async device(card: BankCard): Promise<EnrolledDevice> {
    const pair = await generateKeyPair('ES256', { extractable: true });
    const { kty, crv, x, y } = await exportJWK(pair.publicKey);
    const deviceJwk = { kty: kty as 'EC', crv: crv as 'P-256', x: x!, y: y! };
    const credentialId = newId('cred');
    const dkt = await thumbprint(deviceJwk);
    const sealed = await sealJson({ v: 1, holder_name: card.holderName, card_number: card.cardNumber, expiry: card.expiry, device_jwk: deviceJwk }, (await this.keys()).current('enc'), { typ: typ.credential, cred: credentialId, iss: this.issuerId, dkt });
    return { credentialId, deviceJwk, dkt, privateKey: pair.privateKey, sealed, issuerId: this.issuerId, cardNumber: card.cardNumber };
  }

  async enrollmentBody(device: EnrolledDevice, pin: string) {
    const enc = (await this.keys()).current('enc');
    const pinBlock = await sealJson({ pin, cred: device.credentialId, dkt: device.dkt, cnh: await sha256Base64url(device.cardNumber) }, enc, { typ: typ.enrollmentPin, cred: device.credentialId, dkt: device.dkt });
    return { credential_id: device.credentialId, device_jwk: device.deviceJwk, sealed_credential: device.sealed, pin_block: pinBlock };
  }

  /** Everything a terminal and an honest broker send for one payment through `device`, each part overridable. */
  async authorizeBody(device: EnrolledDevice, card: BankCard, merchant: { id: string; name: string }, options: AuthorizeOptions = {}) {
    const rid = options.rid ?? newId('pr');
    const mid = options.mid ?? merchant.id;
    const cur = options.currency ?? 'JPY';
    const items = options.items ?? [{ description: 'Chawan', quantity: 1, unit_price_minor: options.approvedAmount ?? '6500' }];
    const amt = options.approvedAmount ?? '6500';
    const nonce = options.nonce ?? base64url(crypto.getRandomValues(new Uint8Array(18)));
    const iat = Math.floor(Date.now() / 1000) + (options.iatOffsetS ?? 0);
    const enc = (await this.keys()).current('enc');
    const pin = await sealJson({ pin: options.pin ?? card.pin, rid, nonce, dkt: device.dkt }, enc, { typ: typ.pin, rid, nonce, dkt: device.dkt });
    const approval = await signJson({ rid, mid, mnm: options.mnm ?? merchant.name, amt, cur, ih: await itemsHash(items), iat, exp: iat + 600, nonce, pbh: options.pbh ?? (await sha256Base64url(pin)), lm: options.lm ?? false }, options.approvalKey ?? device.privateKey, { typ: typ.approval });
    return { request: { rid, mid, amt: options.requestedAmount ?? amt, cur, line_items: items }, sealed_credential: device.sealed, approval, pin };
  }

  close(): Promise<void> {
    return this.#agent.close();
  }
}
