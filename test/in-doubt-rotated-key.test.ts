/**
 * The in-doubt worker adopts valid, payer-signed approvals signed under a key the bank rotated in,
 * several in one pass: the first row's lookup fetches the bank's keys again, the others use that
 * fetch (IssuerDirectory.withKid during its refetch cooldown), and a kid still unknown is asked about
 * again later — never read as "does not verify" and reversed (which would void the payer's hold).
 */
import { describe, expect, it } from 'vitest';
import { KessaiError } from '@kessai/protocol';
import { idempotencyKey, merchantForFile } from './support/payer.ts';
import { callJson, demoCard, waitFor } from './support/system.ts';

const deadlineMs = 1_000;
let stallAnswers = 0;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const kessai = merchantForFile({
  authorizationDeadlineMs: deadlineMs,
  beforeListen: (role, app) => {
    if (role !== 'settlement-sakura-bank') return;
    app.addHook('onSend', async (request, _reply, payload) => {
      if (request.method === 'POST' && request.url === '/internal/v1/authorizations' && stallAnswers > 0) {
        stallAnswers -= 1;
        await sleep(deadlineMs * 3);
      }
      return payload;
    });
  },
});
const cardNumber = '4242424242424242';
const sakura = () => kessai.system.settlements.find((s) => s.issuer.id === 'sakura-bank')!;

async function newRequest(amount: number) {
  return kessai.merchant.createPaymentRequest({ order_id: `o-${idempotencyKey()}`, currency: 'JPY', amount_minor: String(amount), line_items: [{ description: 'Chawan', quantity: 1, unit_price_minor: String(amount) }] }, idempotencyKey());
}

describe('in-doubt approvals signed under a rotated issuer key', () => {
  it('are adopted, not reversed, when several are resolved in one pass', async () => {
    const wallet = await kessai.payer(cardNumber);
    // The broker has the bank's keys cached (a first payment).
    const first = await newRequest(100);
    expect((await wallet.approve(await wallet.fetchRequest(first.id), demoCard(cardNumber).pin)).status).toBe('approved');
    const rotated = await callJson(kessai.system, 'POST', `${sakura().url}/admin/v1/keys/rotate`, { key: 'authorization-signing' }, kessai.system.operatorHeaders(sakura().url));
    expect(rotated.status).toBe(200);
    // Three approvals whose answers are lost (stalled past the deadline): all in doubt, all approved at the bank under the new kid.
    const requests = await Promise.all([newRequest(110), newRequest(120), newRequest(130)]);
    const views = await Promise.all(requests.map((r) => wallet.fetchRequest(r.id)));
    stallAnswers = requests.length;
    const told = await Promise.all(views.map((view) => wallet.approve(view, demoCard(cardNumber).pin).then((o) => o.status, (err: unknown) => `error ${err instanceof KessaiError ? err.code : String(err)}`)));
    const final = await Promise.all(requests.map((r) => waitFor(`${r.id} resolved`, async () => {
      const [row] = await kessai.system.auth.db.query<{ status: string }>('select status from payment_requests where id = $1', [r.id]);
      return row && row.status !== 'authorizing' ? row.status : undefined;
    })));
    const bank = await Promise.all(requests.map(async (r) => (await sakura().config.db.query<{ status: string }>('select status from authorizations where request_id = $1', [r.id]))[0]?.status));
    // Before the fix: one was approved; the others were voided by the worker's reversal (bank: voided).
    expect({ told, final, bank }).toEqual({ told: ['approved', 'approved', 'approved'], final: ['approved', 'approved', 'approved'], bank: ['held', 'held', 'held'] });
  });
});
