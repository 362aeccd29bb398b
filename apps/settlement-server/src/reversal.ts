/**
 * Reversals, as card networks send reversal advices: the authentication server lost the answer to
 * an authorization (in doubt) and cannot complete it, or expires an approved request nobody
 * captured. Keyed by the request id and the attempt's approval nonce, idempotent, exactly once in
 * effect, answered for any request id:
 *   - an authorization held here: its hold is voided (a repeat finds it voided);
 *   - none: the nonce is spent, so the authorization — should it still arrive — is refused
 *     `approval_replayed` and holds nothing; answered `reversed`;
 *   - one captured with the authorization (automatic capture) under this attempt's nonce, nothing
 *     refunded: the posting is undone — a reversing transfer merchant → cardholder of the whole
 *     amount, kept as a refund marked `reversal` (so the day's settlement nets it) — and the
 *     authorization is voided: the authentication server never learned of the payment, so nobody is charged;
 *   - any other captured one, an expired or a declined one is left as it is and answered as it is.
 * (An authorization placed before approval nonces were kept with it is voided whatever the nonce.)
 * Runs as one job of the ledger's group commit, so it is ordered with the authorizations of this
 * server; across instances, the nonce's unique key decides (the loser sees the winner's row).
 */
import type { SettlementReversal } from '@kessai/protocol';
import { newId } from '@kessai/protocol';
import { recordDomainEvent, type Queryable } from '@kessai/service';
import { authorizationStatus } from './authorization-status.ts';
import { recordResolved, resolveHold, type AuthorizationRow } from './capture.ts';
import type { SettlementConfig } from './config.ts';
import { recordExpired } from './expiry.ts';
import type { GroupCommit } from './ledger/group-commit.ts';
import { createTransfers, readTransfer, runWrites } from './ledger/store.ts';

type ReversibleRow = AuthorizationRow & { approval_nonce: string | null; capture_method: string };

async function lockedAuthorization(tx: Queryable, rid: string): Promise<ReversibleRow | undefined> {
  const [row] = await tx.query<ReversibleRow>(
    `select id, status, amount, currency, captured_amount, refunded_amount, hold_transfer_id, approval_nonce, capture_method
       from authorizations where request_id = $1 for update`,
    [rid],
  );
  return row;
}

/** An automatic capture undone by a reversal of its own attempt: the money goes back, the authorization is voided. */
async function undoAutomaticCapture(
  config: SettlementConfig,
  tx: Queryable,
  row: ReversibleRow,
  now: Date,
): Promise<{ currency: string; amount: bigint }> {
  const hold = row.hold_transfer_id ? await readTransfer(tx, row.hold_transfer_id) : undefined;
  if (!hold) throw new Error(`authorization ${row.id} names a missing hold`);
  const amount = BigInt(row.captured_amount);
  const transferId = `${hold.id}.reversal`;
  const [result] = await createTransfers(
    tx,
    [
      {
        id: transferId,
        kind: 'single',
        debitAccountId: hold.creditAccountId,
        creditAccountId: hold.debitAccountId,
        amount,
        currency: hold.currency,
      },
    ],
    now,
  );
  if (result !== 'ok') throw new Error(`ledger refused reversing ${row.id}: ${result}`);
  await runWrites(tx, [
    {
      sql: 'insert into refunds (id, authorization_id, amount, transfer_id, reversal) values ($1, $2, $3, $4, true)',
      params: [newId('rf'), row.id, amount, transferId],
    },
    {
      sql: "update authorizations set status = 'voided', refunded_amount = captured_amount where id = $1",
      params: [row.id],
    },
  ]);
  config.logger.info({ authorization: row.id, amount: amount.toString() }, 'reversal: automatic capture undone');
  return { currency: hold.currency, amount };
}

/** Automatic capture, this attempt's, nothing refunded: a reversal undoes it. */
const automaticOfThisAttempt = (row: ReversibleRow, nonce: string) =>
  row.status === 'captured' &&
  row.capture_method === 'automatic' &&
  row.approval_nonce === nonce &&
  BigInt(row.refunded_amount) === 0n;

export async function reverse(
  config: SettlementConfig,
  ledger: GroupCommit,
  rid: string,
  nonce: string,
  now: Date,
): Promise<SettlementReversal> {
  const outcome = await ledger.run(async (tx) => {
    let row = await lockedAuthorization(tx, rid);
    if (!row) {
      const spent = await tx.query(
        'insert into approval_nonces (nonce, request_id) values ($1, $2) on conflict do nothing returning nonce',
        [nonce, rid],
      );
      if (spent.length === 1) return { reversed: true as const };
      // Spent already: by an earlier reversal of this attempt (the same answer), or by the
      // authorization itself, committed meanwhile by another instance (look again).
      row = await lockedAuthorization(tx, rid);
      if (!row) return { reversed: true as const };
    }
    if (automaticOfThisAttempt(row, nonce))
      return { reversed: false as const, undone: await undoAutomaticCapture(config, tx, row, now) };
    // Held under another attempt's nonce: this reversal is of an earlier attempt, late; the hold is not its to release.
    if (row.status !== 'held' || (row.approval_nonce !== null && row.approval_nonce !== nonce))
      return { reversed: false as const };
    return { reversed: false as const, hold: await resolveHold(config, tx, { row, rid, action: 'void', now }) };
  });
  if (outcome.reversed) {
    config.logger.info({ request: rid }, 'reversal: no authorization here; its nonce is spent');
    return { status: 'reversed', authorization: null };
  }
  if (outcome.undone) {
    const { currency, amount } = outcome.undone;
    void recordDomainEvent(config.db, {
      actor: 'system',
      action: 'authorization.reversed',
      resource: rid,
      outcome: `reversed ${amount} ${currency}`,
    });
  }
  if (outcome.hold) {
    if ('expired' in outcome.hold) recordExpired(config.db, outcome.hold.expired);
    else recordResolved(config, rid, outcome.hold);
    config.logger.info({ request: rid }, 'reversal: hold released');
  }
  const status = await authorizationStatus(config.db, rid, now);
  return { status: status.status, authorization: status };
}
