/**
 * The state machine's guard is the status and the attempt's nonce: a writer holding a stale
 * `authorizing` snapshot of attempt N1 (a second broker's in-doubt worker whose reversal answer was
 * slow, or the approve path's late answer) cannot apply its event to attempt N2 of the same request
 * (authorizing(N1) → pending, reversed → authorizing(N2), the payer answered again), which would turn
 * N2 back to `pending` while the bank places its hold.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '@kessai/protocol';
import { migrate, openDb, type Db } from '@kessai/service';
import type { PaymentRequestRow } from '../src/payment-requests.ts';
import { transition } from '../src/payment-state.ts';
import { pgliteTemplate, scratchPostgres } from '../../../test/support/database.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const merchantId = newId('mer');
const context = { publicBaseUrl: 'https://broker.test', now: new Date() };

let db: Db;
let drop: (() => Promise<void>) | undefined;
beforeAll(async () => {
  const scratch = await scratchPostgres('kessai_state_attempts');
  drop = scratch?.drop;
  db = scratch ? await openDb({ url: scratch.url }) : await openDb({ pgliteTemplate: await pgliteTemplate() });
  await migrate(db, path.join(here, '..', 'migrations'));
  await db.query("insert into merchants (id, name, api_key_hash, webhook_url, webhook_secret) values ($1, 'Shop', 'h', null, 'whsec_x')", [merchantId]);
});
afterAll(async () => {
  await db?.close();
  await drop?.();
});

async function authorizingRequest(nonce: string): Promise<PaymentRequestRow> {
  const [row] = await db.query<PaymentRequestRow>(
    `insert into payment_requests (id, merchant_id, order_id, currency, amount_minor, captured_minor, line_items, status, expires_at, attempt_nonce, issuer_id, resolve_at, resolve_attempts)
     values ($1, $2, $3, 'JPY', 1200, 0, $4, 'authorizing', $5, $6, 'sakura-bank', now(), 0) returning *`,
    [newId('pr'), merchantId, newId('ord'), JSON.stringify([{ description: 'Chawan', quantity: 1, unit_price_minor: '1200' }]), new Date(Date.now() + 600_000), nonce],
  );
  return row!;
}

const reset = { resolve_at: null, resolve_attempts: 0, attempt_nonce: null, credential_id: null, issuer_id: null } as const;

describe('a stale authorizing snapshot (ABA)', () => {
  it('does not reverse a later attempt of the same request (worker A reversed N1, worker B already did, the payer answered again with N2)', async () => {
    const staleN1 = await authorizingRequest('nonce-attempt-1');
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
});
