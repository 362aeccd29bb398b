/**
 * The credential records this server keeps (step 305): the credential id, its issuer and the
 * device's public key with its thumbprint — never card data, which stays sealed for the issuer.
 * Enrollment (routes/enrollments.ts) calls these; SQL stays here.
 */
import type { Queryable } from '@kessai/service';

/** Whether a credential id is already in use (the terminal chose it and must choose another). */
export async function credentialIdTaken(db: Queryable, credentialId: string): Promise<boolean> {
  const [taken] = await db.query<{ id: string }>('select id from credentials where id = $1', [credentialId]);
  return taken !== undefined;
}

/** A new active credential record, in the transaction that also keeps its recovery verifier. */
export async function saveCredentialRecord(
  tx: Queryable,
  record: { credentialId: string; issuerId: string; deviceJwk: unknown; deviceJkt: string },
): Promise<void> {
  await tx.query(
    `insert into credentials (id, issuer_id, device_jwk, device_jkt, status)
     values ($1, $2, $3::text::jsonb, $4, 'active')`,
    [record.credentialId, record.issuerId, JSON.stringify(record.deviceJwk), record.deviceJkt],
  );
}
