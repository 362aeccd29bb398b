/**
 * Authorizations in doubt and holds the broker never recorded (docs/operations.md, "Failure
 * semantics"), each fault made at the settlement server by a hook in its request pipeline:
 *   - its answer stalls past the broker's deadline (the hold is placed): adopted by the inquiry;
 *   - the request is cut before it reaches the handler: reversed (the nonce is spent at the bank,
 *     so the same authorization arriving late is refused), and the payer can answer again;
 *   - a wrong PIN whose answer stalls: reversed to pending (the bank keeps no decision for a wrong
 *     PIN with tries left), and the right PIN then pays;
 *   - the bank is slower than the deadline before it starts (a database stall): it holds nothing
 *     (the deadline passed downstream), and the request is reversed and pending again;
 *   - a capture the bank committed whose answer the broker lost: hold-sync adopts it, the shop is
 *     told, and the merchant's retry answers captured;
 *   - an approved request whose hold is due: reversed (released now) and expired everywhere.
 * In every case the wallet is never told "not paid" for a payment that ends approved, and broker,
 * bank and shop agree.
 */
import type { SystemOptions } from '@kessai/cli/system';
import { describe, expect, it } from 'vitest';
import { limits, settlementReversal } from '@kessai/protocol';
import { BankCaller } from './support/bank.ts';
import { codeOf } from './support/errors.ts';
import { approvedRequest, idempotencyKey, merchantForFile } from './support/payer.ts';
import { waitForOrder, checkout } from './support/shop.ts';
import { demoCard, waitFor } from './support/system.ts';

const deadlineMs = 1_000;
type Fault = 'none' | 'stall-answer' | 'cut-request' | 'slow-start' | 'lose-capture-answer';
let fault: Fault = 'none';
/** The authorization bodies the bank received while cutting them (to send one again, late). */
const cutBodies: unknown[] = [];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function injectFaults(app: Parameters<NonNullable<SystemOptions['beforeListen']>>[1]): void {
  app.addHook('preHandler', async (request, reply) => {
    if (request.method !== 'POST' || request.url !== '/internal/v1/authorizations') return;
    if (fault === 'cut-request') {
      fault = 'none';
      cutBodies.push(request.body);
      reply.hijack();
      request.raw.socket.destroy();
    } else if (fault === 'slow-start') {
      fault = 'none';
      await sleep(deadlineMs * 2);
    }
  });
  app.addHook('onSend', async (request, _reply, payload) => {
    if (request.method !== 'POST') return payload;
    if (fault === 'stall-answer' && request.url === '/internal/v1/authorizations') {
      fault = 'none';
      await sleep(deadlineMs * 3);
    } else if (fault === 'lose-capture-answer' && request.url.endsWith('/capture')) {
      fault = 'none';
      request.raw.socket.destroy();
    }
    return payload;
  });
}

const kessai = merchantForFile({
  authorizationDeadlineMs: deadlineMs,
  beforeListen: (role, app) => {
    if (role === 'settlement-sakura-bank') injectFaults(app);
  },
});
const cardNumber = '4242424242424242';
const sakura = () => kessai.system.settlements.find((s) => s.issuer.id === 'sakura-bank')!;

/** The sakura bank's /internal API with the broker's client certificate. */
function brokerAtBank(): BankCaller {
  const leaf = kessai.system.pki.leaves['auth-server']!;
  return new BankCaller(sakura().url, 'sakura-bank', { caCertPem: kessai.system.pki.caCertPem, certPem: leaf.certPem, keyPem: leaf.keyPem });
}

/** A body the bank answered with a problem: its code. */
async function problemCode(answer: Promise<{ status: number; body: { code?: string } }>): Promise<string | undefined> {
  return (await answer).body?.code;
}

async function bankAuthorization(rid: string) {
  const [row] = await sakura().config.db.query<{ status: string; hold_state: string | null }>(
    'select a.status, t.state as hold_state from authorizations a left join transfers t on t.id = a.hold_transfer_id where a.request_id = $1',
    [rid],
  );
  return row;
}

async function brokerRow(rid: string) {
  const [row] = await kessai.system.auth.db.query<{ status: string; attempt_nonce: string | null }>('select status, attempt_nonce from payment_requests where id = $1', [rid]);
  return row!;
}

async function events(rid: string) {
  const rows = await kessai.system.auth.db.query<{ body: string }>("select body from webhook_outbox where body like '%' || $1 || '%' order by created_at", [rid]);
  return rows.map((row) => JSON.parse(row.body) as { type: string; sequence: number });
}

describe('an authorization in doubt', () => {
  it('whose answer stalls past the deadline is adopted from the bank: the wallet hears approved, the shop is paid, one hold', async () => {
    const wallet = await kessai.payer(cardNumber);
    const order = await checkout(kessai.system, [{ index: 0, quantity: 1 }]);
    const request = await wallet.fetchRequest(order.payment_request_id);
    fault = 'stall-answer';
    const outcome = await wallet.approve(request, demoCard(cardNumber).pin);
    // Paid (the shop may have captured it by the time the wallet asked).
    expect(['approved', 'captured']).toContain(outcome.status);
    expect(await wallet.verifyAuthorization(outcome.authorization!, request.view)).toMatchObject({ decision: 'approved', rid: order.payment_request_id });
    // The shop verified the adopted authorization, fulfilled the order and captured it (it captures on payment).
    await waitForOrder(kessai.system, order.order_id, 'captured');
    expect(await bankAuthorization(order.payment_request_id)).toEqual({ status: 'captured', hold_state: 'posted' });
    expect((await events(order.payment_request_id)).map((e) => [e.type, e.sequence])).toEqual([
      ['payment_request.approved', 1],
      ['payment_request.captured', 2],
    ]);
  });

  it('that never reached the bank is reversed: the nonce is spent there, the late copy is refused, and the payer answers again', async () => {
    const wallet = await kessai.payer(cardNumber);
    const order = await checkout(kessai.system, [{ index: 1, quantity: 1 }]);
    const request = await wallet.fetchRequest(order.payment_request_id);
    fault = 'cut-request';
    const outcome = await wallet.approve(request, demoCard(cardNumber).pin);
    // The reversal came back before the wallet stopped asking: not paid, and nothing held.
    expect(outcome.status).toBe('pending');
    expect(await bankAuthorization(order.payment_request_id)).toBeUndefined();
    expect(await brokerRow(order.payment_request_id)).toEqual({ status: 'pending', attempt_nonce: null });
    // The cut authorization, arriving late at the bank, holds nothing.
    const bank = brokerAtBank();
    try {
      expect(await problemCode(bank.call('POST', '/internal/v1/authorizations', cutBodies.at(-1)))).toBe('approval_replayed');
    } finally {
      await bank.close();
    }
    expect(await bankAuthorization(order.payment_request_id)).toBeUndefined();
    // A second answer pays, once.
    expect((await wallet.approve(request, demoCard(cardNumber).pin)).status).toBe('approved');
    await waitForOrder(kessai.system, order.order_id, 'captured');
    expect(await bankAuthorization(order.payment_request_id)).toEqual({ status: 'captured', hold_state: 'posted' });
  });

  it('with a wrong PIN whose answer stalls is reversed to pending (the bank kept no decision for it): the right PIN then pays', async () => {
    const wallet = await kessai.payer(cardNumber);
    const order = await checkout(kessai.system, [{ index: 0, quantity: 2 }]);
    const request = await wallet.fetchRequest(order.payment_request_id);
    fault = 'stall-answer';
    const outcome = await wallet.approve(request, '0001');
    // The bank's decline never arrived; it kept that attempt's decline by its nonce only, so the
    // inquiry finds no decision and the reversal (the nonce already spent) leaves nothing held.
    expect(outcome).toMatchObject({ status: 'pending' });
    expect(await bankAuthorization(order.payment_request_id)).toBeUndefined();
    expect(await brokerRow(order.payment_request_id)).toEqual({ status: 'pending', attempt_nonce: null });
    expect((await wallet.approve(request, demoCard(cardNumber).pin)).status).toBe('approved');
    await waitForOrder(kessai.system, order.order_id, 'captured');
    expect(await bankAuthorization(order.payment_request_id)).toEqual({ status: 'captured', hold_state: 'posted' });
  });

  it('at a bank slower than the deadline before it starts holds nothing (the deadline passed downstream) and is reversed', async () => {
    const wallet = await kessai.payer(cardNumber);
    const order = await checkout(kessai.system, [{ index: 2, quantity: 1 }]);
    const request = await wallet.fetchRequest(order.payment_request_id);
    fault = 'slow-start';
    const outcome = await wallet.approve(request, demoCard(cardNumber).pin);
    expect(outcome.status).toBe('pending');
    // The bank refused deadline_exceeded once the broker had given up: no hold, ever.
    await sleep(deadlineMs * 2);
    expect(await bankAuthorization(order.payment_request_id)).toBeUndefined();
    expect((await kessai.system.shop.db.query<{ status: string }>('select status from orders where id = $1', [order.order_id]))[0]?.status).toBe('awaiting_payment');
    // The same refusal, seen directly: an authorization whose deadline has passed on arrival.
    const bank = brokerAtBank();
    try {
      const late = await bank.call('POST', '/internal/v1/authorizations', cutBodies[0] ?? {}, { 'kessai-deadline-ms': '0' });
      expect([late.status, late.body.code]).toEqual([503, 'deadline_exceeded']);
    } finally {
      await bank.close();
    }
  });

  it('is answered for any request id by the bank: a reversal is idempotent, exactly once in effect, and releases only its own attempt\'s hold', async () => {
    const wallet = await kessai.payer(cardNumber);
    // Straight through the merchant API (the shop would capture it at once).
    const order = { payment_request_id: await approvedRequest(kessai.merchant, wallet, cardNumber, 900n) };
    const { attempt_nonce: nonce } = await brokerRow(order.payment_request_id);
    const bank = brokerAtBank();
    try {
      const path = `/internal/v1/authorizations/${order.payment_request_id}/reversal`;
      // A late reversal of another attempt (another nonce) leaves this attempt's hold as it is.
      const stale = settlementReversal.parse((await bank.call('POST', path, { nonce: 's'.repeat(24) })).body);
      expect(stale.status).toBe('held');
      expect(await bankAuthorization(order.payment_request_id)).toEqual({ status: 'held', hold_state: 'pending' });
      const first = settlementReversal.parse((await bank.call('POST', path, { nonce })).body);
      const again = settlementReversal.parse((await bank.call('POST', path, { nonce })).body);
      expect(first.status).toBe('voided');
      expect(again).toEqual(first);
      // A request id the bank never saw: reversed, nothing held, and answered the same again.
      const unseen = { nonce: 'n'.repeat(30) };
      const unseenPath = `/internal/v1/authorizations/${order.payment_request_id.slice(0, 3)}${'0'.repeat(order.payment_request_id.length - 3)}/reversal`;
      expect(settlementReversal.parse((await bank.call('POST', unseenPath, unseen)).body)).toEqual({ status: 'reversed', authorization: null });
      expect(settlementReversal.parse((await bank.call('POST', unseenPath, unseen)).body)).toEqual({ status: 'reversed', authorization: null });
    } finally {
      await bank.close();
    }
    expect(await bankAuthorization(order.payment_request_id)).toEqual({ status: 'voided', hold_state: 'voided' });
    // Hold-sync adopts the void the bank committed, and tells the merchant.
    await waitFor('hold-sync to adopt the void', async () => ((await brokerRow(order.payment_request_id)).status === 'voided' ? true : undefined));
    expect((await events(order.payment_request_id)).map((e) => [e.type, e.sequence])).toEqual([
      ['payment_request.approved', 1],
      ['payment_request.voided', 2],
    ]);
  });
});

describe('a capture the bank committed but the broker never recorded', () => {
  it('is adopted by hold-sync and the shop is told; the retry with the same Idempotency-Key answers captured', async () => {
    const wallet = await kessai.payer(cardNumber);
    const created = await kessai.merchant.createPaymentRequest({ order_id: `o-${idempotencyKey()}`, currency: 'JPY', amount_minor: '1200', line_items: [{ description: 'Chawan', quantity: 1, unit_price_minor: '1200' }] }, idempotencyKey());
    expect((await wallet.approve(await wallet.fetchRequest(created.id), demoCard(cardNumber).pin)).status).toBe('approved');
    const key = idempotencyKey();
    fault = 'lose-capture-answer';
    expect(await codeOf(kessai.merchant.capture(created.id, {}, key))).toBe('issuer_unavailable');
    expect(await bankAuthorization(created.id)).toEqual({ status: 'captured', hold_state: 'posted' });
    await waitFor('hold-sync to adopt the capture', async () => ((await brokerRow(created.id)).status === 'captured' ? true : undefined), limits.holdSyncFirstCheckMs + 10_000);
    expect((await events(created.id)).map((e) => [e.type, e.sequence])).toEqual([
      ['payment_request.approved', 1],
      ['payment_request.captured', 2],
    ]);
    expect(await kessai.merchant.capture(created.id, {}, key)).toMatchObject({ status: 'captured', captured_minor: '1200' });
  });
});
