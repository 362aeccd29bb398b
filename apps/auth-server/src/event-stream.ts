/**
 * The merchant's event stream (`GET /v1/events/stream`, read by `kessai listen`): the merchant's
 * events in the order they were written to webhook_outbox, read by polling every
 * limits.eventStreamPollMs. A stream resumes after `Last-Event-ID` (an event of the same merchant);
 * without one it starts after the newest event at connection time. SQL only; the route decides.
 */
import { limits } from '@kessai/protocol';
import type { Queryable } from '@kessai/service';
import { eventLivemode } from './webhooks.ts';

/** Whose events a stream carries: one merchant's, of the calling key's mode. */
export interface StreamOwner {
  merchantId: string;
  livemode: boolean;
}

/** created_at as PostgreSQL's text (microseconds kept: a JavaScript Date would round them off). */
export interface StreamCursor {
  createdAt: string;
  id: string;
}

export interface StreamedEvent {
  id: string;
  event_type: string;
  body: string;
  at: string;
  /** created_at in epoch microseconds, as text (exact: the look-back's bookkeeping compares them). */
  at_us: string;
}

/** The position of `eventId` in the merchant's events, or undefined when the merchant has no such event. */
export async function cursorOf(db: Queryable, owner: StreamOwner, eventId: string): Promise<StreamCursor | undefined> {
  const [row] = await db.query<{ id: string; at: string }>(
    `select id, created_at::text as at from webhook_outbox
      where id = $1 and merchant_id = $2 and ${eventLivemode} = $3`,
    [eventId, owner.merchantId, owner.livemode],
  );
  return row ? { createdAt: row.at, id: row.id } : undefined;
}

/** The position just after the merchant's newest event (the epoch when it has none). */
export async function latestCursor(db: Queryable, owner: StreamOwner): Promise<StreamCursor> {
  const [row] = await db.query<{ id: string; at: string }>(
    `select id, created_at::text as at from webhook_outbox where merchant_id = $1 and ${eventLivemode} = $2
      order by created_at desc, id desc limit 1`,
    [owner.merchantId, owner.livemode],
  );
  return row ? { createdAt: row.at, id: row.id } : { createdAt: '1970-01-01T00:00:00Z', id: '' };
}

/** Where a stream stands: where it started, the newest event it sent, and the ids it sent lately. */
export interface StreamPosition {
  /** The stream's starting point: nothing at or before it is sent. */
  floor: StreamCursor;
  /** The newest event sent (the floor before any). */
  newest: StreamCursor;
  /** Ids sent within limits.eventStreamLookBackMs of `newest`. */
  sent: readonly string[];
}

/**
 * One stream's bookkeeping (pure: no I/O, no clock). It remembers the ids it sent within
 * limits.eventStreamLookBackMs of the newest, so the look-back sends a late-committed event once,
 * and at most `sentIdsMax` (limits.eventStreamSentIdsMax) of them after each poll. At the cap it
 * forgets them all and moves its floor up to the newest event sent: nothing at or before that is
 * read again, so no event is ever sent twice, but an event that commits later than `sentIdsMax`
 * newer events were sent within one look-back window is not sent on this stream (its webhook is
 * still delivered, and `GET /v1/events` lists it).
 */
export class StreamTracker {
  #floor: StreamCursor;
  #newest: StreamCursor;
  #newestUs = -1n;
  /** Sent id → its created_at in epoch microseconds. */
  readonly #sent = new Map<string, bigint>();
  readonly #sentIdsMax: number;

  constructor(start: StreamCursor, sentIdsMax: number = limits.eventStreamSentIdsMax) {
    if (!Number.isInteger(sentIdsMax) || sentIdsMax < 1)
      throw new TypeError('StreamTracker: sentIdsMax must be a positive integer');
    this.#floor = start;
    this.#newest = start;
    this.#sentIdsMax = sentIdsMax;
  }

  position(): StreamPosition {
    return { floor: this.#floor, newest: this.#newest, sent: [...this.#sent.keys()] };
  }

  get sentCount(): number {
    return this.#sent.size;
  }

  /**
   * An event just sent. Rows come in (created_at, id) order within a poll, and a later poll's row
   * stamped in the same microsecond as the newest comes after it in that order (the same transaction's
   * rows, split by eventStreamBatchMax): so `>=` keeps `newest` the greatest sent.
   */
  sent(event: Pick<StreamedEvent, 'id' | 'at' | 'at_us'>): void {
    const atUs = BigInt(event.at_us);
    this.#sent.set(event.id, atUs);
    if (atUs >= this.#newestUs) [this.#newest, this.#newestUs] = [{ createdAt: event.at, id: event.id }, atUs];
  }

  /** After each poll: forgets ids older than the look-back window; past the cap, all of them (see above). */
  endPoll(): void {
    const oldestUs = this.#newestUs - BigInt(limits.eventStreamLookBackMs) * 1000n;
    for (const [id, atUs] of this.#sent) if (atUs < oldestUs) this.#sent.delete(id);
    if (this.#sent.size <= this.#sentIdsMax) return;
    this.#sent.clear();
    this.#floor = this.#newest;
  }
}

/**
 * The merchant's events after the stream's floor not sent yet, stamped after `newest` or up to
 * limits.eventStreamLookBackMs before it, oldest first, at most limits.eventStreamBatchMax: created_at
 * is the inserting transaction's time, so an event can commit after a later-stamped one was read.
 */
export function eventsAfter(db: Queryable, owner: StreamOwner, at: StreamPosition): Promise<StreamedEvent[]> {
  return db.query<StreamedEvent>(
    `select id, event_type, body, created_at::text as at,
            (extract(epoch from created_at) * 1000000)::bigint::text as at_us from webhook_outbox
      where merchant_id = $1 and ${eventLivemode} = $2
        and (created_at, id) > ($3::timestamptz, $4::text)
        and created_at > $5::timestamptz - make_interval(secs => $6::double precision / 1000)
        and not (id = any($7::text[]))
      order by created_at, id limit $8`,
    [
      owner.merchantId,
      owner.livemode,
      at.floor.createdAt,
      at.floor.id,
      at.newest.createdAt,
      limits.eventStreamLookBackMs,
      [...at.sent],
      limits.eventStreamBatchMax,
    ],
  );
}
