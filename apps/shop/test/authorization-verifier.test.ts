/**
 * Step 408 at the shop: the AuthorizationVerifier accepts only what the configured issuer signed
 * for this request, merchant, amount and currency, with keys fetched from the issuer's JWKS.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { newId, typ } from '@kessai/protocol';
import { AuthorizationVerificationError, AuthorizationVerifier, jwksCooldownMs, jwksCacheMaxAgeMs, type AuthorizationRefusal } from '@kessai/sdk';
import { FakeIssuer, FakePeers } from './fakes.ts';

let peers: FakePeers;
let issuer: FakeIssuer;
const verifiers: AuthorizationVerifier[] = [];
const order = { rid: newId('pr'), mid: newId('mer'), amountMinor: 12_345n, currency: 'JPY' as const };
const signed = { rid: order.rid, mid: order.mid, amt: '12345', cur: 'JPY' as const };

beforeAll(async () => {
  peers = await FakePeers.start();
  issuer = await FakeIssuer.create('issuer-a');
});
afterAll(async () => {
  await Promise.all(verifiers.map((v) => v.close()));
  await peers.close();
});
afterEach(() => {
  peers.jwks = { keys: [issuer.key.publicJwk] };
  peers.jwksFetches = 0;
});

function verifier(options: { now?: () => number; caCertPem?: string; issuers?: Record<string, string> } = {}): AuthorizationVerifier {
  peers.jwks = { keys: [issuer.key.publicJwk] };
  const created = new AuthorizationVerifier({ issuers: options.issuers ?? { 'issuer-a': peers.jwksUri }, caCertPem: options.caCertPem ?? peers.caCertPem, ...(options.now ? { now: options.now } : {}) });
  verifiers.push(created);
  return created;
}

async function refusal(promise: Promise<unknown>): Promise<AuthorizationRefusal> {
  const error = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(AuthorizationVerificationError);
  return (error as AuthorizationVerificationError).reason;
}

describe('AuthorizationVerifier', () => {
  it('accepts an authorization the issuer signed for this request and returns its payload', async () => {
    const payload = await verifier().verify(await issuer.sign(signed), order);
    expect(payload).toMatchObject({ iss: 'issuer-a', rid: order.rid, mid: order.mid, amt: '12345', cur: 'JPY', decision: 'approved' });
  });

  it('returns a signed decline as it is: the caller decides what a decline means', async () => {
    const payload = await verifier().verify(await issuer.sign({ ...signed, decision: 'declined', code: 'insufficient_funds' }), order);
    expect(payload.decision).toBe('declined');
    expect(payload.code).toBe('insufficient_funds');
  });

  it("refuses a JWS signed by a key that is not in the issuer's JWKS", async () => {
    const stranger = await FakeIssuer.create('issuer-a');
    expect(await refusal(verifier().verify(await stranger.sign(signed), order))).toBe('key_unknown');
  });

  it("refuses a JWS signed by another key under the kid of the issuer's key", async () => {
    const stranger = await FakeIssuer.create('issuer-a');
    const forged = await stranger.sign(signed, { kid: issuer.key.kid });
    expect(await refusal(verifier().verify(forged, order))).toBe('signature_invalid');
  });

  it('refuses an authorization signed for another amount', async () => {
    const jws = await issuer.sign({ ...signed, amt: '12344' });
    expect(await refusal(verifier().verify(jws, order))).toBe('mismatch');
  });

  it('refuses an authorization for another payment request, merchant or currency', async () => {
    const v = verifier();
    for (const change of [{ rid: newId('pr') }, { mid: newId('mer') }, { cur: 'USD' as const }]) {
      expect(await refusal(v.verify(await issuer.sign({ ...signed, ...change }), order))).toBe('mismatch');
    }
  });

  it('refuses an issuer the shop has not configured, even with a valid signature', async () => {
    const other = await FakeIssuer.create('issuer-b');
    expect(await refusal(verifier().verify(await other.sign(signed), order))).toBe('issuer_unknown');
  });

  it('refuses a JWS of another kind (an approval typ) signed by the issuer key', async () => {
    const jws = await issuer.sign(signed, { typ: typ.approval });
    expect(await refusal(verifier().verify(jws, order))).toBe('signature_invalid');
  });

  it('refuses a signed payload that is not an authorization', async () => {
    const jws = await issuer.sign({ ...signed, decision: 'maybe' as 'approved' });
    expect(await refusal(verifier().verify(jws, order))).toBe('payload_invalid');
  });

  it('refuses a tampered payload', async () => {
    const [header, , signature] = (await issuer.sign(signed)).split('.');
    const other = Buffer.from(JSON.stringify({ iss: 'issuer-a', ...signed, amt: '1' })).toString('base64url');
    expect(await refusal(verifier().verify(`${header}.${other}.${signature}`, { ...order, amountMinor: 1n }))).toBe('signature_invalid');
  });

  it('refuses what is not a compact JWS', async () => {
    const v = verifier();
    for (const jws of ['', 'a.b', 'not.a.jws', `${Buffer.from('{}').toString('base64url')}.e30.AA`]) {
      expect(await refusal(v.verify(jws, order))).toBe('malformed');
    }
  });

  it('fetches the JWKS once and then serves from its cache', async () => {
    const v = verifier();
    for (let i = 0; i < 3; i++) await v.verify(await issuer.sign(signed), order);
    expect(peers.jwksFetches).toBe(1);
  });

  it('refetches the JWKS for an unknown kid at most once per cooldown, and then finds a rotated key', async () => {
    let now = 1_000_000;
    const v = verifier({ now: () => now });
    await v.verify(await issuer.sign(signed), order);
    const rotated = await FakeIssuer.create('issuer-a');
    const jws = await rotated.sign(signed);

    now += jwksCooldownMs;
    expect(await refusal(v.verify(jws, order))).toBe('key_unknown'); // refetched: not published yet
    expect(peers.jwksFetches).toBe(2);
    peers.jwks = { keys: [rotated.key.publicJwk, issuer.key.publicJwk] };
    expect(await refusal(v.verify(jws, order))).toBe('key_unknown'); // inside the cooldown: no fetch
    expect(peers.jwksFetches).toBe(2);

    now += jwksCooldownMs;
    await expect(v.verify(jws, order)).resolves.toMatchObject({ rid: order.rid });
    expect(peers.jwksFetches).toBe(3);
  });

  it('refetches a stale JWKS, and keeps using the stale keys while the issuer is unreachable', async () => {
    let now = 1_000_000;
    const v = verifier({ now: () => now });
    await v.verify(await issuer.sign(signed), order);
    now += jwksCacheMaxAgeMs;
    await v.verify(await issuer.sign(signed), order);
    expect(peers.jwksFetches).toBe(2);

    now += jwksCacheMaxAgeMs;
    peers.jwks = { keys: 'broken' as unknown as [] };
    await expect(v.verify(await issuer.sign(signed), order)).resolves.toMatchObject({ rid: order.rid });
  });

  it('reports unreachable issuer keys as transient', async () => {
    const v = verifier({ issuers: { 'issuer-a': 'https://127.0.0.1:1/jwks.json' } });
    const error = await v.verify(await issuer.sign(signed), order).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(AuthorizationVerificationError);
    expect((error as AuthorizationVerificationError).reason).toBe('jwks_unavailable');
    expect((error as AuthorizationVerificationError).transient).toBe(true);
  });

  it('does not trust a JWKS server whose certificate is not from the configured CA', async () => {
    const elsewhere = await FakePeers.start(); // another dev CA
    try {
      const v = verifier({ caCertPem: elsewhere.caCertPem });
      expect(await refusal(v.verify(await issuer.sign(signed), order))).toBe('jwks_unavailable');
    } finally {
      await elsewhere.close();
    }
  });

  it('skips encryption keys and keys outside the allow-list in the JWKS', async () => {
    const v = verifier();
    peers.jwks = { keys: [{ ...issuer.key.publicJwk, use: 'enc' }, { ...issuer.key.publicJwk, alg: 'ES384' }] };
    expect(await refusal(v.verify(await issuer.sign(signed), order))).toBe('key_unknown');
  });

  it('is a TypeError to configure a jwks_uri that is not https, or no issuer at all', () => {
    expect(() => new AuthorizationVerifier({ issuers: { 'issuer-a': 'http://127.0.0.1/jwks.json' }, caCertPem: peers.caCertPem })).toThrow(TypeError);
    expect(() => new AuthorizationVerifier({ issuers: {}, caCertPem: peers.caCertPem })).toThrow(TypeError);
  });
});
