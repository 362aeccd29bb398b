/**
 * The terminal (role 10) as a library: what the command-line wallet and the tests drive.
 * Enrollment (301–305) creates the device key and stores the sealed credential; a payment
 * (403–404) is shown from a view signed by the authentication server and answered with an
 * approval signed by the device key and a PIN encrypted to the issuer — never to the broker.
 */
import { exportJWK, generateKeyPair, importJWK } from 'jose';
import { z } from 'zod';
import {
  base64url,
  credentialRevocation,
  enrollmentResponse,
  itemsHash,
  keyEntryFromJwk,
  KessaiError,
  KeyRing,
  readHeader,
  sealJson,
  Secret,
  signDeviceProof,
  signJson,
  terminalOutcome,
  terminalRequestPayload,
  typ,
  verifyJson,
  type ApprovalPayload,
  type CredentialRevocation,
  type EnrollmentResponse,
  type JWK,
  type TerminalOutcome,
  type TerminalRequestPayload,
} from '@kessai/protocol';
import { HttpClient } from './http.ts';

/** Everything the removable storage holds; enough to pay from any terminal it is moved to. */
export const storedWallet = z.strictObject({
  version: z.literal(1),
  auth_base_url: z.url(),
  credential_id: z.string(),
  sealed_credential: z.string(),
  issuer: enrollmentResponse.shape.issuer,
  auth_jwks_uri: z.url(),
  device_private_jwk: z.record(z.string(), z.unknown()),
});
export type StoredWallet = z.infer<typeof storedWallet>;

export interface EnrollInput {
  authBaseUrl: string;
  caCertPem: string;
  holderName: string;
  cardNumber: string;
  expiry: string;
}

const jwks = z.object({ keys: z.array(z.record(z.string(), z.unknown())).max(20) });
const signedRequest = z.object({ request: z.string() });

/** A payment request whose signature by the authentication server was verified. */
export interface VerifiedRequest {
  view: TerminalRequestPayload;
}

export class WalletClient {
  readonly wallet: StoredWallet;
  readonly #http: HttpClient;
  #deviceKey: Promise<CryptoKey>;
  #authKeys?: Promise<KeyRing>;

  constructor(wallet: StoredWallet, options: { caCertPem: string }) {
    this.wallet = wallet;
    this.#http = new HttpClient({ caCertPem: options.caCertPem });
    this.#deviceKey = importJWK(wallet.device_private_jwk as JWK, 'ES256') as Promise<CryptoKey>;
  }

  /** Steps 301–305: create the device key, send the personal information, get the sealed credential. */
  static async enroll(input: EnrollInput): Promise<StoredWallet> {
    return (await WalletClient.enrollment(input)).wallet;
  }

  /**
   * Enrollment with the recovery code the server shows once: the caller shows it to the payer and
   * never stores it with the wallet (whoever finds the storage must not find the code beside it).
   */
  static async enrollment(input: EnrollInput): Promise<{ wallet: StoredWallet; recoveryCode: Secret<string> }> {
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const { kty, crv, x, y } = await exportJWK(publicKey);
    const http = new HttpClient({ caCertPem: input.caCertPem });
    try {
      const enrolled: EnrollmentResponse = await http.call('POST', `${input.authBaseUrl}/v1/enrollments`, {
        body: { holder_name: input.holderName, card_number: input.cardNumber, expiry: input.expiry, device_jwk: { kty, crv, x, y } },
        schema: enrollmentResponse,
        unavailable: 'issuer_unavailable',
      });
      const wallet: StoredWallet = {
        version: 1,
        auth_base_url: input.authBaseUrl,
        credential_id: enrolled.credential_id,
        sealed_credential: enrolled.sealed_credential,
        issuer: enrolled.issuer,
        auth_jwks_uri: enrolled.auth_jwks_uri,
        device_private_jwk: { ...(await exportJWK(privateKey)), alg: 'ES256' },
      };
      return { wallet, recoveryCode: new Secret(enrolled.recovery_code) };
    } finally {
      await http.close();
    }
  }

  /** Revokes a credential with its recovery code, from any device: no device key is needed. */
  static async revoke(input: { authBaseUrl: string; caCertPem: string; credentialId: string; recoveryCode: string }): Promise<CredentialRevocation> {
    const http = new HttpClient({ caCertPem: input.caCertPem });
    try {
      return await http.call('POST', `${input.authBaseUrl}/v1/credentials/${encodeURIComponent(input.credentialId)}/revoke`, {
        body: { recovery_code: input.recoveryCode },
        schema: credentialRevocation,
        unavailable: 'issuer_unavailable',
      });
    } finally {
      await http.close();
    }
  }

  async #proofHeader(method: string, path: string): Promise<Record<string, string>> {
    const proof = await signDeviceProof(await this.#deviceKey, { credentialId: this.wallet.credential_id, method, path });
    return { authorization: `KessaiDevice ${proof}` };
  }

  async #call<T>(method: 'GET' | 'POST', path: string, schema: z.ZodType<T>, body?: unknown): Promise<T> {
    return this.#http.call(method, `${this.wallet.auth_base_url}${path}`, { schema, headers: await this.#proofHeader(method, path), unavailable: 'issuer_unavailable', ...(body === undefined ? {} : { body }) });
  }

  async #keys(uri: string): Promise<KeyRing> {
    // The PIN is sealed to these keys: over plain HTTP they could be anyone's, so an http: URL in the storage is never fetched.
    if (new URL(uri).protocol !== 'https:') throw new KessaiError('issuer_unavailable', 'a key URL of this wallet is not https:');
    const set = await this.#http.call('GET', uri, { schema: jwks, unavailable: 'issuer_unavailable' });
    return new KeyRing(await Promise.all(set.keys.map((jwk) => keyEntryFromJwk(jwk as JWK))));
  }

  /** Checks the authentication server's signature on a pushed or fetched request. */
  async verifyRequest(jws: string): Promise<VerifiedRequest> {
    this.#authKeys ??= this.#keys(this.wallet.auth_jwks_uri);
    let keys = await this.#authKeys;
    // A kid not in the cached set: the server rotated its signing key; fetch the set again once.
    if (!keys.byKid(readHeader(jws, 'approval_invalid').kid)) {
      this.#authKeys = this.#keys(this.wallet.auth_jwks_uri);
      keys = await this.#authKeys;
    }
    const { value } = await verifyJson(jws, (kid) => keys.byKid(kid)?.publicKey, typ.requestView, 'approval_invalid');
    return { view: terminalRequestPayload.parse(value) };
  }

  /** A payment request id, or a payment link ending in one. */
  async fetchRequest(idOrLink: string): Promise<VerifiedRequest> {
    const id = idOrLink.split('/').pop() ?? idOrLink;
    const { request } = await this.#call('GET', `/v1/terminal/payment-requests/${encodeURIComponent(id)}`, signedRequest);
    return this.verifyRequest(request);
  }

  /** Step 403: yields each payment request pushed to this wallet until `signal` aborts. */
  async *listen(signal: AbortSignal): AsyncGenerator<VerifiedRequest> {
    const path = '/v1/terminal/events';
    let buffer = '';
    for await (const chunk of this.#http.stream(`${this.wallet.auth_base_url}${path}`, await this.#proofHeader('GET', path), signal)) {
      buffer += chunk;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const lines = block.split('\n');
        // The server ends the stream with a `revoked` event when the credential is revoked meanwhile.
        if (lines.includes('event: revoked')) throw new KessaiError('credential_revoked');
        const data = lines.find((line) => line.startsWith('data: '));
        if (data) yield this.verifyRequest((JSON.parse(data.slice(6)) as { request: string }).request);
      }
    }
  }

  /**
   * Step 404: approve with the PIN, which only the issuer can read. When the answer carries the
   * credential re-sealed under a rotated key, this client uses it from now on; the caller stores it
   * (the command-line wallet writes it to the storage).
   */
  async approve(request: VerifiedRequest, pin: string, overrides: Partial<ApprovalPayload> = {}): Promise<TerminalOutcome> {
    const outcome = await this.#call('POST', `/v1/terminal/payment-requests/${request.view.rid}/approve`, terminalOutcome, await this.approvalBody(request, pin, overrides));
    if (outcome.sealed_credential !== undefined) this.#renew(outcome.sealed_credential);
    return outcome;
  }

  /** Takes a re-sealed credential only if its header names this credential, device key and issuer. */
  #renew(sealed: string): void {
    const now = readHeader(this.wallet.sealed_credential, 'credential_invalid');
    const next = readHeader(sealed, 'credential_invalid');
    if (next.typ !== now.typ || next.cred !== now.cred || next.dkt !== now.dkt || next.iss !== now.iss) throw new KessaiError('credential_invalid', 'the re-sealed credential is bound to another credential');
    this.wallet.sealed_credential = sealed;
  }

  /** The body of an approval, exposed so tests can tamper with each part. */
  async approvalBody(request: VerifiedRequest, pin: string, overrides: Partial<ApprovalPayload> = {}): Promise<{ sealed_credential: string; approval: string; pin: string }> {
    const { view } = request;
    const nonce = new Uint8Array(18);
    globalThis.crypto.getRandomValues(nonce);
    const payload: ApprovalPayload = { rid: view.rid, mid: view.merchant.id, amt: view.amount_minor, cur: view.currency, ih: await itemsHash(view.line_items), iat: Math.floor(Date.now() / 1000), nonce: base64url(nonce), ...overrides };
    const approval = await signJson(payload, await this.#deviceKey, { typ: typ.approval });
    // Fetched for each approval: the issuer may have rotated the key PINs are encrypted to.
    const issuerKey = (await this.#keys(this.wallet.issuer.jwks_uri)).current('enc');
    if (!/^[0-9]{4,12}$/.test(pin)) throw new KessaiError('validation_failed', 'a PIN is 4 to 12 digits');
    const pinJwe = await sealJson({ pin, rid: view.rid }, issuerKey, { typ: typ.pin, rid: view.rid });
    return { sealed_credential: this.wallet.sealed_credential, approval, pin: pinJwe };
  }

  async decline(request: VerifiedRequest): Promise<TerminalOutcome> {
    return this.#call('POST', `/v1/terminal/payment-requests/${request.view.rid}/decline`, terminalOutcome, {});
  }

  /** Step 408: the final state of a request this wallet answered. */
  async outcome(id: string): Promise<TerminalOutcome> {
    return this.#call('GET', `/v1/terminal/payment-requests/${encodeURIComponent(id)}/outcome`, terminalOutcome);
  }

  /** Sends a raw approve body (for tests of refusals). */
  async sendApproval(id: string, body: unknown): Promise<TerminalOutcome> {
    return this.#call('POST', `/v1/terminal/payment-requests/${id}/approve`, terminalOutcome, body);
  }

  close(): Promise<void> {
    return this.#http.close();
  }
}
