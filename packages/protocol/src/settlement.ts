/**
 * Settlement batches and their reports (step 409, end of day; docs/ledger.md): what the settlement
 * server answers its operator and the authentication server, and what the merchant API relays.
 * Amounts are decimal strings of minor units; those that may be negative (net, carried amounts)
 * carry a leading minus sign.
 */
import { z } from 'zod';
import { limits } from './limits.ts';
import { amountString, currencyCode, merchantId, paymentRequestId, webhookEvent } from './messages.ts';

/** A settlement batch id: `stb_` and 26 Crockford base32 characters derived from its day, merchant and currency. */
export const settlementBatchId = z.string().regex(/^stb_[0-9a-hjkmnp-tv-z]{26}$/, 'stb_ id');
export const businessDay = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'YYYY-MM-DD');
export const signedAmountString = z
  .string()
  .max(21)
  .regex(/^(0|-?[1-9]\d*)$/, 'integer string')
  .meta({
    description:
      'Integer minor units as a decimal string, with a minus sign when negative ("-1200"): never a JSON number.',
    examples: ['-1200'],
  });

export const settlementBatchView = z.strictObject({
  id: settlementBatchId,
  issuer_id: z.string().min(1).max(limits.stringLengthMax),
  business_day: businessDay,
  time_zone: z.string().min(1).max(limits.stringLengthMax),
  merchant_id: merchantId,
  currency: currencyCode,
  fee_schedule: z.strictObject({ basis_points: z.number().int().min(0).max(limits.feeBasisPointsMax), fixed_minor: amountString }),
  captured_minor: amountString,
  refunded_minor: amountString,
  fees_minor: amountString,
  /** captured − refunded − fees. */
  net_minor: signedAmountString,
  /** What an earlier batch could not pay out (≤ 0), set against this one. */
  carried_in_minor: signedAmountString,
  payout_minor: amountString,
  /** net + carried_in when that is negative (then no payout), else 0. */
  carried_out_minor: signedAmountString,
  fee_transfer_id: z.string().max(limits.stringLengthMax).nullable(),
  payout_transfer_id: z.string().max(limits.stringLengthMax).nullable(),
  line_count: z.number().int().min(0),
  created_at: z.string(),
});
export type SettlementBatchView = z.infer<typeof settlementBatchView>;

export const settlementBatchList = z.strictObject({ batches: z.array(settlementBatchView).max(limits.settlementBatchesListMax) });
export type SettlementBatchList = z.infer<typeof settlementBatchList>;
/** The merchant API's page of settlement batches (`GET /v1/settlement-batches`): `items`, `limit`, `has_more`. */
export const settlementBatchPage = z.strictObject({
  items: z.array(settlementBatchView).max(limits.settlementBatchesListMax),
  limit: z.number().int(),
  has_more: z.boolean(),
});
export type SettlementBatchPage = z.infer<typeof settlementBatchPage>;

/**
 * The issuer's feed of closed batches (`GET /internal/v1/settlement-batches?after=…&limit=…`, the
 * authentication server over mutual TLS): every merchant's batches in the order they were closed,
 * each with its position (`cursor`: pass the last one as `after` for the next page) and the payment
 * requests it settles (so the broker can tell their mode).
 */
export const settlementBatchCursor = z.string().regex(/^\d{1,19}:stb_[0-9a-hjkmnp-tv-z]{26}$/, 'batch cursor');
export const closedBatchesQuery = z.strictObject({
  after: settlementBatchCursor.optional(),
  limit: z.coerce.number().int().min(1).max(limits.settlementEventsPageMax).default(limits.settlementEventsPageMax),
});
export const closedBatchFeed = z.strictObject({
  items: z
    .array(
      z.strictObject({
        cursor: settlementBatchCursor,
        batch: settlementBatchView,
        payment_request_ids: z.array(paymentRequestId),
      }),
    )
    .max(limits.settlementEventsPageMax),
  has_more: z.boolean(),
});
export type ClosedBatchFeed = z.infer<typeof closedBatchFeed>;

/** The event of a batch its issuer closed (docs/protocol.md, "Settlement events"): once per batch, no `sequence`. */
export const settlementBatchEvent = z.strictObject({
  id: z.string(),
  type: z.literal('settlement_batch.closed'),
  created_at: z.string(),
  /** True when any payment the batch settles is live (docs/protocol.md, "Settlement events"). */
  livemode: z.boolean(),
  data: settlementBatchView,
});
export type SettlementBatchEvent = z.infer<typeof settlementBatchEvent>;

/** Every event type the authentication server sends: the payment requests' and the settlement batches'. */
export const webhookEventType = z.enum([
  ...webhookEvent.shape.type.options,
  settlementBatchEvent.shape.type.value,
]);
export type WebhookEventTypeName = z.infer<typeof webhookEventType>;

export const settlementLineView = z.strictObject({
  transfer_id: z.string().max(limits.stringLengthMax),
  kind: z.enum(['capture', 'refund']),
  authorization_id: z.string().max(limits.stringLengthMax),
  payment_request_id: z.string().max(limits.stringLengthMax),
  refund_id: z.string().max(limits.stringLengthMax).nullable(),
  currency: currencyCode,
  amount_minor: amountString,
  fee_minor: amountString,
  net_minor: signedAmountString,
  posted_at: z.string(),
});
export type SettlementLineView = z.infer<typeof settlementLineView>;

export const settlementReport = z.strictObject({
  batch: settlementBatchView,
  lines: z.array(settlementLineView),
  /** Sums over `lines`, and the carried amounts and payout of the batch. */
  totals: settlementBatchView.pick({ captured_minor: true, refunded_minor: true, fees_minor: true, net_minor: true, carried_in_minor: true, payout_minor: true, carried_out_minor: true }),
});
export type SettlementReport = z.infer<typeof settlementReport>;

export const closeDayRequest = z.strictObject({ date: businessDay.optional() });
export const closeDayResponse = z.strictObject({
  business_day: businessDay,
  time_zone: z.string(),
  closed_at: z.string(),
  /** True when the day had been closed before: nothing changed. */
  already_closed: z.boolean(),
  batches: z.array(settlementBatchView),
});
export type CloseDayResponse = z.infer<typeof closeDayResponse>;

export const feeScheduleRequest = z.strictObject({
  merchant_id: merchantId,
  currency: currencyCode,
  basis_points: z.number().int().min(0).max(limits.feeBasisPointsMax),
  fixed_minor: amountString,
});
