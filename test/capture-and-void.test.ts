/**
 * Step 409 through the merchant API: full and partial capture, void, and their refusals, with the
 * ledger checked after each — holds placed, posted or released exactly.
 */
import { describe, expect, it } from 'vitest';
import { requestHash } from '../apps/auth-server/src/idempotency.ts';
import { codeOf } from './support/errors.ts';
import { callJson } from './support/system.ts';
import { idempotencyKey, payerForFile } from './support/payer.ts';

const kessai = payerForFile('4000056655665556');

/** How the payer's debits move while `act` runs: pending and posted, after minus before. */
async function debitsMovedBy(act: () => Promise<unknown>): Promise<{ pending: bigint; posted: bigint }> {
  const before = await kessai.account();
  await act();
  const after = await kessai.account();
  return { pending: after.debitsPending - before.debitsPending, posted: after.debitsPosted - before.debitsPosted };
}

describe('capture and void', () => {
  it('places a hold on approval that reduces what the payer can spend', async () => {
    expect(await debitsMovedBy(() => kessai.approved(4000n))).toEqual({ pending: 4000n, posted: 0n });
  });

  it('captures part of an authorization, posting that part and releasing the rest', async () => {
    const id = await kessai.approved(5000n);
    const moved = await debitsMovedBy(async () => {
      expect(await kessai.merchant.capture(id, { amountMinor: 1800n }, idempotencyKey())).toMatchObject({ status: 'captured', captured_minor: '1800' });
    });
    expect(moved).toEqual({ pending: -5000n, posted: 1800n });
  });

  it('voids an authorization, releasing the whole hold', async () => {
    const id = await kessai.approved(3000n);
    const moved = await debitsMovedBy(async () => {
      expect(await kessai.merchant.void(id, idempotencyKey())).toMatchObject({ status: 'voided', captured_minor: '0' });
    });
    expect(moved).toEqual({ pending: -3000n, posted: 0n });
  });

  it('answers a retried capture with the same Idempotency-Key with the stored answer and posts once', async () => {
    const id = await kessai.approved(2000n);
    const retryKey = idempotencyKey();
    const moved = await debitsMovedBy(async () => {
      const first = await kessai.merchant.capture(id, {}, retryKey);
      expect(await kessai.merchant.capture(id, {}, retryKey)).toEqual(first);
    });
    expect(moved.posted).toBe(2000n);
  });

  it('lets a retry take over an Idempotency-Key left in progress by a request that died', async () => {
    const id = await kessai.approved(1500n);
    const retryKey = idempotencyKey();
    const path = `/v1/payment-requests/${id}/capture`;
    const hash = await requestHash('POST', path, {});
    await kessai.system.auth.db.query("insert into idempotency_keys (merchant_id, key, request_hash, state, created_at) values ($1, $2, $3, 'in_progress', now() - interval '2 minutes')", [kessai.system.merchant.merchantId, retryKey, hash]);
    expect(await kessai.merchant.capture(id, {}, retryKey)).toMatchObject({ status: 'captured', captured_minor: '1500' });
  });

  it('refuses to capture more than was authorized with capture_exceeds_authorization', async () => {
    const id = await kessai.approved(1000n);
    expect(await codeOf(kessai.merchant.capture(id, { amountMinor: 1001n }, idempotencyKey()))).toBe('capture_exceeds_authorization');
  });

  it('refuses to capture a request that was not approved with authorization_not_capturable', async () => {
    const created = await kessai.merchant.createPaymentRequest({ order_id: `o-${idempotencyKey()}`, currency: 'JPY', amount_minor: '100', line_items: [{ description: 'Tenugui', quantity: 1, unit_price_minor: '100' }] }, idempotencyKey());
    expect(await codeOf(kessai.merchant.capture(created.id, {}, idempotencyKey()))).toBe('authorization_not_capturable');
    const id = await kessai.approved(1000n);
    await kessai.merchant.void(id, idempotencyKey());
    expect(await codeOf(kessai.merchant.capture(id, {}, idempotencyKey()))).toBe('authorization_not_capturable');
  });

  /** A merchant call sent raw, past the SDK's own schema check (which refuses zero before sending, as a TypeError). */
  const merchantPost = (path: string, body: unknown) => callJson(kessai.system, 'POST', `${kessai.system.auth.url}${path}`, body, { authorization: `Bearer ${kessai.system.merchant.apiKey}`, 'idempotency-key': idempotencyKey() });

  it('refuses a payment request of zero with validation_failed: nothing to authorize (the SDK refuses to send it)', async () => {
    const zero = { order_id: `o-${idempotencyKey()}`, currency: 'JPY' as const, amount_minor: '0', line_items: [{ description: 'Free sample', quantity: 1, unit_price_minor: '0' }] };
    const answer = await merchantPost('/v1/payment-requests', zero);
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ code: 'validation_failed', errors: [{ path: 'body/amount_minor' }] });
    await expect(kessai.merchant.createPaymentRequest(zero, idempotencyKey())).rejects.toThrow(TypeError);
  });

  it('refuses a capture of zero with validation_failed (a void releases a hold) and a refund of zero too, and the hold stays', async () => {
    const id = await kessai.approved(700n);
    const moved = await debitsMovedBy(async () => {
      expect((await merchantPost(`/v1/payment-requests/${id}/capture`, { amount_minor: '0' })).body).toMatchObject({ code: 'validation_failed' });
      expect((await merchantPost(`/v1/payment-requests/${id}/refunds`, { amount_minor: '0' })).body).toMatchObject({ code: 'validation_failed' });
    });
    expect(moved).toEqual({ pending: 0n, posted: 0n });
    expect(await kessai.merchant.void(id, idempotencyKey())).toMatchObject({ status: 'voided' });
  });

  it('keeps debits equal to credits in the issuer’s ledger', async () => {
    for (const settlement of kessai.system.settlements) {
      const [sums] = await settlement.config.db.query<{ dp: bigint; cp: bigint; dpo: bigint; cpo: bigint }>('select sum(debits_pending) as dp, sum(credits_pending) as cp, sum(debits_posted) as dpo, sum(credits_posted) as cpo from ledger_accounts');
      expect(BigInt(sums!.dp)).toBe(BigInt(sums!.cp));
      expect(BigInt(sums!.dpo)).toBe(BigInt(sums!.cpo));
    }
  });
});
