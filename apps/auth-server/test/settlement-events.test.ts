/**
 * Settlement events at the broker (settlement-events.ts): the batches an issuer's feed answers are
 * queued as settlement_batch.closed events once each — with two broker workers polling at once,
 * across pages, after the cursor is lost, and when two issuers share a batch id — through the
 * webhook outbox; an unreachable issuer is asked again later; a batch of a merchant unknown here
 * queues nothing; a batch is live when any payment it settles is. A real database (PGlite, or
 * PostgreSQL with KESSAI_TEST_PG_URL) with the authentication server's migrations; the issuer is a
 * fake of its feed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  closedBatchFeed,
  KessaiError,
  limits,
  newId,
  settlementBatchEvent,
  type ClosedBatchFeed,
  type SettlementBatchView,
} from '@kessai/protocol';
import { createLogger, migrate, openDb, type Db } from '@kessai/service';
import type { AuthContext } from '../src/context.ts';
import { pollSettlementEvents } from '../src/settlement-events.ts';
import { eventLivemode } from '../src/webhooks.ts';
import { pgliteTemplate, scratchPostgres } from '../../../test/support/database.ts';

const migrations = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'migrations');
const merchantId = newId('mer');

let db: Db;
let drop: (() => Promise<void>) | undefined;
beforeAll(async () => {
  // PostgreSQL when KESSAI_TEST_PG_URL is set (where skip-locked claims really run side by side), else PGlite.
  const scratch = await scratchPostgres('kessai_settlement_events');
  drop = scratch?.drop;
  db = scratch ? await openDb({ url: scratch.url }) : await openDb({ pgliteTemplate: await pgliteTemplate() });
  await migrate(db, migrations);
  await db.query(
    "insert into merchants (id, name, api_key_hash, webhook_url, webhook_secret) values ($1, 'Shop', 'h', null, 's')",
    [merchantId],
  );
});
afterAll(async () => {
  await db?.close();
  await drop?.();
});

/** One issuer's feed: its batches in close order; `down` makes it unreachable; `asks` counts the calls. */
class FakeIssuer {
  readonly batches: Array<{ batch: SettlementBatchView; paymentRequestIds: string[] }> = [];
  down = false;
  asks = 0;
  constructor(readonly id: string) {}

  close(
    merchant = merchantId,
    paymentRequestIds: string[] = [],
    id = `stb_${newId('evt').slice(4, 30)}`,
  ): SettlementBatchView {
    const batch: SettlementBatchView = {
      id,
      issuer_id: this.id,
      business_day: '2026-01-05',
      time_zone: 'UTC',
      merchant_id: merchant,
      currency: 'JPY',
      fee_schedule: { basis_points: 250, fixed_minor: '0' },
      captured_minor: '1000',
      refunded_minor: '0',
      fees_minor: '25',
      net_minor: '975',
      carried_in_minor: '0',
      payout_minor: '975',
      carried_out_minor: '0',
      fee_transfer_id: `${id}.fee`,
      payout_transfer_id: `${id}.payout`,
      line_count: 1,
      created_at: new Date().toISOString(),
    };
    this.batches.push({ batch, paymentRequestIds });
    return batch;
  }

  feed(url: URL): ClosedBatchFeed {
    this.asks += 1;
    if (this.down) throw new KessaiError('issuer_unavailable');
    const after = url.searchParams.get('after');
    const from = after === null ? 0 : Number(after.slice(0, after.indexOf(':')));
    const limit = Number(url.searchParams.get('limit'));
    const items = this.batches.slice(from, from + limit).map(({ batch, paymentRequestIds }, i) => ({
      cursor: `${from + i + 1}:${batch.id}`,
      batch,
      payment_request_ids: paymentRequestIds,
    }));
    return closedBatchFeed.parse({ items, has_more: this.batches.length > from + limit });
  }
}

const issuers = { sakura: new FakeIssuer('sakura-bank'), fuji: new FakeIssuer('fuji-bank') };

/** A broker process: its own context (and so its own poll gate) on the shared database. */
function brokerProcess(): AuthContext {
  const routes = Object.values(issuers).map((issuer) => ({
    id: issuer.id,
    baseUrl: `https://${issuer.id}.test`,
    cardPrefixes: [],
  }));
  const http = {
    call: async (_method: string, url: string) => {
      const parsed = new URL(url);
      expect(parsed.pathname).toBe('/internal/v1/settlement-batches');
      const issuer = Object.values(issuers).find((each) => parsed.host === `${each.id}.test`)!;
      await new Promise((resolve) => setTimeout(resolve, 5));
      return issuer.feed(parsed);
    },
  };
  return {
    config: { db, issuers: routes, logger: createLogger({ name: 'test', level: 'silent' }) },
    http,
  } as unknown as AuthContext;
}

/** Each poll of a process is later than its last by the poll interval (its gate opens again). */
let clockMs = 0;
const later = () => new Date((clockMs = Math.max(clockMs + limits.settlementEventsPollMs, Date.now())));

async function batchEvents(): Promise<Array<{ id: string; type: string; livemode: boolean; body: string }>> {
  return db.query(
    `select id, event_type as type, ${eventLivemode} as livemode, body from webhook_outbox where event_type = 'settlement_batch.closed' order by created_at, id`,
  );
}

describe('settlement batch events', () => {
  it('two broker processes polling at once queue one event per batch, and only one asks each issuer', async () => {
    const [first, second] = [issuers.sakura.close(), issuers.sakura.close()];
    const [a, b] = [brokerProcess(), brokerProcess()];
    const now = later();
    const queued = await Promise.all([pollSettlementEvents(a, now), pollSettlementEvents(b, now)]);
    expect(queued.reduce((x, y) => x + y, 0)).toBe(2);
    expect(issuers.sakura.asks).toBe(1);
    const events = await batchEvents();
    expect(events.map((event) => JSON.parse(event.body).data.id)).toEqual([first.id, second.id]);
    for (const event of events) {
      const parsed = settlementBatchEvent.parse(JSON.parse(event.body));
      expect(parsed).toMatchObject({ id: event.id, type: 'settlement_batch.closed', livemode: false });
    }
    // Within the poll interval the issuer is not asked again, by either process.
    await Promise.all([pollSettlementEvents(a, now), pollSettlementEvents(brokerProcess(), now)]);
    expect(issuers.sakura.asks).toBe(1);
  });

  it('reads on page by page, and a lost cursor re-reads the issuer without queuing a batch twice', async () => {
    for (let i = 0; i < limits.settlementEventsPageMax + 3; i++) issuers.sakura.close();
    const broker = brokerProcess();
    const now = later();
    expect(await pollSettlementEvents(broker, now)).toBe(limits.settlementEventsPageMax);
    // The issuer has more: the next worker pass of the same process reads the next page at once.
    expect(await pollSettlementEvents(broker, now)).toBe(3);
    expect(await batchEvents()).toHaveLength(issuers.sakura.batches.length);
    await db.query("update settlement_event_cursors set cursor = null, next_poll_at = now() - interval '1 second'");
    for (let i = 0; i < 3; i++) await pollSettlementEvents(broker, later());
    expect(await batchEvents()).toHaveLength(issuers.sakura.batches.length);
  });

  it('an unreachable issuer is asked again at the next poll; a batch of a merchant unknown here queues nothing', async () => {
    const broker = brokerProcess();
    await pollSettlementEvents(broker, later());
    issuers.fuji.down = true;
    const waiting = issuers.fuji.close();
    issuers.fuji.close(newId('mer'));
    expect(await pollSettlementEvents(broker, later())).toBe(0);
    issuers.fuji.down = false;
    expect(await pollSettlementEvents(broker, later())).toBe(1);
    const [row] = await db.query<{ event_id: string | null }>(
      "select event_id from settlement_batch_events where issuer_id = 'fuji-bank' and batch_id = $1",
      [issuers.fuji.batches[1]!.batch.id],
    );
    expect(row).toEqual({ event_id: null });
    expect((await batchEvents()).filter((event) => JSON.parse(event.body).data.id === waiting.id)).toHaveLength(1);
  });

  it('the same batch id at two issuers is two batches, two events; a batch is live when a payment it settles is live', async () => {
    const live = newId('pr');
    await db.query(
      `insert into payment_requests (id, merchant_id, order_id, currency, amount_minor, line_items, status, expires_at, livemode)
       values ($1, $2, 'o-live', 'JPY', 1000, '[]', 'captured', now(), true)`,
      [live, merchantId],
    );
    const shared = `stb_${'b'.repeat(26)}`;
    issuers.sakura.close(merchantId, [newId('pr')], shared);
    issuers.fuji.close(merchantId, [newId('pr'), live], shared);
    const broker = brokerProcess();
    await pollSettlementEvents(broker, later());
    const events = (await batchEvents()).filter((event) => JSON.parse(event.body).data.id === shared);
    expect(
      events.map((event) => [JSON.parse(event.body).data.issuer_id, event.livemode, JSON.parse(event.body).livemode]),
    ).toEqual(
      expect.arrayContaining([
        ['sakura-bank', false, false],
        ['fuji-bank', true, true],
      ]),
    );
    expect(events).toHaveLength(2);
  });
});
