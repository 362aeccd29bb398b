/**
 * The merchant event stream's look-back bookkeeping (event-stream.ts, StreamTracker): the ids it
 * remembers stay at most limits.eventStreamSentIdsMax after every poll, and at the cap the stream
 * forgets them and reads on only after its newest event — no event is sent twice, and an event
 * committed late behind the cap is not sent on the stream (as docs/protocol.md says). A real
 * database (PGlite, or PostgreSQL with KESSAI_TEST_PG_URL) with the authentication server's migrations.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { limits } from '@kessai/protocol';
import { migrate, openDb, type Db } from '@kessai/service';
import { eventsAfter, latestCursor, StreamTracker } from '../src/event-stream.ts';
import { pgliteTemplate, scratchPostgres } from '../../../test/support/database.ts';

const migrations = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'migrations');
const owner = { merchantId: 'mer_stream', livemode: false };

let db: Db;
let drop: (() => Promise<void>) | undefined;
beforeAll(async () => {
  // PostgreSQL when KESSAI_TEST_PG_URL is set (where skip-locked claims really run side by side), else PGlite.
  const scratch = await scratchPostgres('kessai_event_stream');
  drop = scratch?.drop;
  db = scratch ? await openDb({ url: scratch.url }) : await openDb({ pgliteTemplate: await pgliteTemplate() });
  await migrate(db, migrations);
  await db.query(
    "insert into merchants (id, name, api_key_hash, webhook_url, webhook_secret) values ($1, 'Shop', 'h', null, 's')",
    [owner.merchantId],
  );
});
afterAll(async () => {
  await db?.close();
  await drop?.();
});

/** `count` delivered events of the merchant, one microsecond apart from `base`, ids `evt_<prefix><n>`. */
async function insertEvents(prefix: string, count: number, base: string): Promise<void> {
  await db.query(
    `insert into webhook_outbox (id, merchant_id, event_type, body, status, created_at)
     select $1 || lpad(n::text, 6, '0'), $2, 'payment_request.approved', '{}', 'delivered', $3::timestamptz + make_interval(secs => n / 1000000.0)
       from generate_series(1, $4::int) as n`,
    [`evt_${prefix}`, owner.merchantId, base, count],
  );
}

/** Polls as the route does until a poll finds nothing; answers every id sent and the largest count remembered. */
async function drain(tracker: StreamTracker): Promise<{ ids: string[]; sentCountMax: number }> {
  const ids: string[] = [];
  let sentCountMax = 0;
  for (;;) {
    const events = await eventsAfter(db, owner, tracker.position());
    for (const event of events) {
      ids.push(event.id);
      tracker.sent(event);
    }
    tracker.endPoll();
    sentCountMax = Math.max(sentCountMax, tracker.sentCount);
    if (events.length === 0) return { ids, sentCountMax };
  }
}

describe('the event stream’s sent ids', () => {
  it('stay at most eventStreamSentIdsMax; at the cap the stream sends every event once and no late one behind it', async () => {
    const tracker = new StreamTracker(await latestCursor(db, owner));
    // More events inside one look-back window than the cap: the stream reaches it while sending them.
    const count = limits.eventStreamSentIdsMax + 2 * limits.eventStreamBatchMax;
    await insertEvents('burst', count, new Date().toISOString());
    const first = await drain(tracker);
    expect(first.ids).toHaveLength(count);
    expect(new Set(first.ids).size).toBe(count);
    expect(first.sentCountMax).toBeLessThanOrEqual(limits.eventStreamSentIdsMax);
    expect(tracker.sentCount).toBeLessThan(limits.eventStreamSentIdsMax);
    // The cap moved the floor up to an event sent: what it forgot is never read again.
    const floor = tracker.position().floor;
    expect(first.ids).toContain(floor.id);

    // A late-committed event stamped before the floor is not sent on this stream (docs: the cap's cost);
    // one stamped after the newest is.
    const [{ at } = { at: '' }] = await db.query<{ at: string }>(
      'select created_at::text as at from webhook_outbox where id = $1',
      [floor.id],
    );
    await insertEvents('late', 1, new Date(new Date(at).getTime() - 1).toISOString());
    await insertEvents('next', 1, new Date().toISOString());
    const second = await drain(tracker);
    expect(second.ids).toEqual(['evt_next000001']);
  });

  it('refuses a cap that is not a positive integer (a programmer’s error)', () => {
    const start = { createdAt: '1970-01-01T00:00:00Z', id: '' };
    expect(() => new StreamTracker(start, 0)).toThrow(TypeError);
    expect(() => new StreamTracker(start, 1.5)).toThrow(TypeError);
  });
});
