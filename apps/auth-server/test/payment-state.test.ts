/**
 * The payment-request state machine (payment-state.ts) on a real database with the
 * authentication server's migrations: every transition of the table is applied and queues its
 * webhook event (with the next sequence number) in the same statement; every (state, event) pair
 * not in the table is refused and writes nothing; a transition from a state the row has left
 * writes nothing; and docs/protocol.md lists exactly this table.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId, paymentRequestStatus, webhookEvent, type PaymentRequestStatus } from '@kessai/protocol';
import { migrate, openDb, type Db } from '@kessai/service';
import type { PaymentRequestRow } from '../src/payment-requests.ts';
import { IllegalTransition, ruleFor, transition, transitions, type PaymentEvent } from '../src/payment-state.ts';
import { pgliteTemplate, scratchPostgres } from '../../../test/support/database.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..', '..', '..');
const events = [...new Set(transitions.map((rule) => rule.event))] as PaymentEvent[];
const states = paymentRequestStatus.options;
const merchantId = newId('mer');
const reset = { resolve_at: null, resolve_attempts: 0, attempt_nonce: null, credential_id: null, issuer_id: null } as const;
const context = { publicBaseUrl: 'https://broker.test', now: new Date('2026-12-07T00:00:00Z') };

let db: Db;
let drop: (() => Promise<void>) | undefined;
beforeAll(async () => {
  const scratch = await scratchPostgres('kessai_payment_state');
  drop = scratch?.drop;
  db = scratch ? await openDb({ url: scratch.url }) : await openDb({ pgliteTemplate: await pgliteTemplate() });
  await migrate(db, path.join(here, '..', 'migrations'));
  await db.query("insert into merchants (id, name, api_key_hash, webhook_url, webhook_secret) values ($1, 'Shop', 'h', null, 'whsec_x')", [merchantId]);
});
afterAll(async () => {
  await db?.close();
  await drop?.();
});

/** A request in `status`, as the database holds it. */
async function requestIn(status: PaymentRequestStatus, attemptNonce: string | null = null): Promise<PaymentRequestRow> {
  const [row] = await db.query<PaymentRequestRow>(
    `insert into payment_requests (id, merchant_id, order_id, currency, amount_minor, captured_minor, line_items, status, expires_at, attempt_nonce)
     values ($1, $7, $2, 'JPY', 1200, $3, $4, $5, $6, $8) returning *`,
    [newId('pr'), newId('ord'), status === 'captured' ? 1200n : 0n, JSON.stringify([{ description: 'Chawan', quantity: 1, unit_price_minor: '1200' }]), status, new Date(context.now.getTime() + 60_000), merchantId, attemptNonce],
  );
  return row!;
}

async function outbox(id: string) {
  const rows = await db.query<{ event_type: string; body: string }>('select event_type, body from webhook_outbox where body like $1 order by created_at', [`%${id}%`]);
  return rows.map((row) => ({ type: row.event_type, event: webhookEvent.parse(JSON.parse(row.body)) }));
}

describe('the payment-request state machine', () => {
  it.each(transitions.map((rule) => [`${rule.from} --${rule.event}--> ${rule.to}`, rule] as const))('applies %s and queues its event in the same statement', async (_name, rule) => {
    const from = await requestIn(rule.from);
    const next = await transition(db, from, rule.event, {}, context);
    expect(next?.status).toBe(rule.to);
    const [stored] = await db.query<PaymentRequestRow>('select * from payment_requests where id = $1', [from.id]);
    expect(stored?.status).toBe(rule.to);
    const queued = await outbox(from.id);
    if (rule.webhook === null) {
      expect(queued).toEqual([]);
      expect(BigInt(stored!.event_sequence)).toBe(0n);
    } else {
      expect(queued).toHaveLength(1);
      expect(queued[0]!.type).toBe(rule.webhook);
      expect(queued[0]!.event).toMatchObject({ type: rule.webhook, sequence: 1, data: { id: from.id, status: rule.to } });
      expect(BigInt(stored!.event_sequence)).toBe(1n);
    }
  });

  const refused = states.flatMap((state) => events.filter((event) => !ruleFor(state, event)).map((event) => [state, event] as const));
  it.each(refused)('refuses %s + %s (not in the table) and writes nothing', async (state, event) => {
    const from = await requestIn(state);
    await expect(transition(db, from, event, {}, context)).rejects.toBeInstanceOf(IllegalTransition);
    const [stored] = await db.query<PaymentRequestRow>('select * from payment_requests where id = $1', [from.id]);
    expect(stored?.status).toBe(state);
    expect(await outbox(from.id)).toEqual([]);
  });

  it('writes nothing when the request left the state the caller saw (the other writer won)', async () => {
    const seen = await requestIn('pending');
    expect((await transition(db, seen, 'approval_saved', {}, context))?.status).toBe('authorizing');
    expect(await transition(db, seen, 'payer_declined', {}, context)).toBeUndefined();
    expect(await transition(db, seen, 'expired', {}, context)).toBeUndefined();
    expect(await outbox(seen.id)).toEqual([]);
  });

  it('numbers the events of one request 1, 2, 3 … in the order they were queued', async () => {
    let row = await requestIn('pending');
    for (const event of ['approval_saved', 'issuer_approved', 'captured', 'refunded', 'refunded'] as const) row = (await transition(db, row, event, event === 'refunded' ? { refunded_minor: 100n } : {}, context))!;
    expect((await outbox(row.id)).map(({ event }) => [event.type, event.sequence])).toEqual([
      ['payment_request.approved', 1],
      ['payment_request.captured', 2],
      ['payment_request.refunded', 3],
      ['payment_request.refunded', 4],
    ]);
  });

  it('never lowers a monotonic column (a refund total answered late)', async () => {
    let row = await requestIn('captured');
    row = (await transition(db, row, 'refunded', { refunded_minor: 700n }, context))!;
    row = (await transition(db, row, 'refunded', { refunded_minor: 300n }, context))!;
    expect(BigInt(row.refunded_minor)).toBe(700n);
  });

  // A stale `authorizing` snapshot of attempt N1 (a second broker's in-doubt worker whose reversal
  // answer was slow) cannot land on attempt N2 of the same request: the guard is the status and the attempt's nonce.
  it('does not let a stale snapshot reverse a later attempt of the same request (worker A reversed N1, worker B already did, the payer answered again with N2)', async () => {
    const staleN1 = await requestIn('authorizing', 'nonce-attempt-1');
    // Worker B: reversal answered `reversed`, the request is pending again.
    const pending = await transition(db, staleN1, 'reversed', reset, context);
    expect(pending?.status).toBe('pending');
    // The payer answers again: attempt N2 is saved (as saveIntent does) and is at the bank now.
    const [attempt2] = await db.query<PaymentRequestRow>("update payment_requests set status = 'authorizing', attempt_nonce = 'nonce-attempt-2', issuer_id = 'sakura-bank' where id = $1 and status = 'pending' returning *", [staleN1.id]);
    expect(attempt2?.attempt_nonce).toBe('nonce-attempt-2');
    // Worker A, whose reversal of N1 was slow, applies its outcome with its snapshot of attempt N1.
    const wrong = await transition(db, staleN1, 'reversed', reset, context);
    // Expected: nothing written (the attempt A reversed is not the one in flight).
    expect(wrong).toBeUndefined();
    const [stored] = await db.query<PaymentRequestRow>('select * from payment_requests where id = $1', [staleN1.id]);
    expect([stored?.status, stored?.attempt_nonce]).toEqual(['authorizing', 'nonce-attempt-2']);
    // …and the approve path of N2 can still record the bank's approval.
    const approved = await transition(db, attempt2!, 'issuer_approved', { resolve_at: null }, context);
    expect(approved?.status).toBe('approved');
  });

  it('is the table docs/protocol.md shows', async () => {
    const doc = await readFile(path.join(root, 'docs', 'protocol.md'), 'utf8');
    const section = doc.slice(doc.indexOf('## The payment-request state machine'), doc.indexOf('## Settlement server (40)'));
    const rows = [...section.matchAll(/^\| `([a-z_]+)` \| `([a-z_]+)` \| `([a-z_]+)` \| (?:`([a-z_.]+)`|—) \|$/gm)].map((m) => ({ from: m[1], event: m[2], to: m[3], webhook: m[4] ?? null }));
    expect(rows).toEqual(transitions.map((rule) => ({ ...rule })));
  });
});
