/**
 * The cryptography one payment needs, measured alone in this process: the ceiling no amount of
 * HTTP or database tuning can pass. Same algorithms and key types as the system (P-256 ECDH-ES,
 * ES256, the keyed PIN verification of apps/settlement-server/src/pin.ts).
 */
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { generateKeyEntry, itemsHash, KeyRing, openJson, sealJson, Secret, signDeviceProof, signJson, typ, verifyDeviceProof, verifyJson } from '@kessai/protocol';
import { filePinKeys } from '@kessai/settlement-server';

export interface CryptoCeiling {
  msPerPayment: number;
  paymentsPerSecondCeiling: number;
  breakdownMs: Record<string, number>;
}

export async function measureCrypto(iterations: number, onProgress: (done: number, total: number) => void): Promise<CryptoCeiling> {
  // A device key as a wallet makes one (ES256), with WebCrypto: jose stays in packages/protocol and packages/sdk.
  const device = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const { kty, crv, x, y } = await crypto.subtle.exportKey('jwk', device.publicKey);
  const deviceJwk = { kty: kty!, crv: crv!, x: x!, y: y! };
  const cipher1 = new KeyRing([(await generateKeyEntry('enc')).entry]);
  const cipher2 = new KeyRing([(await generateKeyEntry('enc')).entry]);
  const signing = (await generateKeyEntry('sig')).entry;
  const pinKeys = filePinKeys([{ kid: 'pin-verification-bench', key: randomBytes(32) }]);
  const verifier = pinKeys.derive('lookup', new Secret('7392'));
  const items = [{ description: 'Tenugui', quantity: 1, unit_price_minor: '100' }];
  const plaintext = { v: 1, holder_name: 'TARO YAMADA', card_number: '4242424242424242', expiry: '12/34', device_jwk: deviceJwk };
  const header = { typ: typ.credential, cred: 'cred_x', iss: 'sakura-bank', dkt: 'x' };
  const sealed = await sealJson(plaintext, cipher1.current('enc'), header);
  const breakdown: Record<string, number> = {};
  const time = async (label: string, fn: () => Promise<unknown>) => {
    const t0 = performance.now();
    const value = await fn();
    breakdown[label] = (breakdown[label] ?? 0) + performance.now() - t0;
    return value;
  };
  for (let i = 0; i < iterations; i++) {
    const proof = (await time('terminal: device proofs (2)', async () => {
      await signDeviceProof(device.privateKey, { credentialId: 'cred_x', method: 'GET', path: '/p' });
      return signDeviceProof(device.privateKey, { credentialId: 'cred_x', method: 'POST', path: '/a' });
    })) as string;
    const view = (await time('auth: sign payment-request view', () => signJson({ rid: 'pr_x', items }, signing.privateKey!, { typ: typ.requestView }))) as string;
    await time('terminal: verify view', () => verifyJson(view, signing.publicKey, typ.requestView, 'approval_invalid'));
    const approval = (await time('terminal: items hash + sign approval', async () => signJson({ rid: 'pr_x', ih: await itemsHash(items) }, device.privateKey, { typ: typ.approval }))) as string;
    const pin = (await time('terminal: seal PIN', () => sealJson({ pin: '7392', rid: 'pr_x' }, cipher2.current('enc'), { typ: typ.pin, rid: 'pr_x' }))) as string;
    await time('auth: verify device proofs (2)', async () => {
      const expected = { credentialId: 'cred_x', method: 'POST', path: '/a', maxAgeMs: 120_000, skewMs: 60_000 };
      await verifyDeviceProof(proof, device.publicKey, expected);
      await verifyDeviceProof(proof, device.publicKey, expected);
    });
    await time('auth: verify approval', () => verifyJson(approval, device.publicKey, typ.approval, 'approval_invalid'));
    const resealed = (await time('auth: re-seal (open cipher 1, seal cipher 2)', async () => {
      const opened = await openJson(sealed, cipher1, typ.credential, 'credential_invalid');
      return sealJson(opened.value, cipher2.current('enc'), header);
    })) as string;
    await time('settlement: open credential', () => openJson(resealed, cipher2, typ.credential, 'credential_invalid'));
    await time('settlement: verify approval', () => verifyJson(approval, device.publicKey, typ.approval, 'approval_invalid'));
    await time('settlement: open PIN', () => openJson(pin, cipher2, typ.pin, 'pin_invalid'));
    await time('settlement: keyed PIN verify', async () => pinKeys.matches(verifier, 'lookup', new Secret('7392')));
    const authorization = (await time('settlement: sign authorization', () => signJson({ rid: 'pr_x' }, signing.privateKey!, { typ: typ.authorization }))) as string;
    await time('auth + shop: verify authorization (2)', async () => {
      await verifyJson(authorization, signing.publicKey, typ.authorization, 'issuer_refused');
      await verifyJson(authorization, signing.publicKey, typ.authorization, 'issuer_refused');
    });
    onProgress(i + 1, iterations);
  }
  const breakdownMs = Object.fromEntries(Object.entries(breakdown).map(([k, v]) => [k, v / iterations]));
  const msPerPayment = Object.values(breakdownMs).reduce((a, b) => a + b, 0);
  return { msPerPayment, paymentsPerSecondCeiling: 1000 / msPerPayment, breakdownMs };
}
