/**
 * The terminal (role 10) as a library: what the command-line wallet and the tests drive.
 * Enrollment (301–305) creates the device key, finds the issuer in the signed directory (verified
 * with the directory key the wallet was installed with), encrypts the PIN to that issuer's key
 * from the directory — bound to the credential id and device key — and, for a pass-through issuer,
 * seals the card data for the issuer itself. A payment (403–404) is shown from a view signed by the
 * authentication server and answered with an approval signed by the device key and a PIN block
 * encrypted to the issuer's key from the directory, never to a key the broker names.
 */
import { exportJWK, generateKeyPair, importJWK } from 'jose';
import { z } from 'zod';
import {
  approvalFor,
  checkCredentialBinding,
  checkEnrollmentAnswer,
  credentialRevocation,
  Directory,
  directoryResponse,
  enrollmentBody,
  enrollmentResponse,
  keyEntryFromJwk,
  KessaiError,
  KeyRing,
  limits,
  newId,
  normalizeCardNumber,
  readHeader,
  Secret,
  signDeviceProof,
  terminalCredentialStatus,
  terminalOutcome,
  terminalRequestPayload,
  thumbprint,
  toPublicJwk,
  typ,
  verifyAuthorizationFor,
  verifyJson,
  type ApprovalPayload,
  type AuthorizationPayload,
  type CredentialRevocation,
  type EnrollmentResponse,
  type JWK,
  type TerminalCredentialStatus,
  type TerminalOutcome,
  type TerminalRequestPayload,
} from '@kessai/protocol';
import { HttpClient } from './http.ts';

/**
 * The server's 5xx answers to an approval that mean it did nothing (it refused the call to the issuer, shed it, or
 * let it expire unstarted).
 */
const nothingDoneCodes = new Set<string>(['issuer_unavailable', 'deadline_exceeded', 'overloaded']);

/** Everything the removable storage holds; enough to pay from any terminal it is moved to. */
export const storedWallet = z.strictObject({
  version: z.literal(2),
  auth_base_url: z.url(),
  credential_id: z.string(),
  sealed_credential: z.string(),
  issuer: enrollmentResponse.shape.issuer,
  auth_jwks_uri: z.url(),
  /** The directory's public key the wallet was installed with: every issuer key comes from a directory it verifies. */
  directory_key: z.record(z.string(), z.unknown()),
  device_private_jwk: z.record(z.string(), z.unknown()),
  /**
   * The card's last four digits, for the payer to tell wallets apart (`kessai wallet status`): kept on
   * the storage only, never sent. Absent in wallets enrolled before it was kept.
   */
  card_last4: z
    .string()
    .regex(/^[0-9]{4}$/)
    .optional(),
});
export type StoredWallet = z.infer<typeof storedWallet>;

export interface EnrollInput {
  authBaseUrl: string;
  caCertPem: string;
  /** The directory's public key (JWK), installed with the wallet; never taken from the authentication server. */
  directoryKey: JWK;
  holderName: string;
  cardNumber: string;
  expiry: string;
  /** The card's PIN: the issuer verifies the cardholder at enrollment. */
  pin: string;
}

const jwks = z.object({ keys: z.array(z.record(z.string(), z.unknown())).max(20) });
const signedRequest = z.object({ request: z.string() });

/** A payment request whose signature by the authentication server was verified. */
export interface VerifiedRequest {
  view: TerminalRequestPayload;
}

/** Fetches the directory through the authentication server and verifies it with the pinned key. */
export async function fetchDirectory(http: HttpClient, authBaseUrl: string, directoryKey: JWK): Promise<Directory> {
  const { directory } = await http.call('GET', `${authBaseUrl}/v1/directory`, {
    schema: directoryResponse,
    unavailable: 'issuer_unavailable',
  });
  const key = (await importJWK(toPublicJwk(directoryKey), 'ES256')) as CryptoKey;
  return Directory.verify(directory, key);
}

export class WalletClient {
  readonly wallet: StoredWallet;
  readonly #http: HttpClient;
  #deviceKey: Promise<CryptoKey>;
  #authKeys?: Promise<KeyRing>;
  #directory?: Promise<Directory> | undefined;

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
    // step 301: the terminal makes its device key pair (the private key never leaves the wallet)
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const { kty, crv, x, y } = await exportJWK(publicKey);
    const deviceJwk = { kty: kty as 'EC', crv: crv as 'P-256', x: x!, y: y! };
    const http = new HttpClient({ caCertPem: input.caCertPem });
    try {
      const directory = await fetchDirectory(http, input.authBaseUrl, input.directoryKey);
      const issuer = directory.issuerForCard(normalizeCardNumber(input.cardNumber));
      const issuerKeys = await directory.keys(issuer.id);
      const credentialId = newId('cred');
      const body = await enrollmentBody(issuer, issuerKeys, {
        credentialId,
        deviceJwk,
        holderName: input.holderName,
        cardNumber: input.cardNumber,
        expiry: input.expiry,
        pin: input.pin,
      });
      // step 302: the device public key goes to the authentication server with the enrollment
      const enrolled: EnrollmentResponse = await http.call('POST', `${input.authBaseUrl}/v1/enrollments`, {
        body,
        schema: enrollmentResponse,
        unavailable: 'issuer_unavailable',
      });
      await checkEnrollmentAnswer(enrolled, issuer, issuerKeys, { credentialId, dkt: await thumbprint(deviceJwk) });
      const wallet: StoredWallet = {
        version: 2,
        auth_base_url: input.authBaseUrl,
        credential_id: enrolled.credential_id,
        sealed_credential: enrolled.sealed_credential,
        issuer: { id: issuer.id, name: issuer.name, conversion_mode: issuer.conversion_mode },
        auth_jwks_uri: enrolled.auth_jwks_uri,
        directory_key: toPublicJwk(input.directoryKey),
        device_private_jwk: { ...(await exportJWK(privateKey)), alg: 'ES256' },
        card_last4: normalizeCardNumber(input.cardNumber).slice(-4),
      };
      return { wallet, recoveryCode: new Secret(enrolled.recovery_code) };
    } finally {
      await http.close();
    }
  }

  /** Revokes a credential with its recovery code, from any device: no device key is needed. */
  static async revoke(input: {
    authBaseUrl: string;
    caCertPem: string;
    credentialId: string;
    recoveryCode: string;
  }): Promise<CredentialRevocation> {
    const http = new HttpClient({ caCertPem: input.caCertPem });
    try {
      return await http.call(
        'POST',
        `${input.authBaseUrl}/v1/credentials/${encodeURIComponent(input.credentialId)}/revoke`,
        {
          body: { recovery_code: input.recoveryCode },
          schema: credentialRevocation,
          unavailable: 'issuer_unavailable',
        },
      );
    } finally {
      await http.close();
    }
  }

  async #proofHeader(method: string, path: string): Promise<Record<string, string>> {
    const proof = await signDeviceProof(await this.#deviceKey, {
      credentialId: this.wallet.credential_id,
      method,
      path,
    });
    return { authorization: `KessaiDevice ${proof}` };
  }

  async #call<T>(
    method: 'GET' | 'POST',
    path: string,
    schema: z.ZodType<T>,
    body?: unknown,
    timeoutMs?: number,
  ): Promise<T> {
    return this.#http.call(method, `${this.wallet.auth_base_url}${path}`, {
      schema,
      headers: await this.#proofHeader(method, path),
      unavailable: 'issuer_unavailable',
      ...(body === undefined ? {} : { body }),
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
    });
  }

  async #keys(uri: string): Promise<KeyRing> {
    // The request views are verified with these keys: over plain HTTP they could be anyone's, so an http: URL in the
    // storage is never fetched.
    if (new URL(uri).protocol !== 'https:')
      throw new KessaiError('issuer_unavailable', 'a key URL of this wallet is not https:');
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
    const { request } = await this.#call(
      'GET',
      `/v1/terminal/payment-requests/${encodeURIComponent(id)}`,
      signedRequest,
    );
    return this.verifyRequest(request);
  }

  /** Step 403: yields each payment request pushed to this wallet until `signal` aborts. */
  async *listen(signal: AbortSignal): AsyncGenerator<VerifiedRequest> {
    const path = '/v1/terminal/events';
    let buffer = '';
    for await (const chunk of this.#http.stream(
      `${this.wallet.auth_base_url}${path}`,
      await this.#proofHeader('GET', path),
      signal,
    )) {
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
  async approve(
    request: VerifiedRequest,
    pin: string,
    overrides: Partial<ApprovalPayload> = {},
  ): Promise<TerminalOutcome> {
    const body = await this.approvalBody(request, pin, overrides);
    const sentAt = Date.now();
    let outcome: TerminalOutcome;
    try {
      outcome = await this.#call(
        'POST',
        `/v1/terminal/payment-requests/${request.view.rid}/approve`,
        terminalOutcome,
        body,
        limits.walletApproveTimeoutMs,
      );
    } catch (err) {
      // The issuer retired the key this client's directory named: the next approval reads the directory again.
      if (err instanceof KessaiError && err.code === 'key_retired') this.#directory = undefined;
      // No answer, or a 5xx: the approval may have been recorded. Ask, never report "not paid".
      // The server's own 4xx answers, and the 5xx it gives only when nothing was done, are definite; any other
      // failure is asked about.
      if (
        err instanceof KessaiError &&
        !err.notSent &&
        !(err.fromPeer && (err.status < 500 || nothingDoneCodes.has(err.code)))
      )
        return this.settledOutcome(request.view.rid, sentAt, true);
      throw err;
    }
    if (outcome.status === 'authorizing') return this.settledOutcome(request.view.rid, sentAt, false);
    if (outcome.sealed_credential !== undefined) this.#renew(outcome.sealed_credential);
    return outcome;
  }

  /**
   * The outcome of an approval whose answer was lost (`lost`) or in doubt (`authorizing`): asked
   * every walletOutcomePollMs for up to walletOutcomeWaitMs. A request still `authorizing` then
   * is answered as it is — not known yet, never "not paid". After a lost answer a `pending`
   * request counts as not paid only once walletApproveTimeoutMs + approvalSaveWindowMs have passed
   * since the approval was sent (the server saves no approval later than that).
   */
  async settledOutcome(
    id: string,
    sentAt: number,
    lost: boolean,
    waitMs: number = limits.walletOutcomeWaitMs,
  ): Promise<TerminalOutcome> {
    const until = Date.now() + waitMs;
    let outcome: TerminalOutcome | undefined;
    for (;;) {
      try {
        outcome = await this.outcome(id);
      } catch (err) {
        if (!(err instanceof KessaiError) || (err.code !== 'issuer_unavailable' && err.status < 500)) throw err;
      }
      const settled =
        outcome !== undefined &&
        outcome.status !== 'authorizing' &&
        !(
          lost &&
          outcome.status === 'pending' &&
          Date.now() < sentAt + limits.walletApproveTimeoutMs + limits.approvalSaveWindowMs
        );
      if (settled || Date.now() >= until) break;
      await new Promise((resolve) => setTimeout(resolve, limits.walletOutcomePollMs));
    }
    return outcome ?? { id, status: 'authorizing', decline_code: null, authorization: null };
  }

  /** Takes a re-sealed credential only if its header names this credential, device key and issuer. */
  #renew(sealed: string): void {
    const now = readHeader(this.wallet.sealed_credential, 'credential_invalid');
    try {
      checkCredentialBinding(readHeader(sealed, 'credential_invalid'), {
        credentialId: String(now.cred),
        issuerId: String(now.iss),
        deviceJkt: String(now.dkt),
      });
    } catch {
      throw new KessaiError('credential_invalid', 'the re-sealed credential is bound to another credential');
    }
    this.wallet.sealed_credential = sealed;
  }

  /**
   * The signed directory, fetched through the authentication server and verified with the pinned key (once per
   * client).
   */
  directory(): Promise<Directory> {
    this.#directory ??= fetchDirectory(this.#http, this.wallet.auth_base_url, this.wallet.directory_key as JWK);
    this.#directory.catch(() => (this.#directory = undefined));
    return this.#directory;
  }

  /** The body of an approval, exposed so tests can tamper with each part. */
  async approvalBody(
    request: VerifiedRequest,
    pin: string,
    overrides: Partial<ApprovalPayload> = {},
  ): Promise<{ sealed_credential: string; approval: string; pin: string }> {
    // The issuer's key from the directory (fetched once per client; a rotated key still opens as `previous`).
    const issuerKey = (await (await this.directory()).keys(this.wallet.issuer.id)).current('enc');
    const jkt = await thumbprint(toPublicJwk(this.wallet.device_private_jwk as JWK));
    const signed = await approvalFor(
      request.view,
      { privateKey: await this.#deviceKey, jkt },
      issuerKey,
      pin,
      overrides,
    );
    return { sealed_credential: this.wallet.sealed_credential, ...signed };
  }

  /** Step 408 at the terminal: the issuer's signed authorization, verified with the issuer's key from the directory. */
  async verifyAuthorization(jws: string, view: TerminalRequestPayload): Promise<AuthorizationPayload> {
    return verifyAuthorizationFor(
      jws,
      view,
      this.wallet.issuer.id,
      await (await this.directory()).keys(this.wallet.issuer.id),
    );
  }

  async decline(request: VerifiedRequest): Promise<TerminalOutcome> {
    return this.#call('POST', `/v1/terminal/payment-requests/${request.view.rid}/decline`, terminalOutcome, {});
  }

  /** Step 408: the final state of a request this wallet answered. */
  async outcome(id: string): Promise<TerminalOutcome> {
    return this.#call('GET', `/v1/terminal/payment-requests/${encodeURIComponent(id)}/outcome`, terminalOutcome);
  }

  /**
   * The state of this wallet's credential: active (with the PIN tries left), locked, blocked or
   * revoked, as the authentication server and the issuer's registry hold it. Answers for a revoked
   * credential too.
   */
  async credentialStatus(): Promise<TerminalCredentialStatus> {
    return this.#call('GET', '/v1/terminal/credential', terminalCredentialStatus);
  }

  /** Sends a raw approve body (for tests of refusals). */
  async sendApproval(id: string, body: unknown): Promise<TerminalOutcome> {
    return this.#call('POST', `/v1/terminal/payment-requests/${id}/approve`, terminalOutcome, body);
  }

  close(): Promise<void> {
    return this.#http.close();
  }
}
