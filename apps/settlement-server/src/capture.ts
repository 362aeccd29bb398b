/**
 * Step 409 at the issuer: capture (post the hold, fully or partly; the rest is released) or void
 * (release it). Keyed by the payment request id and idempotent: repeating a finished capture with
 * the same amount, or a finished void, answers the same result.
 */
import { KessaiError, parseAmount } from '@kessai/protocol';
import type { SettlementConfig } from './config.ts';
import { resolvePending } from './ledger/store.ts';

interface AuthorizationRow {
  id: string;
  status: 'held' | 'captured' | 'voided' | 'declined';
  amount: bigint;
  captured_amount: bigint;
  hold_transfer_id: string | null;
}

export interface CaptureResult {
  authorization_id: string;
  status: 'captured' | 'voided';
  captured_minor: string;
}

export async function settleHold(config: SettlementConfig, rid: string, action: 'capture' | 'void', amountText?: string): Promise<CaptureResult> {
  return config.db.transaction(async (tx) => {
    const [row] = await tx.query<AuthorizationRow>('select id, status, amount, captured_amount, hold_transfer_id from authorizations where request_id = $1 for update', [rid]);
    if (!row) throw new KessaiError('authorization_not_found');
    const amount = action === 'capture' ? (amountText === undefined ? BigInt(row.amount) : parseAmount(amountText)) : 0n;
    const finished = action === 'capture' ? 'captured' : 'voided';
    if (row.status === finished && (action === 'void' || BigInt(row.captured_amount) === amount)) {
      return { authorization_id: row.id, status: finished, captured_minor: BigInt(row.captured_amount).toString() };
    }
    if (row.status !== 'held' || !row.hold_transfer_id) throw new KessaiError('authorization_not_capturable', `authorization is ${row.status}`);
    if (amount > BigInt(row.amount)) throw new KessaiError('capture_exceeds_authorization');
    const result = await resolvePending(tx, row.hold_transfer_id, action === 'capture' ? 'post' : 'void', amount);
    if (result !== 'ok') throw new KessaiError('capture_exceeds_authorization');
    await tx.query('update authorizations set status = $2, captured_amount = $3 where id = $1', [row.id, finished, amount]);
    config.logger.info({ authorization: row.id, request: rid, action, amount: amount.toString() }, 'step 409: hold resolved');
    return { authorization_id: row.id, status: finished, captured_minor: amount.toString() };
  });
}
