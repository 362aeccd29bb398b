/**
 * The merchant API's lists (docs/protocol.md, "Lists"): payment requests, refunds and events, newest
 * first (`created_at desc, id desc`), paged by keyset — `starting_after` names the last item of
 * the previous page and the next page holds the items older than it (no OFFSET: a page costs the
 * same at any depth, and an item created meanwhile shifts nothing). Every query is confined to one
 * merchant: another merchant's cursor is as unknown as a made-up one (`starting_after_not_found`).
 * Events are the webhook outbox's bodies, kept limits.eventsRetentionDays days (sweepOldEvents).
 */
import {
  currencyCode,
  KessaiError,
  limits,
  type RefundView,
  type SettlementBatchEvent,
  type WebhookEvent,
} from '@kessai/protocol';
import type { Queryable } from '@kessai/service';
import type { PaymentRequestRow } from './payment-requests.ts';
import { eventLivemode } from './webhooks.ts';

export interface Page {
  merchantId: string;
  /** The mode of the calling key: a key sees only its own mode's objects (docs/protocol.md, "Test and live mode"). */
  livemode: boolean;
  limit: number;
  startingAfter?: string | undefined;
}

export interface Cursor {
  /** PostgreSQL's text of the timestamp: its microseconds kept (a JavaScript Date would round them off to ms). */
  created_at: string;
  id: string;
}

/** Each listed table's mode, as SQL over its row (an event or refund is of its payment request's mode). */
const livemodeOf = {
  payment_requests: 'payment_requests.livemode',
  refunds: '(select p.livemode from payment_requests p where p.id = refunds.payment_request_id)',
  webhook_outbox: eventLivemode,
} as const;

/** The cursor row of `table` — the merchant's own, or starting_after_not_found. */
export async function cursorOf(db: Queryable, table: keyof typeof livemodeOf, page: Page): Promise<Cursor | null> {
  if (page.startingAfter === undefined) return null;
  const [row] = await db.query<Cursor>(
    `select created_at::text as created_at, id from ${table}
      where id = $1 and merchant_id = $2 and ${livemodeOf[table]} = $3`,
    [page.startingAfter, page.merchantId, page.livemode],
  );
  if (!row) throw new KessaiError('starting_after_not_found');
  return row;
}

/** One more row than `limit` (so the caller knows whether there are more). */
export async function listPaymentRequests(db: Queryable, page: Page): Promise<PaymentRequestRow[]> {
  const cursor = await cursorOf(db, 'payment_requests', page);
  return db.query<PaymentRequestRow>(
    `select * from payment_requests
      where merchant_id = $1 and livemode = $5
        and ($2::timestamptz is null or (created_at, id) < ($2::timestamptz, $3::text))
      order by created_at desc, id desc limit $4`,
    [page.merchantId, cursor?.created_at ?? null, cursor?.id ?? null, page.limit + 1, page.livemode],
  );
}

interface RefundRow {
  id: string;
  payment_request_id: string;
  currency: string;
  amount_minor: string | bigint;
  refunded_minor: string | bigint;
  captured_minor: string | bigint;
  created_at: Date;
  livemode: boolean;
}

/**
 * The merchant's succeeded refunds, each as the refund view it was answered with: `refunded_minor`
 * is the sum of its payment request's refunds up to and including it.
 */
export async function listRefunds(db: Queryable, page: Page, paymentRequestId?: string): Promise<RefundView[]> {
  const cursor = await cursorOf(db, 'refunds', page);
  const rows = await db.query<RefundRow>(
    `select r.id, r.payment_request_id, p.currency, r.amount_minor, p.captured_minor, r.created_at, p.livemode,
            (select coalesce(sum(e.amount_minor), 0) from refunds e
              where e.payment_request_id = r.payment_request_id and e.state = 'succeeded'
                and (e.created_at, e.id) <= (r.created_at, r.id)) as refunded_minor
       from refunds r join payment_requests p on p.id = r.payment_request_id
      where r.merchant_id = $1 and p.livemode = $6 and r.state = 'succeeded'
        and ($4::text is null or r.payment_request_id = $4)
        and ($2::timestamptz is null or (r.created_at, r.id) < ($2::timestamptz, $3::text))
      order by r.created_at desc, r.id desc limit $5`,
    [
      page.merchantId,
      cursor?.created_at ?? null,
      cursor?.id ?? null,
      paymentRequestId ?? null,
      page.limit + 1,
      page.livemode,
    ],
  );
  return rows.map((row) => ({
    id: row.id,
    payment_request_id: row.payment_request_id,
    currency: currencyCode.parse(row.currency),
    amount_minor: BigInt(row.amount_minor).toString(),
    refunded_minor: BigInt(row.refunded_minor).toString(),
    captured_minor: BigInt(row.captured_minor).toString(),
    created_at: new Date(row.created_at).toISOString(),
    livemode: row.livemode,
  }));
}

/** An event as the merchant receives it: of a payment request, or of a settlement batch. */
export type MerchantEvent = WebhookEvent | SettlementBatchEvent;

/** The merchant's events as their webhook bodies (the exact JSON that was signed), optionally of the given types. */
export async function listEvents(db: Queryable, page: Page, types: readonly string[]): Promise<MerchantEvent[]> {
  const cursor = await cursorOf(db, 'webhook_outbox', page);
  const rows = await db.query<{ body: string }>(
    `select body from webhook_outbox
      where merchant_id = $1 and ${livemodeOf.webhook_outbox} = $6
        and (cardinality($4::text[]) = 0 or event_type = any($4::text[]))
        and ($2::timestamptz is null or (created_at, id) < ($2::timestamptz, $3::text))
      order by created_at desc, id desc limit $5`,
    [page.merchantId, cursor?.created_at ?? null, cursor?.id ?? null, [...types], page.limit + 1, page.livemode],
  );
  return rows.map((row) => JSON.parse(row.body) as MerchantEvent); // as this server wrote it; the route's schema checks
}

/**
 * Removes the events older than eventsRetentionDays that are no longer being delivered (a pending
 * one finishes its schedule first). Returns how many went.
 */
export async function sweepOldEvents(db: Queryable, now: Date): Promise<number> {
  const before = new Date(now.getTime() - limits.eventsRetentionDays * 24 * 60 * 60 * 1000);
  const gone = await db.query(
    `delete from webhook_outbox where id in (
       select id from webhook_outbox where created_at < $1 and status <> 'pending' limit $2) returning id`,
    [before, limits.eventsSweepBatchMax],
  );
  return gone.length;
}
