/**
 * A stored wallet made without any server: a real device key and a sealed credential whose
 * protected header binds that key (as the authentication server's step 304 does), sealed to a
 * throwaway key. Enough for the storage to accept it; no server would.
 */
import { exportJWK, generateKeyPair } from 'jose';
import { generateKeyEntry, newId, sealJson, thumbprint, typ } from '@kessai/protocol';
import type { StoredWallet } from '@kessai/sdk';

/** Not a real certificate: the storage checks only that it is PEM. */
export const fakeCaCertPem = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUFakeFakeFakeFakeFakeFakeFakeFakeFakeFakeFake=\n-----END CERTIFICATE-----\n';

export async function fakeStoredWallet(): Promise<StoredWallet> {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const credentialId = newId('cred');
  const { entry } = await generateKeyEntry('enc');
  const sealed = await sealJson({ v: 1 }, entry, { typ: typ.credential, cred: credentialId, iss: 'sakura-bank', dkt: await thumbprint(await exportJWK(publicKey)) });
  return {
    version: 2,
    auth_base_url: 'https://127.0.0.1:9',
    credential_id: credentialId,
    sealed_credential: sealed,
    issuer: { id: 'sakura-bank', name: 'Sakura Demo Bank', conversion_mode: 'reseal' },
    auth_jwks_uri: 'https://127.0.0.1:9/.well-known/jwks.json',
    directory_key: { ...(await exportJWK((await generateKeyPair('ES256', { extractable: true })).publicKey)) },
    device_private_jwk: { ...(await exportJWK(privateKey)), alg: 'ES256' },
  };
}
