/**
 * The in-doubt worker never acts while an authorization may still be answered: the call's deadline
 * is fixed when the intent is saved (what is left of it is sent as Kessai-Deadline-Ms and waited
 * for), and the worker's first look is after it. Here the broker is slow between the approval's
 * arrival and the call, and the bank uses most of its deadline before it commits: the approval is
 * recorded from the bank's answer, and no reversal voids the hold the wallet was told is approved.
 */
import { describe, expect, it } from 'vitest';
import { KessaiError } from '@kessai/protocol';
import { idempotencyKey, merchantForFile } from './support/payer.ts';
import { demoCard, waitFor } from './support/system.ts';

const deadlineMs = 3_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
let armed = false;

const kessai = merchantForFile({
  authorizationDeadlineMs: deadlineMs,
  beforeListen: (role, app) => {
    if (role !== 'settlement-sakura-bank') return;
    app.addHook('preHandler', async (request) => {
      if (!armed || request.method !== 'POST') return;
      // The bank takes 2.5 s of its 3 s deadline before its ledger job (it commits the hold in time).
      if (request.url === '/internal/v1/authorizations') await sleep(2_500);
      // The reversal reaches the bank's ledger after that job.
      if (request.url.endsWith('/reversal')) await sleep(1_500);
    });
  },
});
const cardNumber = '4242424242424242';
const sakura = () => kessai.system.settlements.find((s) => s.issuer.id === 'sakura-bank')!;

describe('the in-doubt check waits for the deadline of a slow-to-start approval', () => {
  it('does not void a hold the wallet was told is approved', async () => {
    const wallet = await kessai.payer(cardNumber);
    const created = await kessai.merchant.createPaymentRequest({ order_id: `o-${idempotencyKey()}`, currency: 'JPY', amount_minor: '600', line_items: [{ description: 'Chawan', quantity: 1, unit_price_minor: '600' }] }, idempotencyKey());
    const request = await wallet.fetchRequest(created.id);
    const db = kessai.system.auth.db as { query: (sql: string, params?: readonly unknown[]) => Promise<unknown[]> };
    const query = db.query.bind(db);
    db.query = async (sql, params) => {
      const rows = await query(sql, params);
      // The broker is 2 s slow before saveIntent (its read of the request, with the merchant's name).
      if (armed && sql.startsWith('select p.*, m.name as merchant_name from payment_requests p')) await sleep(2_000);
      return rows;
    };
    let told: string;
    try {
      armed = true;
      told = await wallet.approve(request, demoCard(cardNumber).pin).then((o) => o.status, (err: unknown) => `error ${err instanceof KessaiError ? err.code : String(err)}`);
      await sleep(2_500); // the reversal lands
    } finally {
      armed = false;
      db.query = query;
    }
    const [bank] = await sakura().config.db.query<{ status: string }>('select status from authorizations where request_id = $1', [created.id]);
    const final = await waitFor('the broker to settle', async () => {
      const [row] = await kessai.system.auth.db.query<{ status: string }>('select status from payment_requests where id = $1', [created.id]);
      return row && row.status !== 'authorizing' ? row.status : undefined;
    });
    // Every step kept its deadline: the payment should simply be approved and held.
    // Before the fix: told 'approved', the bank's hold voided by the reversal (then hold-sync turns the broker voided).
    expect({ told, bank: bank?.status, final }).toEqual({ told: 'approved', bank: 'held', final: 'approved' });
  }, 30_000);
});
