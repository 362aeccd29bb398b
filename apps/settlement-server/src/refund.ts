/**
 * Step 409 at the issuer: a refund, a reverse transfer of part of what was captured, from the
 * merchant's account back to the cardholder's. Several may follow one capture; together they never
 * exceed it. The refund id comes from the authentication server (saved before it called), so a
 * retry answers the same result and moves no money twice.
 */
import { KessaiError, parseAmount } from '@kessai/protocol';
import { recordDomainEvent } from '@kessai/service';
import type { SettlementConfig } from './config.ts';
import { lockAuthorization } from './capture.ts';
import type { GroupCommit } from './ledger/group-commit.ts';
import { createTransfers, readTransfer } from './ledger/store.ts';

export interface RefundResult {
  authorization_id: string;
  refund_id: string;
  amount_minor: string;
  refunded_minor: string;
  captured_minor: string;
}

/** The refund `asked` (its id and amount, as the authentication server sent them) of the hold `rid`. */
export async function refund(
  config: SettlementConfig,
  ledger: GroupCommit,
  rid: string,
  asked: { refund_id: string; amount_minor: string },
  now: Date,
): Promise<RefundResult> {
  const { refund_id: refundId } = asked;
  const amount = parseAmount(asked.amount_minor);
  let moved: { currency: string } | undefined;
  const result = await ledger.run(async (tx) => {
    const row = await lockAuthorization(tx, rid);
    const answer = (refunded: bigint) => ({ authorization_id: row.id, refund_id: refundId, amount_minor: amount.toString(), refunded_minor: refunded.toString(), captured_minor: BigInt(row.captured_amount).toString() });
    const [done] = await tx.query<{ authorization_id: string; amount: bigint }>('select authorization_id, amount from refunds where id = $1', [refundId]);
    if (done) {
      // The authentication server saves one amount per refund id: anything else is its bug.
      if (done.authorization_id !== row.id || BigInt(done.amount) !== amount) throw new TypeError(`refund ${refundId} repeated with another authorization or amount`);
      return answer(BigInt(row.refunded_amount));
    }
    if (row.status !== 'captured' || !row.hold_transfer_id) throw new KessaiError('authorization_not_refundable', `authorization is ${row.status}`);
    if (amount === 0n) throw new KessaiError('validation_failed', 'a refund must be at least 1 minor unit');
    const refunded = BigInt(row.refunded_amount) + amount;
    if (refunded > BigInt(row.captured_amount)) throw new KessaiError('refund_exceeds_captured', `captured ${row.captured_amount}, refunded ${row.refunded_amount}`);
    const hold = await readTransfer(tx, row.hold_transfer_id);
    if (!hold) throw new Error(`authorization ${row.id} names a missing hold`);
    const transferId = `${hold.id}.refund.${refundId}`;
    // step 409 refund: the merchant's credit goes back to the payer
    const [result] = await createTransfers(tx, [{ id: transferId, kind: 'single', debitAccountId: hold.creditAccountId, creditAccountId: hold.debitAccountId, amount, currency: hold.currency }], now);
    if (result !== 'ok') throw new Error(`ledger refused refund ${refundId}: ${result}`);
    await tx.query('insert into refunds (id, authorization_id, amount, transfer_id) values ($1, $2, $3, $4)', [refundId, row.id, amount, transferId]);
    await tx.query('update authorizations set refunded_amount = $2 where id = $1', [row.id, refunded]);
    config.logger.info({ authorization: row.id, request: rid, refund: refundId, amount: amount.toString() }, 'step 409: refunded');
    moved = { currency: hold.currency };
    return answer(refunded);
  });
  // A retry of a finished refund moved nothing: only the first is a domain event.
  if (moved) void recordDomainEvent(config.db, { actor: 'system', action: 'authorization.refunded', resource: `${rid} ${result.authorization_id} ${refundId}`, outcome: `refunded ${result.amount_minor} ${moved.currency}` });
  return result;
}
