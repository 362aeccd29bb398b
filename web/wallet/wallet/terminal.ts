/**
 * The terminal protocol from the browser (docs/protocol.md, steps 301–305, 403–404, 408). The page
 * is served from the wallet's own origin (apps/wallet/src/host.ts), which also serves its
 * configuration: the authentication server's URL and the directory key built in to this wallet.
 * Every issuer key comes from the directory that key verifies, relayed by the authentication
 * server but never chosen by it. Every call carries a device proof (`Authorization: KessaiDevice
 * <jwt>`) signed with the non-extractable device key; payment requests arrive over server-sent
 * events read with fetch (EventSource cannot send the proof); each pushed or fetched view is
 * verified with the authentication server's keys before anything is shown; an approval is a JWS by
 * the device key and the PIN a JWE to the issuer's key from the directory.
 */
import { KeyRing, keyEntryFromJwk, readHeader, signDeviceProof, thumbprint, verifyJson, type JWK } from '../../../packages/protocol/src/crypto.ts';
import { checkCredentialBinding } from '../../../packages/protocol/src/checks/credential-binding.ts';
import { typ } from '../../../packages/protocol/src/crypto.ts';
import { Directory, type DirectoryIssuer } from '../../../packages/protocol/src/directory.ts';
import { newId } from '../../../packages/protocol/src/ids.ts';
import { limits } from '../../../packages/protocol/src/limits.ts';
import { terminalRequestPayload, type TerminalRequestPayload } from '../../../packages/protocol/src/messages.ts';
import { approvalFor, checkEnrollmentAnswer, enrollmentBody, verifyAuthorizationFor, type DevicePublicKey } from '../../../packages/protocol/src/terminal.ts';
import { api, ApiError } from '../../shared/api.ts';
import { loadWallet, saveWallet, type IssuerSummary, type WalletRecord } from './store.ts';

/** What the wallet's own origin tells it: where the authentication server is, and the directory key it trusts. */
export interface WalletHostConfig {
  auth_base_url: string;
  directory_key: JWK;
}

let hostConfig: Promise<WalletHostConfig> | undefined;

/** Reads ./config.json from the wallet's own origin once. */
export function walletHostConfig(): Promise<WalletHostConfig> {
  hostConfig ??= api<WalletHostConfig>('GET', new URL('./config.json', location.href).href);
  hostConfig.catch(() => (hostConfig = undefined));
  return hostConfig;
}

/** The signed directory, fetched through the authentication server and verified with the built-in directory key. */
async function directory(): Promise<Directory> {
  const config = await walletHostConfig();
  const { directory: jws } = await api<{ directory: string }>('GET', `${config.auth_base_url}/v1/directory`);
  const key = (await keyEntryFromJwk({ ...config.directory_key, kid: String(config.directory_key.kid ?? 'directory'), use: 'sig', alg: 'ES256' })).publicKey;
  return Directory.verify(jws, key);
}

export interface EnrollmentAnswer {
  credential_id: string;
  sealed_credential: string;
  issuer: IssuerSummary;
  registration: string;
  auth_jwks_uri: string;
  recovery_code: string;
}

export interface Outcome {
  id: string;
  status: string;
  decline_code: string | null;
  authorization: string | null;
  /** The credential re-sealed under a rotated key, when the answer carries one (stored by approve()). */
  sealed_credential?: string;
  /** After a wrong PIN the request stays pending: the tries left before the card or credential locks. */
  pin_tries_left?: number;
}

/**
 * Steps 301–305: the issuer is found in the directory; the PIN goes encrypted to it; the card data
 * goes over TLS to the authentication server (re-seal issuers) or sealed for the issuer here
 * (pass-through issuers). The answer is accepted only with the issuer's own receipt.
 */
export async function enroll(input: { holderName: string; cardNumber: string; expiry: string; pin: string; deviceJwk: DevicePublicKey }): Promise<EnrollmentAnswer & { auth_base_url: string }> {
  const config = await walletHostConfig();
  const found = await directory();
  const issuer: DirectoryIssuer = found.issuerForCard(input.cardNumber);
  const keys = await found.keys(issuer.id);
  const credentialId = newId('cred');
  const body = await enrollmentBody(issuer, keys, { credentialId, deviceJwk: input.deviceJwk, holderName: input.holderName, cardNumber: input.cardNumber, expiry: input.expiry, pin: input.pin });
  const answer = await api<EnrollmentAnswer>('POST', `${config.auth_base_url}/v1/enrollments`, { body });
  await checkEnrollmentAnswer(answer, issuer, keys, { credentialId, dkt: await thumbprint(input.deviceJwk) });
  return { ...answer, issuer: { id: issuer.id, name: issuer.name, conversion_mode: issuer.conversion_mode }, auth_base_url: config.auth_base_url };
}

async function keyRing(uri: string): Promise<KeyRing> {
  const response = await fetch(uri, { cache: 'no-store' });
  if (!response.ok) throw new Error(`the keys at ${uri} cannot be read (HTTP ${response.status})`);
  const set = (await response.json()) as { keys?: unknown[] };
  if (!Array.isArray(set.keys) || set.keys.length > 20) throw new Error(`the keys at ${uri} are not a JWKS`);
  return new KeyRing(await Promise.all(set.keys.map((jwk) => keyEntryFromJwk(jwk as JWK))));
}

export class Terminal {
  #wallet: WalletRecord;
  readonly #onRenewed: ((record: WalletRecord) => void) | undefined;
  #authKeys?: Promise<KeyRing>;
  #directory?: Promise<Directory> | undefined;

  /** `onRenewed` hears of the record stored with a re-sealed credential (key rotation). */
  constructor(wallet: WalletRecord, onRenewed?: (record: WalletRecord) => void) {
    this.#wallet = wallet;
    this.#onRenewed = onRenewed;
  }

  #url(path: string): string {
    return `${this.#wallet.auth_base_url}${path}`;
  }

  async #proof(method: string, path: string): Promise<Record<string, string>> {
    const jwt = await signDeviceProof(this.#wallet.device_key, { credentialId: this.#wallet.credential_id, method, path });
    return { authorization: `KessaiDevice ${jwt}` };
  }

  async #call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    return api<T>(method, this.#url(path), { headers: await this.#proof(method, path), ...(body === undefined ? {} : { body }) });
  }

  #issuerKeys(): Promise<KeyRing> {
    this.#directory ??= directory();
    this.#directory.catch(() => (this.#directory = undefined));
    return this.#directory.then((found) => found.keys(this.#wallet.issuer.id));
  }

  /** Checks the authentication server's signature on a view; only a verified view is shown. */
  async verify(jws: string): Promise<TerminalRequestPayload> {
    this.#authKeys ??= keyRing(this.#wallet.auth_jwks_uri);
    const keys = await this.#authKeys;
    const { value } = await verifyJson(jws, (kid) => keys.byKid(kid)?.publicKey, typ.requestView, 'approval_invalid');
    return terminalRequestPayload.parse(value);
  }

  /** Step 403 by link: a payment request id, or a payment link ending in one. */
  async fetch(idOrLink: string): Promise<TerminalRequestPayload> {
    const id = idOrLink.trim().replace(/[?#].*$/, '').split('/').filter(Boolean).pop() ?? '';
    if (!/^pr_[0-9a-hjkmnp-tv-z]{26}$/.test(id)) throw new Error('that is not a payment link or payment request id (pr_…)');
    const { request } = await this.#call<{ request: string }>('GET', `/v1/terminal/payment-requests/${id}`);
    return this.verify(request);
  }

  /**
   * Step 403 by push: reads the event stream until `signal` aborts, reconnecting (with a new proof)
   * when it drops. `onState` reports whether the stream is open.
   */
  async listen(signal: AbortSignal, onRequest: (view: TerminalRequestPayload) => void, onState: (state: 'connecting' | 'open' | 'retrying', detail?: string) => void): Promise<void> {
    const path = '/v1/terminal/events';
    let delay = 1000;
    while (!signal.aborted) {
      onState('connecting');
      try {
        const response = await fetch(this.#url(path), { headers: { accept: 'text/event-stream', ...(await this.#proof('GET', path)) }, signal, cache: 'no-store' });
        if (!response.ok || !response.body) {
          const problem = (await response.json().catch(() => ({}))) as { code?: string };
          throw new Error(problem.code ?? `HTTP ${response.status}`);
        }
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end: number;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            if (block.startsWith(': ready')) {
              onState('open');
              delay = 1000;
            }
            const data = block.split('\n').find((line) => line.startsWith('data: '));
            if (!data) continue;
            try {
              onRequest(await this.verify((JSON.parse(data.slice(6)) as { request: string }).request));
            } catch {
              // A view whose signature does not verify is never shown.
            }
          }
        }
        onState('retrying', 'the connection closed');
      } catch (err) {
        if (signal.aborted) return;
        onState('retrying', err instanceof Error ? err.message : String(err));
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 15_000);
    }
  }

  /** Step 404: the approval signed by the device key, and the PIN encrypted to the issuer's key from the directory. */
  async approve(view: TerminalRequestPayload, pin: string): Promise<Outcome> {
    const issuerKey = (await this.#issuerKeys()).current('enc');
    const jkt = await thumbprint(this.#wallet.device_public_jwk);
    const { approval, pin: pinBlock } = await approvalFor(view, { privateKey: this.#wallet.device_key, jkt }, issuerKey, pin);
    const sentAt = Date.now();
    try {
      const outcome = await this.#call<Outcome>('POST', `/v1/terminal/payment-requests/${view.rid}/approve`, { sealed_credential: this.#wallet.sealed_credential, approval, pin: pinBlock });
      if (outcome.status === 'authorizing') return await this.#settled(view.rid, sentAt, false);
      if (outcome.sealed_credential !== undefined) await this.#renew(outcome.sealed_credential);
      return outcome;
    } catch (err) {
      // The issuer retired the key this page's directory named: the next approval reads the directory again.
      if (err instanceof ApiError && err.code === 'key_retired') this.#directory = undefined;
      // No answer, or a 5xx: the approval may have been recorded. Ask, never report "not paid".
      if (!(err instanceof ApiError) || (err.status >= 500 && !['issuer_unavailable', 'deadline_exceeded', 'overloaded'].includes(err.code))) return this.#settled(view.rid, sentAt, true);
      throw err;
    }
  }

  /**
   * The outcome of an approval whose answer was lost or in doubt, asked for as the command-line
   * wallet asks (WalletClient.settledOutcome): `authorizing` after walletOutcomeWaitMs means "not
   * known yet", never "not paid"; after a lost answer, `pending` counts only once
   * walletApproveTimeoutMs has passed since the approval was sent.
   */
  async #settled(id: string, sentAt: number, lost: boolean): Promise<Outcome> {
    const until = Date.now() + limits.walletOutcomeWaitMs;
    let outcome: Outcome | undefined;
    for (;;) {
      try {
        outcome = await this.#call<Outcome>('GET', `/v1/terminal/payment-requests/${id}/outcome`);
      } catch (err) {
        if (err instanceof ApiError && err.status < 500) throw err;
      }
      const settled = outcome !== undefined && outcome.status !== 'authorizing' && !(lost && outcome.status === 'pending' && Date.now() < sentAt + limits.walletApproveTimeoutMs + limits.approvalSaveWindowMs);
      if (settled || Date.now() >= until) break;
      await new Promise((resolve) => setTimeout(resolve, limits.walletOutcomePollMs));
    }
    return outcome ?? { id, status: 'authorizing', decline_code: null, authorization: null };
  }

  /**
   * Key rotation: the credential handed back re-sealed under the current key replaces the stored
   * one, if it is bound to this credential, issuer and device key (the credential-binding rule).
   */
  async #renew(sealed: string): Promise<void> {
    const now = readHeader(this.#wallet.sealed_credential, 'credential_invalid');
    checkCredentialBinding(readHeader(sealed, 'credential_invalid'), { credentialId: String(now.cred), issuerId: String(now.iss), deviceJkt: String(now.dkt) });
    const stored = await loadWallet();
    if (stored?.credential_id !== this.#wallet.credential_id) return;
    this.#wallet = { ...stored, sealed_credential: sealed };
    await saveWallet(this.#wallet);
    this.#onRenewed?.(this.#wallet);
  }

  /** Step 408: the issuer's own signature on an approved payment, with its key from the directory. */
  async issuerSigned(view: TerminalRequestPayload, authorization: string): Promise<boolean> {
    try {
      await verifyAuthorizationFor(authorization, view, this.#wallet.issuer.id, await this.#issuerKeys());
      return true;
    } catch {
      return false;
    }
  }

  decline(view: TerminalRequestPayload): Promise<Outcome> {
    return this.#call<Outcome>('POST', `/v1/terminal/payment-requests/${view.rid}/decline`, {});
  }
}
