/**
 * PIN verifiers: argon2id (memory-hard), never the PIN itself. The settlement server is the only
 * role that ever sees a PIN, inside one function's scope after opening the terminal's JWE. Wrong
 * PINs are counted per account and per credential; each count locks at its limit until the
 * operator unlocks it (admin-cards.ts).
 */
import { hash, verify } from '@node-rs/argon2';
import { limits, thumbprint, type DeclineCode, type JWK, type Secret } from '@kessai/protocol';
import type { Logger, Queryable } from '@kessai/service';

export interface PinHashCost {
  memoryCost: number;
  timeCost: number;
}

/** OWASP's argon2id minimum: 19 MiB, 2 iterations, 1 lane. */
export const pinHashCostDefault: PinHashCost = { memoryCost: 19_456, timeCost: 2 };

export function pinVerifier(pin: Secret<string>, cost: PinHashCost): Promise<string> {
  return hash(pin.expose(), { algorithm: 2 /* Argon2id */, memoryCost: cost.memoryCost, timeCost: cost.timeCost, parallelism: 1 });
}

export function pinMatches(verifier: string, pin: Secret<string>): Promise<boolean> {
  return verify(verifier, pin.expose());
}

// ---- Attempt limits: per account (cards.pin_failures) and per credential ------------------------

/** The credential a PIN came through, as the settlement server knows it from the opened credential. */
export interface PinHolder {
  credentialId: string;
  /** Thumbprint of the device key inside the credential: what the per-credential count is keyed by. */
  deviceJkt: string;
}

export async function pinHolderOf(credential: { credentialId: string; deviceJwk: JWK }): Promise<PinHolder> {
  return { credentialId: credential.credentialId, deviceJkt: await thumbprint(credential.deviceJwk) };
}

export async function credentialPinLocked(tx: Queryable, holder: PinHolder): Promise<boolean> {
  const [row] = await tx.query<{ status: string }>('select status from credential_pin_limits where device_jkt = $1 for update', [holder.deviceJkt]);
  return row?.status === 'locked';
}

interface PinCard {
  pan_lookup: string;
  account_id: string;
  status: string;
  pin_failures: number;
}

/**
 * A wrong PIN: counts it against the account (pinAttemptsMax locks the card) and against the
 * credential (pinAttemptsPerCredentialMax locks the credential); the account's lock is named first.
 */
export async function countWrongPin(logger: Logger, tx: Queryable, card: PinCard, holder: PinHolder): Promise<DeclineCode> {
  const failures = card.pin_failures + 1;
  const locked = failures >= limits.pinAttemptsMax;
  await tx.query('update cards set pin_failures = $2, status = $3 where pan_lookup = $1', [card.pan_lookup, failures, locked ? 'locked' : card.status]);
  const [row] = await tx.query<{ failures: number; status: string }>(
    `insert into credential_pin_limits as l (device_jkt, credential_id, account_id, failures, status, locked_at)
       values ($1, $2, $3, 1, case when 1 >= $4 then 'locked' else 'active' end, case when 1 >= $4 then now() end)
     on conflict (device_jkt) do update set
       failures = l.failures + 1,
       status = case when l.failures + 1 >= $4 then 'locked' else l.status end,
       locked_at = case when l.failures + 1 >= $4 and l.status <> 'locked' then now() else l.locked_at end,
       credential_id = excluded.credential_id, account_id = excluded.account_id, updated_at = now()
     returning failures, status`,
    [holder.deviceJkt, holder.credentialId, card.account_id, limits.pinAttemptsPerCredentialMax],
  );
  const credentialLocked = row?.status === 'locked';
  logger.warn({ account: card.account_id, credential: holder.credentialId, failures, credentialFailures: row?.failures, locked, credentialLocked }, 'wrong PIN');
  if (locked) return 'pin_locked';
  return credentialLocked ? 'credential_locked' : 'pin_incorrect';
}

/** A right PIN resets both counts: the account's and this credential's. */
export async function resetPinFailures(tx: Queryable, card: PinCard, holder: PinHolder): Promise<void> {
  if (card.pin_failures > 0) await tx.query('update cards set pin_failures = 0 where pan_lookup = $1', [card.pan_lookup]);
  await tx.query("update credential_pin_limits set failures = 0, updated_at = now() where device_jkt = $1 and failures > 0 and status = 'active'", [holder.deviceJkt]);
}
