/**
 * Step 409, refunds through the merchant API: the refund is saved (its id, under the merchant's
 * Idempotency-Key) before the issuer is called, the issuer keys the reverse transfer by that id,
 * and the outcome is recorded with a signed `payment_request.refunded` event in one transaction.
 * The issuer is the authority on what may still be refunded; the check here only spares it a call.
 * A key names one refund for good: the refund row outlives the key's idempotency record (purged
 * after idempotencyKeyTtlMs), so a key reused for another refund is refused here, never relayed.
 */
import { KessaiError, limits, newId, settlementRefundResponse, type RefundView } from '@kessai/protocol';
import type { Queryable } from '@kessai/service';
import type { MerchantCaller } from './callers.ts';
import type { AuthContext } from './context.ts';
import type { PaymentRequestRow } from './payment-requests.ts';
import { transition } from './payment-state.ts';
import { eventsQueued } from './work-signals.ts';

interface SavedRefund {
  id: string;
  payment_request_id: string;
  amount_minor: string | bigint;
  state: 'pending' | 'succeeded';
  created_at: Date;
}

/**
 * The key a refund is saved under: the merchant's Idempotency-Key, with ` live` after it in live mode (a key has no
 * space, so the two modes' keys never meet — one key used in both modes makes two refunds, as callers.ts scopes it).
 */
const savedKeyOf = (merchant: MerchantCaller, idempotencyKey: string): string =>
  merchant.livemode ? `${idempotencyKey} live` : idempotencyKey;

function refundByKey(db: Queryable, merchantId: string, idempotencyKey: string): Promise<SavedRefund | undefined> {
  return db.query<SavedRefund>('select id, payment_request_id, amount_minor, state, created_at from refunds where merchant_id = $1 and idempotency_key = $2', [merchantId, idempotencyKey]).then((rows) => rows[0]);
}

/**
 * The refund a key already names may only be asked for again as it was: same payment request, same
 * amount, and not answered longer ago than idempotencyKeyTtlMs (its answer is purged: a new refund
 * needs a new key). A pending one, never answered, may be continued at any age.
 */
function refuseReuse(saved: SavedRefund, paymentRequestId: string, amount: bigint, now: Date): void {
  if (saved.payment_request_id !== paymentRequestId || BigInt(saved.amount_minor) !== amount) throw new KessaiError('idempotency_key_reused', 'this Idempotency-Key names a refund of another payment request or amount');
  if (saved.state === 'succeeded' && now.getTime() - new Date(saved.created_at).getTime() >= limits.idempotencyKeyTtlMs) {
    throw new KessaiError('idempotency_key_reused', 'this Idempotency-Key names a refund answered longer ago than idempotencyKeyTtlMs; a new refund needs a new key');
  }
}

export async function relayRefund(context: AuthContext, merchant: MerchantCaller, row: PaymentRequestRow, amount: bigint, requestKey: string): Promise<RefundView> {
  const { config } = context;
  const idempotencyKey = savedKeyOf(merchant, requestKey);
  // A refund already saved under this key is continued or answered as it was asked (refuseReuse),
  // not checked against the refunds made since: a retry of a full refund is not refund_exceeds_captured.
  // step 409 refund: the broker saves the refund's intent, then relays it to the issuer
  let saved = await refundByKey(config.db, merchant.id, idempotencyKey);
  if (!saved) {
    if (row.status !== 'captured' || !row.issuer_id) throw new KessaiError('authorization_not_refundable', `payment request is ${row.status}`);
    if (amount === 0n) throw new KessaiError('validation_failed', 'a refund must be at least 1 minor unit');
    if (BigInt(row.refunded_minor) + amount > BigInt(row.captured_minor)) throw new KessaiError('refund_exceeds_captured', `captured ${row.captured_minor}, refunded ${row.refunded_minor}`);
    await config.db.query(
      "insert into refunds (id, payment_request_id, merchant_id, idempotency_key, amount_minor, state) values ($1, $2, $3, $4, $5, 'pending') on conflict (merchant_id, idempotency_key) do nothing",
      [newId('rf'), row.id, merchant.id, idempotencyKey, amount],
    );
    saved = await refundByKey(config.db, merchant.id, idempotencyKey);
    if (!saved) throw new Error('refund intent not saved');
  }
  refuseReuse(saved, row.id, amount, new Date());
  if (!row.issuer_id) throw new Error(`refunded payment request ${row.id} names no issuer`);
  const issuer = await context.issuers.byId(row.issuer_id);
  const result = await context.http.call('POST', `${issuer.route.baseUrl}/internal/v1/authorizations/${row.id}/refunds`, {
    body: { refund_id: saved.id, amount_minor: amount.toString() },
    schema: settlementRefundResponse,
    unavailable: 'issuer_unavailable',
  });
  const refund: RefundView = {
    id: saved.id,
    payment_request_id: row.id,
    currency: row.currency,
    amount_minor: result.amount_minor,
    refunded_minor: result.refunded_minor,
    captured_minor: result.captured_minor,
    created_at: new Date(saved.created_at).toISOString(),
    livemode: row.livemode,
  };
  await config.db.transaction(async (tx) => {
    const [pending] = await tx.query("update refunds set state = 'succeeded' where id = $1 and state = 'pending' returning id", [saved.id]);
    // One event per refund, even if a retry reaches this point again.
    if (!pending) return;
    const next = await transition(tx, row, 'refunded', { refunded_minor: BigInt(result.refunded_minor) }, { publicBaseUrl: config.publicBaseUrl, now: new Date(), refund });
    if (!next) throw new Error(`payment request ${row.id} left captured while refunded`);
  });
  eventsQueued(config.db); // the refund's event, committed: delivered now (worker.ts)
  return refund;
}
