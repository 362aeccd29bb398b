/**
 * PIN verification as an issuer's HSM does it (IBM 3624 offset, Visa PVV in spirit): the account
 * store keeps a PIN verification value — HMAC-SHA-256 under the PIN verification key, over the
 * card's lookup hash and the PIN — and the key lives in the key store (a 0600 key file today,
 * behind PinKeyProvider so a KMS or an HSM can hold it), never in the database: a stolen database
 * yields no PIN, not even by trying all 10^4. The settlement server is the only role that ever
 * sees a PIN, inside one function's scope after opening the terminal's JWE. Wrong PINs are counted
 * per account and per credential (each locks at its limit until the operator unlocks it,
 * admin-cards.ts) and in a velocity record no unlock resets.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { limits, type DeclineCode, type Secret } from '@kessai/protocol';
import type { Logger, Queryable } from '@kessai/service';
import type { SqlPart } from './ledger/store.ts';

/** Where the PIN verification key lives. A KMS or HSM implements the same two calls. */
export interface PinKeyProvider {
  /** The verification value of `pin` for the card `panLookup`, under the current key. */
  derive(panLookup: string, pin: Secret<string>): string;
  /** Whether `pin` gives `stored` under the key `stored` names; constant time. */
  matches(stored: string, panLookup: string, pin: Secret<string>): boolean;
}

const prefix = 'pvv1';

/** The provider over key-file keys (current first; earlier ones still verify what they derived). */
export function filePinKeys(keys: ReadonlyArray<{ kid: string; key: Buffer }>): PinKeyProvider {
  const current = keys[0];
  if (!current) throw new TypeError('filePinKeys needs at least one key');
  const mac = (key: Buffer, panLookup: string, pin: Secret<string>) => createHmac('sha256', key).update(`${panLookup}\u0000${pin.expose()}`).digest();
  return {
    derive: (panLookup, pin) => `${prefix}.${current.kid}.${mac(current.key, panLookup, pin).toString('base64url')}`,
    matches(stored, panLookup, pin) {
      const [kind, kid, value] = stored.split('.');
      const key = keys.find((k) => k.kid === kid);
      if (kind !== prefix || !key || value === undefined) return false;
      const expected = mac(key.key, panLookup, pin);
      const presented = Buffer.from(value, 'base64url');
      return presented.length === expected.length && timingSafeEqual(presented, expected);
    },
  };
}

/** True for a verifier of an earlier version (argon2id), which the seeder re-derives. */
export function isLegacyVerifier(stored: string): boolean {
  return !stored.startsWith(`${prefix}.`);
}

// ---- Attempt limits: per account (cards.pin_failures), per credential, and the velocity record ----

/** The credential a PIN came through, as the settlement server knows it from its registry. */
export interface PinHolder {
  credentialId: string;
  /** Thumbprint of the registered device key: what the per-credential count is keyed by. */
  deviceJkt: string;
}

export async function credentialPinLocked(tx: Queryable, holder: PinHolder): Promise<boolean> {
  const [row] = await tx.query<{ status: string }>('select status from credential_pin_limits where device_jkt = $1 for update', [holder.deviceJkt]);
  return row?.status === 'locked';
}

/** Wrong PINs of the card within pinFailuresWindowMs, whatever unlocks came between. */
export async function velocityExceeded(tx: Queryable, panLookup: string, now: Date): Promise<boolean> {
  return (await failuresInWindow(tx, panLookup, now)) >= limits.pinFailuresWindowMax;
}

/** The card's wrong PINs within pinFailuresWindowMs (the velocity record). */
export async function failuresInWindow(tx: Queryable, panLookup: string, now: Date): Promise<number> {
  const [row] = await tx.query<{ count: number }>('select count(*)::int as count from pin_failures where pan_lookup = $1 and at > $2', [panLookup, new Date(now.getTime() - limits.pinFailuresWindowMs)]);
  return row?.count ?? 0;
}

interface PinCard {
  pan_lookup: string;
  account_id: string;
  status: string;
  pin_failures: number;
}

/** A wrong PIN's decline, and — while neither the card, this credential nor the velocity record is locked by it — the tries left. */
export interface WrongPin {
  code: DeclineCode;
  triesLeft?: number;
}

/**
 * A wrong PIN: counts it against the account (pinAttemptsMax locks the card), the velocity record,
 * and the credential (pinAttemptsPerCredentialMax locks it) when it came through one; the account's
 * lock is named first. The tries left are the fewest any of the three allows.
 */
export async function countWrongPin(logger: Logger, tx: Queryable, card: PinCard, holder: PinHolder | undefined, now: Date): Promise<WrongPin> {
  const failures = card.pin_failures + 1;
  const locked = failures >= limits.pinAttemptsMax;
  await tx.query('update cards set pin_failures = $2, status = $3 where pan_lookup = $1', [card.pan_lookup, failures, locked ? 'locked' : card.status]);
  await tx.query('delete from pin_failures where pan_lookup = $1 and at <= $2', [card.pan_lookup, new Date(now.getTime() - limits.pinFailuresWindowMs)]);
  const [window] = await tx.query<{ count: number }>('with counted as (insert into pin_failures (pan_lookup, at) values ($1, $2) returning 1) select count(*)::int + 1 as count from pin_failures where pan_lookup = $1', [card.pan_lookup, now]);
  const row = holder ? await countForCredential(tx, holder, card.account_id) : undefined;
  const credentialLocked = row?.status === 'locked';
  logger.warn({ account: card.account_id, credential: holder?.credentialId, failures, credentialFailures: row?.failures, locked, credentialLocked }, 'wrong PIN');
  if (locked) return { code: 'pin_locked' };
  if (credentialLocked) return { code: 'credential_locked' };
  const triesLeft = Math.min(limits.pinAttemptsMax - failures, limits.pinFailuresWindowMax - (window?.count ?? 0), row ? limits.pinAttemptsPerCredentialMax - row.failures : Number.MAX_SAFE_INTEGER);
  return triesLeft > 0 ? { code: 'pin_incorrect', triesLeft } : { code: 'pin_incorrect' };
}

async function countForCredential(tx: Queryable, holder: PinHolder, accountId: string): Promise<{ failures: number; status: string } | undefined> {
  const [row] = await tx.query<{ failures: number; status: string }>(
    `insert into credential_pin_limits as l (device_jkt, credential_id, account_id, failures, status, locked_at)
       values ($1, $2, $3, 1, case when 1 >= $4 then 'locked' else 'active' end, case when 1 >= $4 then now() end)
     on conflict (device_jkt) do update set
       failures = l.failures + 1,
       status = case when l.failures + 1 >= $4 then 'locked' else l.status end,
       locked_at = case when l.failures + 1 >= $4 and l.status <> 'locked' then now() else l.locked_at end,
       credential_id = excluded.credential_id, account_id = excluded.account_id, updated_at = now()
     returning failures, status`,
    [holder.deviceJkt, holder.credentialId, accountId, limits.pinAttemptsPerCredentialMax],
  );
  return row;
}

/**
 * resetPinFailures as writes for the authorization's one statement (runWrites): only the counts
 * that are not zero (the card's and the credential's, as the job read them under lock).
 */
export function pinResets(card: PinCard, credentialFailures: number, holder: PinHolder): SqlPart[] {
  const parts: SqlPart[] = [];
  if (card.pin_failures > 0) {
    parts.push({ sql: 'update cards set pin_failures = 0 where pan_lookup = $1', params: [card.pan_lookup] });
  }
  if (credentialFailures > 0) {
    const sql = `update credential_pin_limits set failures = 0, updated_at = now()
      where device_jkt = $1 and failures > 0 and status = 'active'`;
    parts.push({ sql, params: [holder.deviceJkt] });
  }
  return parts;
}

/** A right PIN resets the consecutive counts: the account's and this credential's (never the velocity record). */
export async function resetPinFailures(tx: Queryable, card: PinCard, holder: PinHolder | undefined): Promise<void> {
  if (card.pin_failures > 0) await tx.query('update cards set pin_failures = 0 where pan_lookup = $1', [card.pan_lookup]);
  if (holder) await tx.query("update credential_pin_limits set failures = 0, updated_at = now() where device_jkt = $1 and failures > 0 and status = 'active'", [holder.deviceJkt]);
}
