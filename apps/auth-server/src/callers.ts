/**
 * Who is calling: a merchant (API key, stored as its SHA-256: the current one, or one rolled away
 * from until its overlap ends, merchants.ts) or a terminal (a device proof: a
 * short-lived JWT signed by the device key, bound to method and path, used once).
 */
import type { FastifyRequest } from 'fastify';
import { deviceProofSubject, idPattern, importPublicKey, KessaiError, limits, sha256Base64url, verifyDeviceProof, type JWK } from '@kessai/protocol';
import { setAuditActor, type Db } from '@kessai/service';
import type { PaymentRequestRow } from './payment-requests.ts';

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

/** The merchant whose key (current, or rolled away from and still in its overlap) hashes to $1: at most one row. */
const merchantByKeyHash = `select id, name, api_key_livemode as livemode from merchants where api_key_hash = $1
     union all
     select m.id, m.name, k.livemode from merchant_previous_api_keys k join merchants m on m.id = k.merchant_id
      where k.key_hash = $1 and k.expires_at > now()
     limit 1`;

/** The SHA-256 of the bearer key of `request`; unauthenticated when there is none of the right form. */
async function apiKeyHashOf(request: FastifyRequest): Promise<string> {
  const header = request.headers.authorization;
  const match = typeof header === 'string' ? /^Bearer ([A-Za-z0-9_-]{16,128})$/.exec(header) : null;
  if (!match?.[1]) throw new KessaiError('unauthenticated');
  return sha256Base64url(match[1]);
}

export async function authenticateMerchant(db: Db, request: FastifyRequest): Promise<MerchantCaller> {
  const [merchant] = await db.query<MerchantCaller>(merchantByKeyHash, [await apiKeyHashOf(request)]);
  if (!merchant) throw new KessaiError('unauthenticated');
  setAuditActor(request, `merchant:${merchant.id}`);
  return merchant;
}

export interface IdempotencyClaim {
  key: string;
  requestHash: string;
  lockedUntil: Date;
}

/**
 * authenticateMerchant and the Idempotency-Key's claim (idempotency.ts) in one statement: the
 * key is claimed in the caller's scope (idempotencyScope) only if the API key names a merchant.
 * `claimed` false: the key was there already (idempotent() reads what it holds). With
 * `paymentRequestId`, the same statement reads that request as it is stored (`paymentRequest`,
 * undefined when there is none): the caller checks it is the merchant's.
 */
export async function authenticateMerchantAndClaim(
  db: Db,
  request: FastifyRequest,
  claim: IdempotencyClaim,
  paymentRequestId?: string,
): Promise<{ merchant: MerchantCaller; claimed: boolean; paymentRequest: PaymentRequestRow | undefined }> {
  type Row = PaymentRequestRow & { caller_id: string; caller_name: string; caller_livemode: boolean; claimed: boolean };
  const [row] = await db.query<Row>(
    `with m as (${merchantByKeyHash}),
     claim as (insert into idempotency_keys (merchant_id, key, request_hash, state, locked_until)
               select case when livemode then id || '/live' else id end, $2, $3, 'in_progress', $4 from m
               on conflict do nothing returning key)
     select m.id as caller_id, m.name as caller_name, m.livemode as caller_livemode,
            exists (select 1 from claim) as claimed, p.*
       from m left join payment_requests p on p.id = $5`,
    [await apiKeyHashOf(request), claim.key, claim.requestHash, claim.lockedUntil, paymentRequestId ?? null],
  );
  if (!row) throw new KessaiError('unauthenticated');
  const { caller_id: id, caller_name: name, caller_livemode: livemode, claimed, ...stored } = row;
  setAuditActor(request, `merchant:${id}`);
  return { merchant: { id, name, livemode }, claimed, paymentRequest: stored.id ? stored : undefined };
}

export interface TerminalCaller {
  credentialId: string;
  issuerId: string;
  deviceJwk: JWK;
  deviceJkt: string;
}

export const deviceProofScheme = 'KessaiDevice';

/** What a credential's record says of its device, which never changes for its id (enrollment writes it once). */
interface DeviceRecord {
  issuerId: string;
  deviceJwk: JWK;
  deviceJkt: string;
  key: Awaited<ReturnType<typeof importPublicKey>>;
}

/**
 * Per database handle, the device records read so far, by credential id (at most
 * limits.deviceKeyCacheMax, the oldest dropped first): a device proof is verified without reading
 * the credential first. Only what never changes is kept — the status is read with each proof.
 */
const deviceRecords = new WeakMap<Db, Map<string, DeviceRecord>>();

async function deviceRecordOf(db: Db, credentialId: string): Promise<DeviceRecord | undefined> {
  const cache = deviceRecords.get(db) ?? new Map<string, DeviceRecord>();
  deviceRecords.set(db, cache);
  const cached = cache.get(credentialId);
  if (cached) return cached;
  const [credential] = await db.query<{ issuer_id: string; device_jwk: JWK; device_jkt: string }>(
    'select issuer_id, device_jwk, device_jkt from credentials where id = $1',
    [credentialId],
  );
  if (!credential) return undefined;
  const key = await importPublicKey(credential.device_jwk, 'ES256');
  const { issuer_id: issuerId, device_jwk: deviceJwk, device_jkt: deviceJkt } = credential;
  const record = { issuerId, deviceJwk, deviceJkt, key };
  if (cache.size >= limits.deviceKeyCacheMax) cache.delete(cache.keys().next().value!);
  cache.set(credentialId, record);
  return record;
}

/**
 * Spends a verified proof's jti and reads the credential's status, in one statement: `fresh` is
 * false when the jti was spent already (a replay). No row: the credential is gone.
 */
async function spendProof(db: Db, credentialId: string, jti: string, expiresAt: Date) {
  const [row] = await db.query<{ status: string; fresh: boolean }>(
    `with spent as (insert into device_proofs (jti, credential_id, expires_at) values ($1, $2, $3)
                    on conflict do nothing returning jti)
     select status, exists (select 1 from spent) as fresh from credentials where id = $2`,
    [jti, credentialId, expiresAt],
  );
  return row;
}

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
  const device = await deviceRecordOf(db, credentialId);
  if (!device) throw new KessaiError('unauthenticated');
  const path = request.url.split('?')[0] ?? request.url;
  const [maxAgeMs, skewMs] = [limits.deviceProofAgeMsMax, limits.clockSkewMs];
  const { method } = request;
  const proof = await verifyDeviceProof(token, device.key, { credentialId, method, path, maxAgeMs, skewMs });
  const credential = await spendProof(db, credentialId, proof.jti, new Date(proof.iat * 1000 + maxAgeMs + skewMs));
  if (!credential) throw new KessaiError('unauthenticated');
  if (!credential.fresh) throw new KessaiError('unauthenticated', 'device proof already used');
  setAuditActor(request, `credential:${credentialId}`);
  const status = credential.status === 'revoked' ? 'revoked' : 'active';
  if (status === 'revoked' && options.revoked !== 'allowed') throw new KessaiError('credential_revoked');
  return { credentialId, issuerId: device.issuerId, deviceJwk: device.deviceJwk, deviceJkt: device.deviceJkt, status };
}

/** Whether the credential is active now (a terminal's event stream reads it before each write it was not told of). */
export async function credentialIsActive(db: Db, credentialId: string): Promise<boolean> {
  const [row] = await db.query<{ status: string }>('select status from credentials where id = $1', [credentialId]);
  return row?.status === 'active';
}
