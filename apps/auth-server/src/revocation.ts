/**
 * Revocation of a lost storage. At enrollment the payer gets a recovery code (100 bits, shown
 * once); this server keeps only its argon2id verifier. With the code, from any device, or by the
 * operator, the credential is revoked: every later terminal call answers `credential_revoked`.
 * Wrong codes are counted per credential and source address: recoveryAttemptsMax of them lock
 * the recovery path from that address for recoveryLockoutMs, so a stranger who knows the wallet
 * handle locks out only themselves; recoveryAttemptsPerCredentialMax from all addresses together
 * lock it for everyone, bounding distributed guessing.
 */
import { hash, verify } from '@node-rs/argon2';
import { KessaiError, limits, Secret, type CredentialRevocation } from '@kessai/protocol';
import { recordDomainEvent, type Db, type Queryable } from '@kessai/service';

const alphabet = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const groups = 5;
const groupLength = 4;

/** argon2id at OWASP's minimum (19 MiB, t=2): the code already has 100 bits, so this is defence in depth. */
const verifierCost = { algorithm: 2 /* Argon2id */, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

/** A fresh recovery code, `XXXX-XXXX-XXXX-XXXX-XXXX` in Crockford base32 (no I, L, O, U). */
export function newRecoveryCode(): Secret<string> {
  const bytes = new Uint8Array(groups * groupLength);
  globalThis.crypto.getRandomValues(bytes);
  const chars = Array.from(bytes, (byte) => alphabet[byte & 31]).join('');
  return new Secret(chars.match(new RegExp(`.{${groupLength}}`, 'g'))!.join('-'));
}

/** What a person typed, in canonical form: case, spaces and dashes forgiven, I/L read as 1 and O as 0. */
export function normalizeRecoveryCode(typed: string): string | undefined {
  const chars = typed.toUpperCase().replace(/[\s-]/g, '').replace(/[IL]/g, '1').replace(/O/g, '0');
  if (chars.length !== groups * groupLength || [...chars].some((c) => !alphabet.includes(c))) return undefined;
  return chars.match(new RegExp(`.{${groupLength}}`, 'g'))!.join('-');
}

export function recoveryVerifier(code: Secret<string>): Promise<string> {
  return hash(code.expose(), verifierCost);
}

/** Stored with the credential record at enrollment (step 305), in the same transaction. */
export async function saveRecoveryVerifier(tx: Queryable, credentialId: string, verifier: string): Promise<void> {
  await tx.query('insert into credential_recovery (credential_id, verifier) values ($1, $2)', [credentialId, verifier]);
}

interface RecoveryRow {
  status: string;
  verifier: string | null;
  failures: number;
  locked_until: Date | string | null;
  revoked_at: Date | string | null;
  revoked_by: 'payer' | 'operator' | null;
}

async function loadForRevocation(db: Queryable, credentialId: string): Promise<RecoveryRow> {
  const [row] = await db.query<RecoveryRow>(
    `select c.status, r.verifier, coalesce(r.failures, 0) as failures, r.locked_until, r.revoked_at, r.revoked_by
       from credentials c left join credential_recovery r on r.credential_id = c.id where c.id = $1`,
    [credentialId],
  );
  if (!row) throw new KessaiError('credential_not_found');
  return row;
}

function view(credentialId: string, row: Pick<RecoveryRow, 'revoked_at' | 'revoked_by'>): CredentialRevocation {
  return { credential_id: credentialId, status: 'revoked', revoked_at: new Date(row.revoked_at ?? Date.now()).toISOString(), revoked_by: row.revoked_by ?? 'operator' };
}

/**
 * Marks the credential revoked (once: a second revocation answers with the first one's time and
 * author), and records the first one as the domain event `credential.revoked`.
 */
async function markRevoked(db: Db, credentialId: string, by: 'payer' | 'operator', now: Date): Promise<CredentialRevocation> {
  let fresh = false;
  const revoked = await db.transaction(async (tx) => {
    fresh = (await tx.query("update credentials set status = 'revoked' where id = $1 and status <> 'revoked' returning id", [credentialId])).length > 0;
    await tx.query(
      `insert into credential_recovery (credential_id, verifier, revoked_at, revoked_by) values ($1, null, $2, $3)
       on conflict (credential_id) do update set revoked_at = coalesce(credential_recovery.revoked_at, excluded.revoked_at), revoked_by = coalesce(credential_recovery.revoked_by, excluded.revoked_by), failures = 0, locked_until = null`,
      [credentialId, now, by],
    );
    return view(credentialId, (await loadForRevocation(tx, credentialId)) as RecoveryRow);
  });
  if (fresh) void recordDomainEvent(db, { actor: by === 'payer' ? `credential:${credentialId}` : 'operator', action: 'credential.revoked', resource: credentialId, outcome: `revoked by ${by}` });
  return revoked;
}

/**
 * The payer's revocation. The checks, in order: the credential exists; its recovery path is not
 * locked; the code has the recovery code's shape and matches the verifier (a wrong one is counted,
 * and the limit locks the path). A retry with the right code after revocation answers the same.
 */
export async function revokeWithRecoveryCode(db: Db, credentialId: string, typed: Secret<string>, source: string, now: Date): Promise<CredentialRevocation> {
  const row = await loadForRevocation(db, credentialId);
  const lockedAt = (until: Date | string | null | undefined) => until != null && new Date(until).getTime() > now.getTime();
  if (lockedAt(row.locked_until)) throw new KessaiError('recovery_locked', 'too many wrong recovery codes for this credential');
  const [fromSource] = await db.query<{ locked_until: Date | string | null }>('select locked_until from credential_recovery_failures where credential_id = $1 and source = $2', [credentialId, source]);
  if (lockedAt(fromSource?.locked_until)) throw new KessaiError('recovery_locked', 'too many wrong recovery codes for this credential from this address');
  const code = normalizeRecoveryCode(typed.expose());
  const matches = code !== undefined && row.verifier !== null && (await verify(row.verifier, code));
  if (!matches) {
    await countFailure(db, credentialId, source, now);
    throw new KessaiError('recovery_code_invalid');
  }
  return markRevoked(db, credentialId, 'payer', now);
}

/** A wrong code: counted for its source address (recoveryAttemptsMax) and for the credential (recoveryAttemptsPerCredentialMax). */
async function countFailure(db: Db, credentialId: string, source: string, now: Date): Promise<void> {
  const lockedUntil = new Date(now.getTime() + limits.recoveryLockoutMs);
  // Each count is one statement, so concurrent guesses cannot both read the same count.
  await db.transaction(async (tx) => {
    // An address quiet for recoveryLockoutMs starts again: one credential keeps few rows.
    await tx.query('delete from credential_recovery_failures where credential_id = $1 and updated_at < $2 and (locked_until is null or locked_until <= $3)', [credentialId, new Date(now.getTime() - limits.recoveryLockoutMs), now]);
    await tx.query(
      `insert into credential_recovery_failures (credential_id, source, failures, updated_at) values ($1, $2, 1, $5)
       on conflict (credential_id, source) do update set
         failures = case when credential_recovery_failures.failures + 1 >= $3 then 0 else credential_recovery_failures.failures + 1 end,
         locked_until = case when credential_recovery_failures.failures + 1 >= $3 then $4::timestamptz else credential_recovery_failures.locked_until end,
         updated_at = $5`,
      [credentialId, source, limits.recoveryAttemptsMax, lockedUntil, now],
    );
    await tx.query(
      `insert into credential_recovery (credential_id, verifier, failures) values ($1, null, 1)
       on conflict (credential_id) do update set
         failures = case when credential_recovery.failures + 1 >= $2 then 0 else credential_recovery.failures + 1 end,
         locked_until = case when credential_recovery.failures + 1 >= $2 then $3::timestamptz else credential_recovery.locked_until end`,
      [credentialId, limits.recoveryAttemptsPerCredentialMax, lockedUntil],
    );
  });
}

/** The operator's revocation: no code needed, same effect. */
export async function revokeByOperator(db: Db, credentialId: string, now: Date): Promise<CredentialRevocation> {
  await loadForRevocation(db, credentialId);
  return markRevoked(db, credentialId, 'operator', now);
}
