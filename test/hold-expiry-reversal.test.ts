/**
 * Expiring an approved request nobody captured releases its hold at the bank at once: the bank's
 * own expiry pass is off here (it would run only hourly), its holds time out after 2 s, and the
 * broker's hold-sync, told `expired` by the status inquiry, sends a reversal — which releases the
 * due hold in the ledger — before it turns the request `expired` and tells the merchant. The payer's
 * available balance is whole again without waiting for the bank's pass.
 */
import { describe, expect, it } from 'vitest';
import { approvedRequest, cardAccount, payerForFile } from './support/payer.ts';
import { waitFor } from './support/system.ts';

const cardNumber = '4000056655665556';
const kessai = payerForFile(cardNumber, { holdTimeoutSeconds: 2, expiryIntervalMs: 60 * 60 * 1000 });

describe('an approved request whose hold is due', () => {
  it('is reversed by hold-sync: the hold is released in the ledger, the request expires and the merchant is told', async () => {
    const before = await cardAccount(kessai.system, cardNumber);
    const id = await approvedRequest(kessai.merchant, kessai.wallet, cardNumber, 2_300n);
    expect((await cardAccount(kessai.system, cardNumber)).debitsPending - before.debitsPending).toBe(2_300n);
    const sakura = kessai.system.settlements.find((s) => s.issuer.id === 'sakura-bank')!;
    await waitFor('hold-sync to expire the request', async () => ((await kessai.merchant.getPaymentRequest(id)).status === 'expired' ? true : undefined), 20_000);
    // Released by the reversal (the bank's expiry pass has not run): nothing pending for this payer any more.
    const [hold] = await sakura.config.db.query<{ status: string; state: string }>('select a.status, t.state from authorizations a join transfers t on t.id = a.hold_transfer_id where a.request_id = $1', [id]);
    expect(hold).toEqual({ status: 'expired', state: 'expired' });
    expect((await cardAccount(kessai.system, cardNumber)).debitsPending).toBe(before.debitsPending);
    const events = await kessai.system.auth.db.query<{ event_type: string }>('select event_type from webhook_outbox where payment_request_id = $1 order by created_at', [id]);
    expect(events.map((e) => e.event_type)).toEqual(['payment_request.approved', 'payment_request.expired']);
  });
});
