/**
 * Settlement events (docs/protocol.md, "Settlement events"): the broker learns of the batches each
 * issuer closes by asking it — `GET /internal/v1/settlement-batches?after=<cursor>`, mutual TLS; the
 * bank never calls the broker — and queues one `settlement_batch.closed` event per batch through
 * the webhook outbox, so it is delivered, listed, streamed and resendable like every event. Each
 * issuer's cursor row is claimed skip-locked (with a token) at most every
 * limits.settlementEventsPollMs across every broker process; a batch is announced at most once,
 * ever (settlement_batch_events, keyed by issuer and batch id), whoever reads it.
 */
import { randomBytes } from 'node:crypto';
import {
  KessaiError,
  closedBatchFeed,
  limits,
  newId,
  settlementBatchEvent,
  type ClosedBatchFeed,
} from '@kessai/protocol';
import type { Queryable } from '@kessai/service';
import type { AuthContext } from './context.ts';

type FeedItem = ClosedBatchFeed['items'][number];

/** When each context last asked (epoch ms): between asks a worker pass costs no statement. */
const lastPolls = new WeakMap<AuthContext, number>();
/** The contexts whose issuers have cursor rows. */
const prepared = new WeakSet<AuthContext>();

/**
 * One pass: for each issuer whose cursor is due and not claimed by another process, reads one page
 * of the batches it closed after the cursor and queues their events. Answers how many it queued.
 */
export async function pollSettlementEvents(context: AuthContext, now: Date): Promise<number> {
  const last = lastPolls.get(context);
  if (last !== undefined && now.getTime() - last < limits.settlementEventsPollMs && now.getTime() >= last) return 0;
  lastPolls.set(context, now.getTime());
  const { db, issuers } = context.config;
  if (issuers.length === 0) return 0;
  if (!prepared.has(context)) {
    await db.query(
      `insert into settlement_event_cursors (issuer_id, next_poll_at)
       select unnest($1::text[]), $2 on conflict do nothing`,
      [issuers.map((issuer) => issuer.id), now],
    );
    prepared.add(context);
  }
  const token = randomBytes(12).toString('base64url');
  const claimed = await db.query<{ issuer_id: string; cursor: string | null }>(
    `update settlement_event_cursors set next_poll_at = $2, claim_token = $3
      where issuer_id in (select issuer_id from settlement_event_cursors
                           where next_poll_at <= $1 and issuer_id = any($4::text[])
                           order by next_poll_at for update skip locked)
      returning issuer_id, cursor`,
    [now, new Date(now.getTime() + limits.settlementEventsClaimMs), token, issuers.map((issuer) => issuer.id)],
  );
  const queued = await Promise.all(claimed.map((row) => pollIssuer(context, row, token, now)));
  return queued.reduce((a, b) => a + b, 0);
}

/** One page of one issuer; the claim ends due again at once when the issuer has more, else after the poll interval. */
async function pollIssuer(
  context: AuthContext,
  row: { issuer_id: string; cursor: string | null },
  token: string,
  now: Date,
): Promise<number> {
  const { config } = context;
  const issuer = config.issuers.find((each) => each.id === row.issuer_id)!;
  let queued = 0;
  let nextPollAt = new Date(now.getTime() + limits.settlementEventsPollMs);
  try {
    const query = new URLSearchParams({
      limit: String(limits.settlementEventsPageMax),
      ...(row.cursor ? { after: row.cursor } : {}),
    });
    const url = `${issuer.baseUrl}/internal/v1/settlement-batches?${query.toString()}`;
    const feed = await context.http.call('GET', url, { schema: closedBatchFeed, unavailable: 'issuer_unavailable' });
    // step 409 settlement: each batch the issuer closed is told to its merchant, once
    for (const item of feed.items) {
      if (item.batch.issuer_id !== issuer.id)
        throw new KessaiError('issuer_unavailable', 'the issuer answered another issuer’s batch');
      const moved = await config.db.transaction(async (tx) => {
        const fresh = await queueBatchEvent(tx, item, now);
        const [kept] = await tx.query(
          `update settlement_event_cursors set cursor = $3, updated_at = $4
            where issuer_id = $1 and claim_token = $2 returning issuer_id`,
          [issuer.id, token, item.cursor, now],
        );
        // Another process claimed this issuer after our claim ran out: leave the rest to it.
        if (!kept) throw new ClaimLost();
        return fresh;
      });
      if (moved) queued += 1;
    }
    // More to read: due again at once, in this process at its next worker pass.
    if (feed.has_more) {
      nextPollAt = now;
      lastPolls.delete(context);
    }
  } catch (err) {
    if (err instanceof ClaimLost) return queued;
    if (!(err instanceof KessaiError)) throw err;
    config.logger.warn(
      { issuer: issuer.id, code: err.code },
      'settlement events: the issuer did not answer; asking again later',
    );
  }
  await config.db.query(
    `update settlement_event_cursors set next_poll_at = $3, claim_token = null
      where issuer_id = $1 and claim_token = $2`,
    [issuer.id, token, nextPollAt],
  );
  if (queued > 0)
    config.logger.info(
      { issuer: issuer.id, queued },
      'step 409 settlement: closed batches announced to their merchants',
    );
  return queued;
}

class ClaimLost extends Error {}

/**
 * Queues the batch's event unless it was queued before (true when it queued it now). Its mode: live
 * when any payment request it settles is live here (a batch that pays out live money is a live
 * fact; docs/protocol.md). A merchant this broker does not know gets no event (recorded, so not
 * looked at again).
 */
async function queueBatchEvent(tx: Queryable, item: FeedItem, now: Date): Promise<boolean> {
  const { batch } = item;
  const [merchant] = await tx.query<{ livemode: boolean }>(
    `select coalesce((select bool_or(p.livemode) from payment_requests p
                       where p.id = any($2::text[]) and p.merchant_id = m.id), false) as livemode
       from merchants m where m.id = $1`,
    [batch.merchant_id, item.payment_request_ids],
  );
  const event = merchant
    ? settlementBatchEvent.parse({
        id: newId('evt'),
        type: 'settlement_batch.closed',
        created_at: now.toISOString(),
        livemode: merchant.livemode,
        data: batch,
      })
    : undefined;
  const [recorded] = await tx.query(
    `insert into settlement_batch_events (issuer_id, batch_id, event_type, event_id, created_at)
     values ($1, $2, 'settlement_batch.closed', $3, $4) on conflict do nothing returning batch_id`,
    [batch.issuer_id, batch.id, event?.id ?? null, now],
  );
  if (!recorded || !event) return false;
  await tx.query(
    'insert into webhook_outbox (id, merchant_id, event_type, body, livemode) values ($1, $2, $3, $4, $5)',
    [event.id, batch.merchant_id, event.type, JSON.stringify(event), event.livemode],
  );
  return true;
}
