/**
 * Whether broker, bank and shop agree on every payment, read straight from their PostgreSQL
 * databases (the chaos and load-balancer tests): the bank's ledger balances (debits = credits,
 * pending and posted) with no hold left pending, nothing is captured beyond its authorization,
 * every payment request has one final state that the three roles agree on, and every outcome a
 * wallet was told matches it (never "not paid" for a payment that was approved or captured).
 * Also the shop-side payment driver both tests use: one checkout, and what the payer was told.
 */
import pg from 'pg';
import { request as undiciRequest, type Agent } from 'undici';
import { KessaiError } from '@kessai/protocol';
import type { VerifiedRequest, WalletClient } from '@kessai/sdk';

export type Told = 'paid' | 'not paid' | 'not known';

/** One checkout at the shop, and (once the wallet answered) what the payer was told. */
export interface Payment {
  rid: string;
  orderId: string;
  told?: Told;
  detail?: string;
}

/** The PostgreSQL URL of each role's database. */
export interface RoleDatabases {
  auth: string;
  bank: string;
  shop: string;
}

export interface FinalStates {
  broker: Map<string, string>;
  bank: Map<string, { request_id: string; status: string; amount: string; captured_amount: string }>;
  shop: Map<string, string>;
  ledger: Array<{ currency: string; dp: string; cp: string; dq: string; cq: string }>;
  pendingHolds: number;
}

async function read<T>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql)).rows as T[];
  } finally {
    await client.end();
  }
}

/** Each role's view of every payment, the bank's ledger totals per currency and its pending holds. */
export async function finalStates(databases: RoleDatabases): Promise<FinalStates> {
  const broker = new Map((await read<{ id: string; status: string }>(databases.auth, 'select id, status from payment_requests')).map((r) => [r.id, r.status]));
  const bank = new Map((await read<{ request_id: string; status: string; amount: string; captured_amount: string }>(databases.bank, 'select request_id, status, amount, captured_amount from authorizations')).map((r) => [r.request_id, r]));
  const shop = new Map((await read<{ payment_request_id: string; status: string }>(databases.shop, 'select payment_request_id, status from orders where payment_request_id is not null')).map((r) => [r.payment_request_id, r.status]));
  const ledger = await read<FinalStates['ledger'][number]>(databases.bank, 'select currency, sum(debits_pending) as dp, sum(credits_pending) as cp, sum(debits_posted) as dq, sum(credits_posted) as cq from ledger_accounts group by currency');
  const [pending] = await read<{ n: string }>(databases.bank, "select count(*) as n from transfers where kind = 'pending' and state = 'pending'");
  return { broker, bank, shop, ledger, pendingHolds: Number(pending!.n) };
}

/** For each final state at the broker, the bank's and the shop's states that agree with it. */
const agreeing: Record<string, (bank: string | undefined, shop: string | undefined) => boolean> = {
  captured: (b, s) => b === 'captured' && s === 'captured',
  declined: (b, s) => b === 'declined' && s === 'declined',
  pending: (b, s) => b === undefined && s === 'awaiting_payment',
  cancelled: (b, s) => b === undefined && s === 'cancelled',
  expired: (b, s) => (b === undefined || b === 'expired' || b === 'voided') && s === 'expired',
  voided: (b, s) => (b === 'voided' || b === 'expired') && s === 'voided',
};

/** Every way the system disagrees with itself now; empty once it has converged. */
export function disagreements(state: FinalStates, payments: readonly Payment[]): string[] {
  const found: string[] = [];
  for (const row of state.ledger) {
    if (row.dp !== row.cp || row.dq !== row.cq) found.push(`ledger ${row.currency} unbalanced: pending ${row.dp}/${row.cp}, posted ${row.dq}/${row.cq}`);
  }
  if (state.pendingHolds > 0) found.push(`${state.pendingHolds} holds still pending at the bank`);
  for (const [rid, auth] of state.bank) {
    if (BigInt(auth.captured_amount) > BigInt(auth.amount)) found.push(`${rid}: captured ${auth.captured_amount} of ${auth.amount}`);
  }
  for (const payment of payments) {
    const broker = state.broker.get(payment.rid);
    const bank = state.bank.get(payment.rid)?.status;
    const shop = state.shop.get(payment.rid);
    const agrees = broker !== undefined && agreeing[broker]?.(bank, shop);
    if (!agrees) found.push(`${payment.rid}: broker ${broker}, bank ${bank ?? 'none'}, shop ${shop ?? 'none'}`);
    if (payment.told === 'paid' && broker !== 'captured') found.push(`${payment.rid}: the wallet was told paid, but it is ${broker}`);
    if (payment.told === 'not paid' && (broker === 'captured' || broker === 'approved')) found.push(`${payment.rid}: the wallet was told not paid (${payment.detail}), but it is ${broker}`);
  }
  return found;
}

/** Reads the final states every `pollMs` until the roles agree or `deadline` passes; returns what still disagrees (empty: converged). */
export async function untilAgreed(databases: RoleDatabases, payments: readonly Payment[], deadline: number, pollMs = 2_000): Promise<string[]> {
  let last: string[] = [];
  while (Date.now() < deadline) {
    try {
      last = disagreements(await finalStates(databases), payments);
    } catch (err) {
      last = [`could not read the final states: ${String(err)}`];
    }
    if (last.length === 0) break;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
  return last;
}

/** Counts of what the wallets were told, for the test's log line. */
export function toldCounts(payments: readonly Payment[]): Record<string, number> {
  return payments.reduce<Record<string, number>>((n, p) => ({ ...n, [p.told ?? 'nothing']: (n[p.told ?? 'nothing'] ?? 0) + 1 }), {});
}

/** The reference shop's JSON API, as a storefront calls it (step 401). */
export class ShopCustomer {
  constructor(
    readonly shopUrl: string,
    readonly agent: Agent,
    readonly timeoutMs = 10_000,
  ) {}

  async call(method: 'GET' | 'POST', pathname: string, body?: unknown): Promise<{ status: number; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any -- the shop's JSON
    const response = await undiciRequest(`${this.shopUrl}${pathname}`, { method, dispatcher: this.agent, headers: { 'content-type': 'application/json' }, ...(method === 'POST' ? { body: JSON.stringify(body ?? {}) } : {}), signal: AbortSignal.timeout(this.timeoutMs) });
    const text = await response.body.text();
    return { status: response.statusCode, body: text ? JSON.parse(text) : undefined };
  }

  /**
   * A cart with one product (`pick` chooses which and how many) checked out — addressed to
   * `walletHandle` when given, so the broker pushes it to that wallet's event stream. Undefined when
   * the shop refused (its answer is in `refusal`); a failure to reach it throws.
   */
  async checkout(pick: (count: number) => { index: number; quantity: number }, walletHandle?: string): Promise<Payment | { refusal: string }> {
    const cart = await this.call('POST', '/api/carts');
    if (cart.status !== 201) return { refusal: `cart ${cart.status} ${cart.body?.code ?? ''}` };
    const listed = await this.call('GET', '/api/products');
    if (listed.status !== 200) return { refusal: `products ${listed.status} ${listed.body?.code ?? ''}` };
    const products = listed.body as { products: Array<{ id: string }> };
    const { index, quantity } = pick(products.products.length);
    await this.call('POST', `/api/carts/${cart.body.id}/items`, { product_id: products.products[index]!.id, quantity });
    const checkedOut = await this.call('POST', `/api/carts/${cart.body.id}/checkout`, walletHandle ? { wallet_handle: walletHandle } : {});
    if (checkedOut.status !== 200) return { refusal: `checkout ${checkedOut.status} ${checkedOut.body?.code ?? ''}` };
    return { rid: checkedOut.body.payment_request_id, orderId: checkedOut.body.order_id };
  }
}

/** The payer approves `request` with the PIN; records on `payment` what the wallet told the payer. */
export async function answer(wallet: WalletClient, payment: Payment, request: VerifiedRequest, pin: string): Promise<void> {
  try {
    const outcome = await wallet.approve(request, pin);
    payment.told = outcome.status === 'approved' || outcome.status === 'captured' ? 'paid' : outcome.status === 'authorizing' ? 'not known' : 'not paid';
    payment.detail = outcome.decline_code ? `${outcome.status} ${outcome.decline_code}` : outcome.status;
  } catch (err) {
    payment.told = 'not paid';
    payment.detail = err instanceof KessaiError ? err.code : String(err);
  }
}
