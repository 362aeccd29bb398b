/**
 * Who is calling: a merchant (API key, stored as its SHA-256: the current one, or one rolled away
 * from until its overlap ends, merchants.ts) or a terminal (a device proof: a
 * short-lived JWT signed by the device key, bound to method and path, used once).
 */
import type { FastifyRequest } from 'fastify';
import { deviceProofSubject, idPattern, importPublicKey, KessaiError, limits, sha256Base64url, verifyDeviceProof, type JWK } from '@kessai/protocol';
import { setAuditActor, sqlState, type Db } from '@kessai/service';

export interface MerchantCaller {
  id: string;
  name: string;
  /** The mode of the key it called with (sk_live_… true, sk_test_… or a key older than modes false). */
  livemode: boolean;
}

/**
 * Whose idempotency keys a caller's key shares: the merchant's in test mode (as before modes
 * existed), `<id>/live` in live mode, so a key of one mode never replays the other mode's answer.
 */
export const idempotencyScope = (merchant: MerchantCaller): string => (merchant.livemode ? `${merchant.id}/live` : merchant.id);

export async function authenticateMerchant(db: Db, request: FastifyRequest): Promise<MerchantCaller> {
  const header = request.headers.authorization;
  const match = typeof header === 'string' ? /^Bearer ([A-Za-z0-9_-]{16,128})$/.exec(header) : null;
  if (!match?.[1]) throw new KessaiError('unauthenticated');
  const hash = await sha256Base64url(match[1]);
  const [merchant] = await db.query<MerchantCaller>(
    `select id, name, api_key_livemode as livemode from merchants where api_key_hash = $1
     union all
     select m.id, m.name, k.livemode from merchant_previous_api_keys k join merchants m on m.id = k.merchant_id where k.key_hash = $1 and k.expires_at > now()
     limit 1`,
    [hash],
  );
  if (!merchant) throw new KessaiError('unauthenticated');
  setAuditActor(request, `merchant:${merchant.id}`);
  return merchant;
}

export interface TerminalCaller {
  credentialId: string;
  issuerId: string;
  deviceJwk: JWK;
  deviceJkt: string;
}

export const deviceProofScheme = 'KessaiDevice';

/**
 * Verifies the device proof (once per proof) and answers the credential it names. A revoked
 * credential is refused with credential_revoked, unless `revoked: 'allowed'` (its own status, which
 * it may ask for after a revocation); `status` tells which.
 */
export async function authenticateTerminal(
  db: Db,
  request: FastifyRequest,
  options: { revoked?: 'refused' | 'allowed' } = {},
): Promise<TerminalCaller & { status: 'active' | 'revoked' }> {
  const header = request.headers.authorization;
  const token = typeof header === 'string' && header.startsWith(`${deviceProofScheme} `) ? header.slice(deviceProofScheme.length + 1) : undefined;
  if (!token || token.length > limits.joseLengthMax) throw new KessaiError('unauthenticated');
  const credentialId = deviceProofSubject(token);
  if (!credentialId || !idPattern('cred').test(credentialId)) throw new KessaiError('unauthenticated');
  const [credential] = await db.query<{ id: string; issuer_id: string; device_jwk: JWK; device_jkt: string; status: string }>('select id, issuer_id, device_jwk, device_jkt, status from credentials where id = $1', [credentialId]);
  if (!credential) throw new KessaiError('unauthenticated');
  const key = await importPublicKey(credential.device_jwk, 'ES256');
  const path = request.url.split('?')[0] ?? request.url;
  const proof = await verifyDeviceProof(token, key, { credentialId, method: request.method, path, maxAgeMs: limits.deviceProofAgeMsMax, skewMs: limits.clockSkewMs });
  try {
    await db.query('insert into device_proofs (jti, credential_id, expires_at) values ($1, $2, $3)', [proof.jti, credentialId, new Date((proof.iat * 1000) + limits.deviceProofAgeMsMax + limits.clockSkewMs)]);
  } catch (err) {
    if (sqlState(err) === '23505') throw new KessaiError('unauthenticated', 'device proof already used');
    throw err;
  }
  setAuditActor(request, `credential:${credentialId}`);
  const status = credential.status === 'revoked' ? 'revoked' : 'active';
  if (status === 'revoked' && options.revoked !== 'allowed') throw new KessaiError('credential_revoked');
  const { issuer_id: issuerId, device_jwk: deviceJwk, device_jkt: deviceJkt } = credential;
  return { credentialId, issuerId, deviceJwk, deviceJkt, status };
}
