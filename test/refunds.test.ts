/**
 * Step 409, refunds through the merchant API: several partial refunds up to the captured amount,
 * each a reverse transfer in the issuer's ledger, each with Idempotency-Key, each reaching the
 * shop as a signed `payment_request.refunded` event; refusals for too much and for a payment that
 * was not captured.
 */
import { describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { ledgerTotals } from '@kessai/settlement-server';
import { waitFor } from './support/system.ts';
import { codeOf } from './support/errors.ts';
import { idempotencyKey, payerForFile } from './support/payer.ts';

const kessai = payerForFile('4000056655665556');

const sakura = () => kessai.system.settlements.find((s) => s.issuer.id === 'sakura-bank')!;

describe('refunds', () => {
  it('refunds a capture in several parts up to the captured amount, each a reverse transfer, and refuses more with refund_exceeds_captured', async () => {
    const id = await kessai.approved(5000n);
    await kessai.merchant.capture(id, { amountMinor: 4000n }, idempotencyKey());
    const before = await kessai.account();
    const first = await kessai.merchant.refund(id, 1500n, idempotencyKey());
    expect(first).toMatchObject({ payment_request_id: id, currency: 'JPY', amount_minor: '1500', refunded_minor: '1500', captured_minor: '4000' });
    const second = await kessai.merchant.refund(id, 2500n, idempotencyKey());
    expect(second).toMatchObject({ amount_minor: '2500', refunded_minor: '4000' });
    expect(second.id).not.toBe(first.id);
    expect((await kessai.account()).creditsPosted - before.creditsPosted).toBe(4000n);
    expect(await codeOf(kessai.merchant.refund(id, 1n, idempotencyKey()))).toBe('refund_exceeds_captured');
    for (const row of await ledgerTotals(sakura().config.db)) expect([row.debits_pending, row.debits_posted]).toEqual([row.credits_pending, row.credits_posted]);
  });

  it('answers a retried refund with the same Idempotency-Key with the stored answer and moves the money once', async () => {
    const id = await kessai.approved(3000n);
    await kessai.merchant.capture(id, {}, idempotencyKey());
    const before = await kessai.account();
    const retryKey = idempotencyKey();
    const first = await kessai.merchant.refund(id, 700n, retryKey);
    expect(await kessai.merchant.refund(id, 700n, retryKey)).toEqual(first);
    expect((await kessai.account()).creditsPosted - before.creditsPosted).toBe(700n);
    expect(await codeOf(kessai.merchant.refund(id, 800n, retryKey))).toBe('idempotency_key_reused');
  });

  it('the issuer refuses a refund beyond the capture by itself, and answers a repeated refund id without moving money twice', async () => {
    const id = await kessai.approved(1000n);
    await kessai.merchant.capture(id, { amountMinor: 600n }, idempotencyKey());
    const refund = await kessai.merchant.refund(id, 600n, idempotencyKey());
    const before = await kessai.account();
    // The authentication server's retry after a crash sends the same refund id again.
    const [row] = await kessai.system.auth.db.query<{ issuer_id: string }>('select issuer_id from payment_requests where id = $1', [id]);
    expect(row!.issuer_id).toBe('sakura-bank');
    const client = kessai.system.pki.leaves['auth-server']!;
    const agent = new Agent({ connect: { ca: kessai.system.pki.caCertPem, cert: client.certPem, key: client.keyPem } });
    try {
      const call = async (body: unknown) => {
        const response = await request(`${sakura().url}/internal/v1/authorizations/${id}/refunds`, { method: 'POST', dispatcher: agent, body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
        return { status: response.statusCode, body: (await response.body.json()) as Record<string, unknown> };
      };
      expect(await call({ refund_id: refund.id, amount_minor: '600' })).toMatchObject({ status: 200, body: { refunded_minor: '600' } });
      expect(await call({ refund_id: refund.id.replace(/.$/, (c) => (c === '0' ? '1' : '0')), amount_minor: '1' })).toMatchObject({ status: 422, body: { code: 'refund_exceeds_captured' } });
    } finally {
      await agent.close();
    }
    expect((await kessai.account()).creditsPosted).toBe(before.creditsPosted);
  });

  it('refuses to refund a payment that was not captured with authorization_not_refundable', async () => {
    const id = await kessai.approved(900n);
    expect(await codeOf(kessai.merchant.refund(id, 100n, idempotencyKey()))).toBe('authorization_not_refundable');
    await kessai.merchant.void(id, idempotencyKey());
    expect(await codeOf(kessai.merchant.refund(id, 100n, idempotencyKey()))).toBe('authorization_not_refundable');
  });

  it('sends the shop a signed payment_request.refunded event carrying the refund', async () => {
    const id = await kessai.approved(1200n);
    await kessai.merchant.capture(id, {}, idempotencyKey());
    const refund = await kessai.merchant.refund(id, 200n, idempotencyKey());
    const [outbox] = await kessai.system.auth.db.query<{ body: string }>("select body from webhook_outbox where event_type = 'payment_request.refunded' and body like $1", [`%${refund.id}%`]);
    const event = JSON.parse(outbox!.body) as { id: string; data: { id: string }; refund: { id: string; amount_minor: string } };
    expect(event).toMatchObject({ data: { id }, refund: { id: refund.id, amount_minor: '200' } });
    // The shop accepts it only if the signature verifies; it records each processed event.
    const seen = await waitFor('the shop to process the refund event', async () => {
      const [row] = await kessai.system.shop.db.query<{ type: string }>('select type from processed_webhook_events where event_id = $1', [event.id]);
      return row?.type;
    });
    expect(seen).toBe('payment_request.refunded');
  });
});
