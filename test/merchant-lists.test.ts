/**
 * The merchant API's lists (docs/protocol.md, "Lists"): `GET /v1/payment-requests`, `/v1/refunds`
 * and `/v1/events`, newest first and paged by `limit` and `starting_after`; each merchant sees its
 * own objects only, another's cursor is unknown (`404 starting_after_not_found`), and events
 * older than eventsRetentionDays are swept.
 */
import { describe, expect, it } from 'vitest';
import { limits } from '@kessai/protocol';
import { sweepOldEvents } from '../apps/auth-server/src/merchant-lists.ts';
import { callJson, waitFor } from './support/system.ts';
import { idempotencyKey, payerForFile } from './support/payer.ts';

const kessai = payerForFile('4000056655665556');
const auth = () => kessai.system.auth;
const day = 24 * 60 * 60 * 1000;

/** A new merchant made by the operator: its id and API key. */
async function newMerchant(): Promise<{ id: string; apiKey: string }> {
  const created = await callJson(kessai.system, 'POST', `${auth().url}/admin/v1/merchants`, { name: `Lists ${idempotencyKey()}` }, kessai.system.operatorHeaders(auth().url));
  expect(created.status).toBe(200);
  return { id: created.body.merchant.merchant_id, apiKey: created.body.api_key };
}

const get = (path: string, apiKey = kessai.system.merchant.apiKey) => callJson(kessai.system, 'GET', `${auth().url}${path}`, undefined, { authorization: `Bearer ${apiKey}` });

async function createRequest(apiKey: string, amount = '500'): Promise<string> {
  const body = { order_id: `o-${idempotencyKey()}`, currency: 'JPY', amount_minor: amount, line_items: [{ description: 'Sencha', quantity: 1, unit_price_minor: amount }] };
  const created = await callJson(kessai.system, 'POST', `${auth().url}/v1/payment-requests`, body, { authorization: `Bearer ${apiKey}`, 'idempotency-key': idempotencyKey() });
  expect(created.status).toBe(201);
  return created.body.id as string;
}

/** Waits for the worker's expiry pass to queue `count` expired events of the merchant. */
function expiredEvents(merchantId: string, count: number): Promise<{ id: string }[]> {
  return waitFor('expired events', async () => {
    const rows = await auth().db.query<{ id: string }>("select id from webhook_outbox where merchant_id = $1 and event_type = 'payment_request.expired' order by created_at desc, id desc", [merchantId]);
    return rows.length === count ? rows : undefined;
  });
}

/** Every page of `path` at `limit` per page: the ids in order, and how many pages it took. */
async function everyPage(path: string, limit: number, apiKey?: string): Promise<{ ids: string[]; pages: number }> {
  const ids: string[] = [];
  let pages = 0;
  for (let after: string | undefined; ; ) {
    const separator = path.includes('?') ? '&' : '?';
    const page = await get(`${path}${separator}limit=${limit}${after ? `&starting_after=${after}` : ''}`, apiKey);
    expect(page.status).toBe(200);
    expect(page.body.limit).toBe(limit);
    expect(page.body.items.length).toBeLessThanOrEqual(limit);
    ids.push(...page.body.items.map((item: { id: string }) => item.id));
    pages += 1;
    if (!page.body.has_more) return { ids, pages };
    expect(page.body.items).toHaveLength(limit);
    after = ids.at(-1);
  }
}

describe('merchant lists', () => {
  it('pages through payment requests newest first, every one once, in the order created_at desc, id desc', async () => {
    const merchant = await newMerchant();
    const created: string[] = [];
    for (let i = 0; i < 7; i++) created.push(await createRequest(merchant.apiKey));
    const { ids, pages } = await everyPage('/v1/payment-requests', 3, merchant.apiKey);
    expect(pages).toBe(3);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual([...created].sort());
    const ordered = await auth().db.query<{ id: string }>('select id from payment_requests where merchant_id = $1 order by created_at desc, id desc', [merchant.id]);
    expect(ids).toEqual(ordered.map((row) => row.id));
    const first = await get(`/v1/payment-requests/${created[0]}`, merchant.apiKey);
    const listed = await get('/v1/payment-requests?limit=100', merchant.apiKey);
    expect(listed.body.items.find((item: { id: string }) => item.id === created[0])).toEqual(first.body);
  });

  it('pages rows created within one millisecond (microseconds apart) without losing one at a page boundary', async () => {
    const merchant = await newMerchant();
    const created: string[] = [];
    for (let i = 0; i < 4; i++) created.push(await createRequest(merchant.apiKey));
    // PostgreSQL keeps microseconds; a cursor read back through a JavaScript Date would keep milliseconds only.
    for (const [i, id] of created.entries()) {
      await auth().db.query("update payment_requests set created_at = '2026-01-01T00:00:00.000100Z'::timestamptz + make_interval(secs => $2::double precision / 1000000) where id = $1", [id, (i + 1) * 100]);
    }
    const { ids } = await everyPage('/v1/payment-requests', 1, merchant.apiKey);
    expect(ids).toEqual([...created].reverse());
  });

  it('answers the default and the maximum limit, and refuses limits out of bounds with validation_failed', async () => {
    const merchant = await newMerchant();
    await createRequest(merchant.apiKey);
    const fallback = await get('/v1/payment-requests', merchant.apiKey);
    expect(fallback.body).toMatchObject({ limit: limits.merchantListMax, has_more: false });
    expect(fallback.body.items).toHaveLength(1);
    for (const path of ['/v1/payment-requests', '/v1/refunds', '/v1/events']) {
      expect((await get(`${path}?limit=${limits.merchantListMax}`, merchant.apiKey)).status).toBe(200);
      for (const limit of ['0', String(limits.merchantListMax + 1), '-1', '2.5', 'x']) {
        const refused = await get(`${path}?limit=${limit}`, merchant.apiKey);
        expect(refused.status).toBe(400);
        expect(refused.body.code).toBe('validation_failed');
      }
    }
  });

  it('another merchant sees none of this one’s objects, and its cursor is 404 starting_after_not_found', async () => {
    const id = await kessai.approved(800n);
    await kessai.merchant.capture(id, {}, idempotencyKey());
    const refund = await kessai.merchant.refund(id, 300n, idempotencyKey());
    const [event] = await auth().db.query<{ id: string }>('select id from webhook_outbox where payment_request_id = $1 order by created_at limit 1', [id]);
    const other = await newMerchant();
    for (const path of ['/v1/payment-requests', '/v1/refunds', '/v1/events']) {
      const page = await get(path, other.apiKey);
      expect(page.body).toEqual({ items: [], limit: limits.merchantListMax, has_more: false });
    }
    const cursors = [`/v1/payment-requests?starting_after=${id}`, `/v1/refunds?starting_after=${refund.id}`, `/v1/events?starting_after=${event!.id}`];
    for (const path of cursors) {
      const refused = await get(path, other.apiKey);
      expect(refused.status).toBe(404);
      expect(refused.body.code).toBe('starting_after_not_found');
      expect((await get(path)).status).toBe(200);
    }
    const unknown = await get('/v1/payment-requests?starting_after=pr_00000000000000000000000000');
    expect([unknown.status, unknown.body.code]).toEqual([404, 'starting_after_not_found']);
  });

  it('lists refunds newest first, filtered by payment request, each as the refund view it was answered with', async () => {
    const id = await kessai.approved(3000n);
    await kessai.merchant.capture(id, {}, idempotencyKey());
    const refunds = [];
    for (const amount of [500n, 700n, 900n]) refunds.push(await kessai.merchant.refund(id, amount, idempotencyKey()));
    const elsewhere = await kessai.approved(1000n);
    await kessai.merchant.capture(elsewhere, {}, idempotencyKey());
    await kessai.merchant.refund(elsewhere, 100n, idempotencyKey());
    const { ids, pages } = await everyPage(`/v1/refunds?payment_request_id=${id}`, 1);
    expect(pages).toBe(3);
    expect(ids).toEqual(refunds.map((refund) => refund.id).reverse());
    const listed = await get(`/v1/refunds?payment_request_id=${id}`);
    expect(listed.body.items).toEqual([...refunds].reverse());
    const all = await get('/v1/refunds');
    expect(all.body.items.map((item: { payment_request_id: string }) => item.payment_request_id)).toContain(elsewhere);
  });

  it('lists events as their webhook bodies, filtered by type', async () => {
    const id = await kessai.approved(1500n);
    await kessai.merchant.capture(id, {}, idempotencyKey());
    const events = (await get('/v1/events')).body.items as { id: string; type: string; created_at: string; data: { id: string } }[];
    const mine = events.filter((event) => event.data.id === id);
    // Events hold no personal data: no card number.
    expect(JSON.stringify(events)).not.toContain('4000056655665556');
    expect(mine.map((event) => event.type)).toEqual(['payment_request.captured', 'payment_request.approved']);
    const [row] = await auth().db.query<{ body: string }>('select body from webhook_outbox where id = $1', [mine[0]!.id]);
    expect(mine[0]).toEqual(JSON.parse(row!.body));
    const captured = (await get('/v1/events?type=payment_request.captured')).body.items as { type: string }[];
    expect(captured.length).toBeGreaterThan(0);
    expect(new Set(captured.map((event) => event.type))).toEqual(new Set(['payment_request.captured']));
    const both = (await get('/v1/events?types=payment_request.captured,payment_request.approved')).body.items as { type: string }[];
    expect(new Set(both.map((event) => event.type))).toEqual(new Set(['payment_request.captured', 'payment_request.approved']));
    const unknown = await get('/v1/events?types=payment_request.captured,payment_request.nothing');
    expect([unknown.status, unknown.body.code]).toEqual([400, 'validation_failed']);
  });

  it('pages events across more than two pages, every one once', async () => {
    const merchant = await newMerchant();
    const created: string[] = [];
    for (let i = 0; i < 5; i++) created.push(await createRequest(merchant.apiKey));
    for (const id of created) await auth().db.query("update payment_requests set expires_at = now() - interval '1 second' where id = $1", [id]);
    const expired = await expiredEvents(merchant.id, 5);
    const { ids, pages } = await everyPage('/v1/events', 2, merchant.apiKey);
    expect(pages).toBe(3);
    expect(ids).toEqual(expired.map((row) => row.id));
  });

  it('sweeps events older than eventsRetentionDays that are no longer being delivered', async () => {
    const merchant = await newMerchant();
    for (let i = 0; i < 2; i++) await createRequest(merchant.apiKey);
    await auth().db.query("update payment_requests set expires_at = now() - interval '1 second' where merchant_id = $1", [merchant.id]);
    const rows = await expiredEvents(merchant.id, 2);
    const [old, recent] = [rows[0]!.id, rows[1]!.id];
    const now = new Date();
    await auth().db.query("update webhook_outbox set status = 'delivered', created_at = $2 where id = $1", [old, new Date(now.getTime() - (limits.eventsRetentionDays + 1) * day)]);
    await auth().db.query("update webhook_outbox set status = 'delivered', created_at = $2 where id = $1", [recent, new Date(now.getTime() - (limits.eventsRetentionDays - 1) * day)]);
    await sweepOldEvents(auth().db, now);
    const left = (await get('/v1/events', merchant.apiKey)).body.items.map((event: { id: string }) => event.id);
    expect(left).toEqual([recent]);
    expect(await auth().db.query('select id from webhook_outbox where id = $1', [old])).toEqual([]);
  });
});
