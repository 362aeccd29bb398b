/**
 * Load shedding (packages/service/src/load-shedding.ts; docs/operations.md, "Overload: load
 * shedding"), on a system whose in-flight limits are tiny: work is held in flight by gates in each
 * server's request pipeline, and one request more is refused `overloaded` (503, Retry-After)
 * before any work — no payment request created, no hold at the bank, the request still pending,
 * and the wallet told `overloaded`, never "not paid" for something charged. The bank's reversal
 * and status inquiry are still answered while its payment work is shed, and the in-flight counts
 * return to 0 after requests that throw, that the client aborts, and that time out.
 */
import { connect } from 'node:tls';
import type { SystemOptions } from '@kessai/cli/system';
import { Agent, request } from 'undici';
import { describe, expect, it } from 'vitest';
import { demoMerchantName } from '@kessai/cli/demo-data';
import { KessaiError, limits, newId } from '@kessai/protocol';
import { loadShedderOf, type LoadShedder } from '@kessai/service';
import { BankCaller } from './support/bank.ts';
import { idempotencyKey, merchantForFile } from './support/payer.ts';
import { callJson, demoCard, waitFor } from './support/system.ts';

/** A gate in one server's pipeline: requests it matches wait in their handler's preHandler until it opens. */
class Gate {
  #open: () => void = () => undefined;
  #opened: Promise<void> = Promise.resolve();
  held = 0;
  constructor(readonly matches: (method: string, url: string) => boolean) {}
  close(): void {
    this.#opened = new Promise((resolve) => (this.#open = resolve));
  }
  open(): void {
    this.#open();
  }
  async pass(): Promise<void> {
    this.held += 1;
    try {
      await this.#opened;
    } finally {
      this.held -= 1;
    }
  }
}

const gates = {
  bankAuthorizations: new Gate((method, url) => method === 'POST' && url === '/internal/v1/authorizations'),
  brokerPaymentRequests: new Gate((method, url) => method === 'POST' && url === '/v1/payment-requests'),
  shopCarts: new Gate((method, url) => method === 'POST' && url === '/api/carts'),
};

function addGates(app: Parameters<NonNullable<SystemOptions['beforeListen']>>[1], own: Gate[]): void {
  app.addHook('preHandler', async (request) => {
    for (const gate of own) if (gate.matches(request.method, request.url)) await gate.pass();
  });
}

const kessai = merchantForFile({
  loadShedding: {
    auth: { inFlightMax: { intake: 2 } },
    settlement: { inFlightMax: { payment: 1 } },
    shop: { inFlightMax: { intake: 1 } },
  },
  // A request whose body has not arrived after 1 s is answered request_timeout and its connection closed.
  serverTimeouts: { requestMs: 1_000, requestCheckMs: 100 },
  beforeListen: (role, app) => {
    if (role === 'settlement-sakura-bank') addGates(app, [gates.bankAuthorizations]);
    if (role === 'auth-server') addGates(app, [gates.brokerPaymentRequests]);
    if (role === 'shop') addGates(app, [gates.shopCarts]);
  },
});
const cardNumber = '4242424242424242';
const sakura = () => kessai.system.settlements.find((s) => s.issuer.id === 'sakura-bank')!;
const merchant = () => ({ id: kessai.system.merchant.merchantId, name: demoMerchantName });
const shedder = (app: object): LoadShedder => loadShedderOf(app)!;
const broker = () => shedder(kessai.system.auth.app);
const bank = () => shedder(sakura().app);

function brokerAtBank(): BankCaller {
  const leaf = kessai.system.pki.leaves['auth-server']!;
  return new BankCaller(sakura().url, 'sakura-bank', { caCertPem: kessai.system.pki.caCertPem, certPem: leaf.certPem, keyPem: leaf.keyPem });
}

const newRequest = () =>
  kessai.merchant.createPaymentRequest({ order_id: `o-${idempotencyKey()}`, currency: 'JPY', amount_minor: '500', line_items: [{ description: 'Chawan', quantity: 1, unit_price_minor: '500' }] }, idempotencyKey());

/** A merchant API call over its own connection (the held calls must not block it): status, Retry-After, body. */
async function merchantCall(method: 'GET' | 'POST', path: string, body?: unknown, signal?: AbortSignal) {
  const agent = new Agent({ connect: { ca: kessai.system.pki.caCertPem } });
  try {
    const response = await request(`${kessai.system.auth.url}${path}`, {
      method,
      dispatcher: agent,
      headers: { authorization: `Bearer ${kessai.system.merchant.apiKey}`, 'idempotency-key': idempotencyKey(), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      ...(signal ? { signal } : {}),
    });
    const text = await response.body.text();
    return { status: response.statusCode, retryAfter: response.headers['retry-after'], body: text ? JSON.parse(text) : undefined };
  } finally {
    await agent.close().catch(() => undefined);
  }
}

const paymentRequestBody = (orderId: string) => ({ order_id: orderId, currency: 'JPY', amount_minor: '500', line_items: [{ description: 'Chawan', quantity: 1, unit_price_minor: '500' }] });

async function brokerRowsFor(orderId: string): Promise<number> {
  return (await kessai.system.auth.db.query('select 1 from payment_requests where order_id = $1', [orderId])).length;
}

async function bankAuthorization(rid: string) {
  const [row] = await sakura().config.db.query<{ status: string }>('select status from authorizations where request_id = $1', [rid]);
  return row;
}

const idle = (of: () => LoadShedder) => waitFor('every in-flight slot released', async () => (Object.values(of().inFlight()).every((n) => n === 0) ? true : undefined), 5_000);

describe('the broker over its intake limit', () => {
  it("answers 503 overloaded with Retry-After before any work, still serves reads, and admits again once a slot is free", async () => {
    await idle(broker);
    gates.brokerPaymentRequests.close();
    const held = [`o-held-${idempotencyKey()}`, `o-held-${idempotencyKey()}`].map((orderId) => merchantCall('POST', '/v1/payment-requests', paymentRequestBody(orderId)));
    try {
      await waitFor('two payment requests held', async () => (gates.brokerPaymentRequests.held === 2 ? true : undefined));
      expect(broker().inFlight().intake).toBe(2);
      const orderId = `o-shed-${idempotencyKey()}`;
      const refused = await merchantCall('POST', '/v1/payment-requests', paymentRequestBody(orderId));
      expect(refused.status).toBe(503);
      expect(refused.body.code).toBe('overloaded');
      expect(refused.retryAfter).toBe(String(limits.overloadRetryAfterSeconds));
      expect(await brokerRowsFor(orderId)).toBe(0);
      // Reads have their own class.
      expect((await merchantCall('GET', '/v1/settlement-batches')).status).toBe(200);
    } finally {
      gates.brokerPaymentRequests.open();
    }
    expect((await Promise.all(held)).map((answer) => answer.status)).toEqual([201, 201]);
    await idle(broker);
    expect((await merchantCall('POST', '/v1/payment-requests', paymentRequestBody(`o-after-${idempotencyKey()}`))).status).toBe(201);
    expect(broker().shed().intake).toBeGreaterThanOrEqual(1);
  });
});

describe('the bank over its payment limit', () => {
  it('refuses the broker overloaded before any work: no hold, the request stays pending, and the wallet hears overloaded, not "not paid"', async () => {
    const first = await kessai.payer(cardNumber);
    const second = await kessai.payer(cardNumber);
    const [held, shed] = [await newRequest(), await newRequest()];
    await idle(bank);
    gates.bankAuthorizations.close();
    const heldApproval = first.approve(await first.fetchRequest(held.id), demoCard(cardNumber).pin);
    try {
      await waitFor('one authorization held at the bank', async () => (gates.bankAuthorizations.held === 1 ? true : undefined));
      const error = await second.approve(await second.fetchRequest(shed.id), demoCard(cardNumber).pin).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(KessaiError);
      expect((error as KessaiError).code).toBe('overloaded');
      expect((error as KessaiError).retryAfterSeconds).toBe(limits.overloadRetryAfterSeconds);
      // Nothing charged, nothing in doubt: the payer may simply answer again.
      expect(await bankAuthorization(shed.id)).toBeUndefined();
      expect((await kessai.merchant.getPaymentRequest(shed.id)).status).toBe('pending');
    } finally {
      gates.bankAuthorizations.open();
    }
    expect((await heldApproval).status).toBe('approved');
    await idle(bank);
    expect((await second.approve(await second.fetchRequest(shed.id), demoCard(cardNumber).pin)).status).toBe('approved');
    expect(await bankAuthorization(shed.id)).toMatchObject({ status: 'held' });
  });

  it('still answers the status inquiry and the reversal while its payment work is shed', async () => {
    const wallet = await kessai.payer(cardNumber);
    const held = await newRequest();
    const approved = await newRequest();
    expect((await wallet.approve(await wallet.fetchRequest(approved.id), demoCard(cardNumber).pin)).status).toBe('approved');
    const caller = brokerAtBank();
    const device = await caller.enroll(demoCard(cardNumber));
    await idle(bank);
    gates.bankAuthorizations.close();
    const heldApproval = wallet.approve(await wallet.fetchRequest(held.id), demoCard(cardNumber).pin);
    try {
      await waitFor('one authorization held at the bank', async () => (gates.bankAuthorizations.held === 1 ? true : undefined));
      const shedRid = newId('pr');
      const refused = await caller.call('POST', '/internal/v1/authorizations', await caller.authorizeBody(device, demoCard(cardNumber), merchant(), { rid: shedRid }));
      expect(refused).toMatchObject({ status: 503, body: { code: 'overloaded' } });
      // The broker's in-doubt worker and hold sync depend on these two.
      const inquiry = await caller.call('GET', `/internal/v1/authorizations/${approved.id}`);
      expect(inquiry.status).toBe(200);
      expect(inquiry.body.status).toBe('held');
      const reversal = await caller.call('POST', `/internal/v1/authorizations/${shedRid}/reversal`, { nonce: idempotencyKey() });
      expect(reversal.status).toBe(200);
    } finally {
      gates.bankAuthorizations.open();
      await caller.close();
    }
    expect((await heldApproval).status).toBe('approved');
  });

  it("refuses at once an authorization whose caller's deadline leaves less than deadlineBudgetMsMin", async () => {
    const caller = brokerAtBank();
    try {
      const device = await caller.enroll(demoCard(cardNumber));
      const rid = newId('pr');
      const body = await caller.authorizeBody(device, demoCard(cardNumber), merchant(), { rid });
      const refused = await caller.call('POST', '/internal/v1/authorizations', body, { 'kessai-deadline-ms': String(limits.deadlineBudgetMsMin - 1) });
      expect(refused).toMatchObject({ status: 503, body: { code: 'deadline_exceeded' } });
      expect(await bankAuthorization(rid)).toBeUndefined();
      expect(bank().inFlight().payment).toBe(0);
    } finally {
      await caller.close();
    }
  });
});

describe('the shop over its intake limit', () => {
  it('answers 503 overloaded with Retry-After and still serves the catalogue', async () => {
    // The shop may still be working on the earlier tests' webhooks: intake waits for no slot, so start from an idle shop.
    await idle(() => shedder(kessai.system.shop.app));
    gates.shopCarts.close();
    let held = callJson(kessai.system, 'POST', `${kessai.system.shop.url}/api/carts`, {});
    try {
      await waitFor('one cart held', async () => {
        if (gates.shopCarts.held === 1) return true;
        // Shed after all (a late webhook took the slot): ask again once the shop is idle.
        const settled = await Promise.race([held.then((answer) => answer.status), new Promise<undefined>((resolve) => setTimeout(resolve, 10))]);
        if (settled === 503) {
          await idle(() => shedder(kessai.system.shop.app));
          held = callJson(kessai.system, 'POST', `${kessai.system.shop.url}/api/carts`, {});
        }
        return undefined;
      });
      const agent = new Agent({ connect: { ca: kessai.system.pki.caCertPem } });
      try {
        const refused = await request(`${kessai.system.shop.url}/api/carts`, { method: 'POST', dispatcher: agent, headers: { 'content-type': 'application/json' }, body: '{}' });
        expect(refused.statusCode).toBe(503);
        expect(refused.headers['retry-after']).toBe(String(limits.overloadRetryAfterSeconds));
        expect(((await refused.body.json()) as { code: string }).code).toBe('overloaded');
      } finally {
        await agent.close();
      }
      expect((await callJson(kessai.system, 'GET', `${kessai.system.shop.url}/api/products`)).status).toBe(200);
    } finally {
      gates.shopCarts.open();
    }
    expect((await held).status).toBe(201);
    await idle(() => shedder(kessai.system.shop.app));
  });
});

describe('the in-flight count returns to 0', () => {
  it('after requests whose handler throws', async () => {
    const answers = await Promise.all([
      merchantCall('GET', '/v1/payment-requests/pr_00000000000000000000000000'),
      merchantCall('POST', '/v1/payment-requests/pr_00000000000000000000000000/capture', {}),
      merchantCall('POST', '/v1/payment-requests', { not: 'a payment request' }),
    ]);
    expect(answers.map((answer) => answer.status)).toEqual([404, 404, 400]);
    await idle(broker);
  });

  it('after a request the client aborts while its handler works, once the handler is done', async () => {
    await idle(broker);
    gates.brokerPaymentRequests.close();
    const abort = new AbortController();
    const orderId = `o-aborted-${idempotencyKey()}`;
    const aborted = merchantCall('POST', '/v1/payment-requests', paymentRequestBody(orderId), abort.signal).catch((err: unknown) => err);
    try {
      await waitFor('the request held', async () => (gates.brokerPaymentRequests.held === 1 ? true : undefined));
      abort.abort();
      expect(await aborted).toBeInstanceOf(Error);
      // Its handler still runs: its slot is still taken.
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(broker().inFlight().intake).toBe(1);
    } finally {
      gates.brokerPaymentRequests.open();
    }
    await idle(broker);
    // The work itself was done (the merchant's retry with the same key finds it).
    await waitFor('the aborted request saved', async () => ((await brokerRowsFor(orderId)) === 1 ? true : undefined));
  });

  it('after a request the client abandons before its body arrived, and one whose body timed out', async () => {
    const { hostname, port } = new URL(kessai.system.auth.url);
    const head = `POST /v1/payment-requests HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer ${kessai.system.merchant.apiKey}\r\nIdempotency-Key: ${idempotencyKey()}\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"order_id":`;
    const open = () =>
      new Promise<ReturnType<typeof connect>>((resolve, reject) => {
        const socket = connect({ host: hostname, port: Number(port), ca: kessai.system.pki.caCertPem, servername: 'localhost' }, () => resolve(socket));
        socket.once('error', reject);
      });
    const abandoned = await open();
    abandoned.write(head);
    await waitFor('the abandoned request counted', async () => (broker().inFlight().intake === 1 ? true : undefined));
    abandoned.destroy();
    await idle(broker);

    const slow = await open();
    const answer: Buffer[] = [];
    slow.on('data', (chunk: Buffer) => answer.push(chunk));
    const closed = new Promise((resolve) => slow.once('close', resolve));
    slow.write(head);
    await waitFor('the slow request counted', async () => (broker().inFlight().intake === 1 ? true : undefined));
    await closed;
    expect(Buffer.concat(answer).toString()).toMatch(/^HTTP\/1\.1 408/);
    await idle(broker);
  });
});
