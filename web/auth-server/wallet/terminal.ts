/**
 * The terminal protocol from the browser (docs/protocol.md, steps 301–305, 403–404, 408): every
 * call carries a device proof (`Authorization: KessaiDevice <jwt>`) signed with the
 * non-extractable device key; payment requests arrive over server-sent events read with fetch
 * (EventSource cannot send the proof); each pushed or fetched view is verified with the
 * authentication server's keys before anything is shown; an approval is a JWS by the device key and
 * the PIN a JWE to the issuer's key, fetched from the issuer itself, never from the broker.
 */
import { base64url, KeyRing, keyEntryFromJwk, sealJson, signDeviceProof, signJson, typ, verifyJson, type JWK } from '../../../packages/protocol/src/crypto.ts';
import { itemsHash, terminalRequestPayload, type TerminalRequestPayload } from '../../../packages/protocol/src/messages.ts';
import { api } from '../../shared/api.ts';
import type { DevicePublicJwk } from './keys.ts';
import type { IssuerSummary, WalletRecord } from './store.ts';

export interface EnrollmentAnswer {
  credential_id: string;
  sealed_credential: string;
  issuer: IssuerSummary;
  auth_jwks_uri: string;
  recovery_code: string;
}

export interface Outcome {
  id: string;
  status: string;
  decline_code: string | null;
  authorization: string | null;
}

/** Steps 303–305: the card data goes to the authentication server once, over TLS, to be sealed. */
export function enroll(input: { holderName: string; cardNumber: string; expiry: string; deviceJwk: DevicePublicJwk }): Promise<EnrollmentAnswer> {
  return api<EnrollmentAnswer>('POST', '/v1/enrollments', {
    body: { holder_name: input.holderName, card_number: input.cardNumber, expiry: input.expiry, device_jwk: input.deviceJwk },
  });
}

async function keyRing(uri: string): Promise<KeyRing> {
  const response = await fetch(uri, { cache: 'no-store' });
  if (!response.ok) throw new Error(`the keys at ${uri} cannot be read (HTTP ${response.status})`);
  const set = (await response.json()) as { keys?: unknown[] };
  if (!Array.isArray(set.keys) || set.keys.length > 20) throw new Error(`the keys at ${uri} are not a JWKS`);
  return new KeyRing(await Promise.all(set.keys.map((jwk) => keyEntryFromJwk(jwk as JWK))));
}

export class Terminal {
  readonly #wallet: WalletRecord;
  #authKeys?: Promise<KeyRing>;
  #issuerKeys?: Promise<KeyRing>;

  constructor(wallet: WalletRecord) {
    this.#wallet = wallet;
  }

  async #proof(method: string, path: string): Promise<Record<string, string>> {
    const jwt = await signDeviceProof(this.#wallet.device_key, { credentialId: this.#wallet.credential_id, method, path });
    return { authorization: `KessaiDevice ${jwt}` };
  }

  async #call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    return api<T>(method, path, { headers: await this.#proof(method, path), ...(body === undefined ? {} : { body }) });
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
        const response = await fetch(path, { headers: { accept: 'text/event-stream', ...(await this.#proof('GET', path)) }, signal, cache: 'no-store' });
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

  /** Step 404: the approval signed by the device key, and the PIN encrypted to the issuer. */
  async approve(view: TerminalRequestPayload, pin: string): Promise<Outcome> {
    if (!/^[0-9]{4,12}$/.test(pin)) throw new Error('a PIN is 4 to 12 digits');
    const nonce = new Uint8Array(18);
    crypto.getRandomValues(nonce);
    const payload = { rid: view.rid, mid: view.merchant.id, amt: view.amount_minor, cur: view.currency, ih: await itemsHash(view.line_items), iat: Math.floor(Date.now() / 1000), nonce: base64url(nonce) };
    const approval = await signJson(payload, this.#wallet.device_key, { typ: typ.approval });
    this.#issuerKeys ??= keyRing(this.#wallet.issuer.jwks_uri);
    const issuerKey = (await this.#issuerKeys).current('enc');
    const pinJwe = await sealJson({ pin, rid: view.rid }, issuerKey, { typ: typ.pin, rid: view.rid });
    return this.#call<Outcome>('POST', `/v1/terminal/payment-requests/${view.rid}/approve`, { sealed_credential: this.#wallet.sealed_credential, approval, pin: pinJwe });
  }

  decline(view: TerminalRequestPayload): Promise<Outcome> {
    return this.#call<Outcome>('POST', `/v1/terminal/payment-requests/${view.rid}/decline`, {});
  }
}
