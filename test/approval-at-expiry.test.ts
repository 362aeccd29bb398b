/**
 * An approval is never saved after its request expired: the merchant (and a wallet that lost its
 * answer) are shown `expired` as soon as `expires_at` passes, before the expiry pass writes it, so
 * saveIntent itself requires `expires_at` still ahead — whatever the approve handler's checks saw
 * when it began (here it is slowed between them and the save).
 */
import { describe, expect, it } from 'vitest';
import { KessaiError } from '@kessai/protocol';
import { idempotencyKey, merchantForFile } from './support/payer.ts';
import { demoCard } from './support/system.ts';

const kessai = merchantForFile();
const cardNumber = '4242424242424242';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('expiry and a slow approval', () => {
  it('never approves a request the merchant was already shown as expired', async () => {
    const wallet = await kessai.payer(cardNumber);
    const created = await kessai.merchant.createPaymentRequest({ order_id: `o-${idempotencyKey()}`, currency: 'JPY', amount_minor: '500', line_items: [{ description: 'Chawan', quantity: 1, unit_price_minor: '500' }], expires_in_seconds: 10 }, idempotencyKey());
    const request = await wallet.fetchRequest(created.id);
    const expiresAt = new Date(created.expires_at).getTime();
    const db = kessai.system.auth.db as { query: (sql: string, params?: readonly unknown[]) => Promise<unknown[]> };
    const query = db.query.bind(db);
    let armed = true;
    db.query = async (sql, params) => {
      // The worker pass is stuck behind a slow issuer: the expiry pass does not run meanwhile.
      if (armed && sql.startsWith("select * from payment_requests where status = 'pending' and expires_at <=")) return [];
      const rows = await query(sql, params);
      // The approve handler is slow between its expiry check and saveIntent (here: its read of the request, with the merchant's name).
      if (armed && sql.startsWith('select p.*, m.name as merchant_name from payment_requests p')) await sleep(Math.max(0, expiresAt - Date.now() + 1_000));
      return rows;
    };
    let shown: string;
    let told: string;
    try {
      // The payer answers a second before the request expires (the broker's stall stays well under its in-doubt check).
      await sleep(Math.max(0, expiresAt - Date.now() - 1_000));
      const approving = wallet.approve(request, demoCard(cardNumber).pin);
      await sleep(Math.max(0, expiresAt - Date.now() + 500));
      shown = (await kessai.merchant.getPaymentRequest(created.id)).status;
      told = await approving.then(
        (outcome) => outcome.status,
        (err: unknown) => (err instanceof KessaiError ? err.code : String(err)),
      );
    } finally {
      armed = false;
      db.query = query;
    }
    expect(shown).toBe('expired');
    expect(told).toBe('payment_request_expired');
  }, 30_000);
});
