/**
 * The whole purchase, steps 301–305 and 401–409, through real HTTPS between the real servers, in
 * both conversion modes; then the zero-retention audit of everything the authentication server
 * and the shop kept.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair } from 'jose';
import { openJson, signJson, typ } from '@kessai/protocol';
import { callJson, demoCard, enroll, startTestSystem, type TestSystem } from './support/system.ts';
import { checkout, waitForOrder } from './support/shop.ts';
import { collectAuthAndShopRetention, personalDataNeedles } from './support/retention.ts';
import { cardAccount } from './support/payer.ts';

let system: TestSystem;
/** Set to make the Sakura issuer's next decision arrive signed by a key it never published. */
let forgeNextAuthorization = false;
/** What the pass-through issuer's authorization endpoint received, byte for byte. */
const receivedByPassThroughIssuer: string[] = [];
beforeAll(async () => {
  system = await startTestSystem({
    beforeListen: (role, app) => {
      if (role === 'settlement-sakura-bank') {
        // A peer (or a machine in the middle) that answers with a decision the issuer did not sign.
        app.addHook('onSend', async (request, _reply, payload) => {
          if (!forgeNextAuthorization || request.url !== '/internal/v1/authorizations' || typeof payload !== 'string') return payload;
          forgeNextAuthorization = false;
          const { authorization } = JSON.parse(payload) as { authorization: string };
          const forger = await generateKeyPair('ES256');
          const header = JSON.parse(Buffer.from(authorization.split('.')[0]!, 'base64url').toString('utf8')) as { kid: string };
          const claims = JSON.parse(Buffer.from(authorization.split('.')[1]!, 'base64url').toString('utf8')) as unknown;
          return JSON.stringify({ authorization: await signJson(claims, forger.privateKey, { typ: typ.authorization, kid: header.kid }) });
        });
        return;
      }
      if (role !== 'settlement-fuji-bank') return;
      app.addHook('preHandler', async (request) => {
        if (request.url === '/internal/v1/authorizations') receivedByPassThroughIssuer.push((request.body as { sealed_credential: string }).sealed_credential);
      });
    },
  });
});
afterAll(async () => {
  await system?.stop();
});


describe.each([
  { mode: 'reseal', cardNumber: '4242424242424242' },
  { mode: 'pass_through', cardNumber: '5555555555554444' },
])('a purchase in $mode mode', ({ mode, cardNumber }) => {
  it('enrolls, pushes the request, approves with the PIN, and the shop captures a verified authorization', async () => {
    const card = demoCard(cardNumber);
    const wallet = await enroll(system, cardNumber);
    expect(wallet.wallet.issuer.conversion_mode).toBe(mode);
    const before = await cardAccount(system, cardNumber);

    // Step 403: the wallet listens; the shop's checkout pushes the request to it.
    const abort = new AbortController();
    const stream = wallet.listen(abort.signal);
    const pushed = stream.next();
    const order = await checkout(system, [{ index: 0, quantity: 2 }, { index: 1, quantity: 1 }], wallet.wallet.credential_id);
    const { value: request } = await pushed;
    abort.abort();
    expect(request!.view.rid).toBe(order.payment_request_id);
    expect(request!.view.merchant.name).toBe('Kessai Tea House');
    expect(request!.view.line_items).toHaveLength(2);

    // Steps 404–407.
    const outcome = await wallet.approve(request!, card.pin);
    expect(outcome.status).toBe('approved');
    expect(outcome.authorization).toMatch(/^ey/);

    // Steps 408–409: the shop verifies the issuer's signature and captures.
    const captured = await waitForOrder(system, order.order_id, 'captured');
    expect(captured.captured_minor).toBe(captured.amount_minor);
    const after = await cardAccount(system, cardNumber);
    expect(after.debitsPosted - before.debitsPosted).toBe(BigInt(captured.amount_minor));
    expect(after.debitsPending).toBe(before.debitsPending);
    const final = await wallet.outcome(order.payment_request_id);
    expect(final.status).toBe('captured');
    await wallet.close();
  });
});

describe('what the authentication server can read', () => {
  it('forwards a pass-through credential byte for byte and holds no key that opens it', async () => {
    receivedByPassThroughIssuer.length = 0;
    const wallet = await enroll(system, '5555555555554444');
    const order = await checkout(system, [{ index: 2, quantity: 1 }]);
    // The payment link itself answers anyone with what is asked and how to pay it.
    const link = await callJson(system, 'GET', order.payment_link);
    expect(link.body).toMatchObject({ id: order.payment_request_id, merchant: 'Kessai Tea House', currency: 'JPY', status: 'pending' });
    const request = await wallet.fetchRequest(order.payment_link);
    const outcome = await wallet.approve(request, demoCard('5555555555554444').pin);
    expect(outcome.status).toBe('approved');
    expect(receivedByPassThroughIssuer).toEqual([wallet.wallet.sealed_credential]);
    await expect(openJson(wallet.wallet.sealed_credential, system.auth.context.config.keys, typ.credential, 'credential_invalid')).rejects.toMatchObject({ code: 'credential_invalid' });
    await wallet.close();
  });

  it('never holds a PIN it can open, in either mode', async () => {
    for (const cardNumber of ['4242424242424242', '5555555555554444']) {
      const wallet = await enroll(system, cardNumber);
      const order = await checkout(system, [{ index: 0, quantity: 1 }]);
      const request = await wallet.fetchRequest(order.payment_request_id);
      const body = await wallet.approvalBody(request, demoCard(cardNumber).pin);
      await expect(openJson(body.pin, system.auth.context.config.keys, typ.pin, 'pin_invalid')).rejects.toMatchObject({ code: 'pin_invalid' });
      await wallet.close();
    }
  });
});

describe('a decision the issuer did not sign', () => {
  it('is not recorded: the request stays in doubt until the issuer\'s own stored decision is asked for, verified and adopted', async () => {
    const wallet = await enroll(system, '4000056655665556');
    const order = await checkout(system, [{ index: 5, quantity: 1 }]);
    const request = await wallet.fetchRequest(order.payment_request_id);
    forgeNextAuthorization = true;
    // The forged answer is not recorded: the request stays in doubt (authorizing), the in-doubt
    // worker asks the issuer for its stored decision, verifies that one, and adopts it.
    const outcome = await wallet.approve(request, demoCard('4000056655665556').pin);
    // Paid (the shop captures on payment, so it may be captured by the time the wallet asks).
    expect(['approved', 'captured']).toContain(outcome.status);
    const [row] = await system.auth.db.query<{ status: string; authorization_jws: string | null }>('select status, authorization_jws from payment_requests where id = $1', [order.payment_request_id]);
    expect(['approved', 'captured']).toContain(row?.status);
    const decision = await wallet.verifyAuthorization(row!.authorization_jws!, request.view);
    expect(decision).toMatchObject({ rid: order.payment_request_id, decision: 'approved' });
    // One hold at the issuer, the real one.
    const sakura = system.settlements.find((s) => s.issuer.id === 'sakura-bank')!;
    const holds = await sakura.config.db.query<{ n: bigint }>('select count(*) as n from authorizations where request_id = $1', [order.payment_request_id]);
    expect(Number(holds[0]!.n)).toBe(1);
    await wallet.close();
  });
});

describe('zero retention', () => {
  it('keeps no card number, holder name, expiry or PIN in any table or log line of the authentication server or the shop', async () => {
    const haystacks = await collectAuthAndShopRetention(system);
    expect(haystacks.rows).toBeGreaterThan(10);
    expect(haystacks.logLines).toBeGreaterThan(10);
    const found = personalDataNeedles().filter((needle) => needle.pattern.test(haystacks.text));
    expect(found.map((n) => n.label)).toEqual([]);
  });

  it('would find a card number, name, expiry or PIN hidden in any of the forms it looks for', () => {
    const card = demoCard('4242424242424242');
    const plants = [card.cardNumber, '4242 4242 4242 4242', Buffer.from(card.cardNumber).toString('base64'), Buffer.from(card.holderName).toString('base64url'), card.holderName.toLowerCase(), card.expiry, `"pin":"${card.pin}"`];
    for (const plant of plants) {
      const found = personalDataNeedles().filter((needle) => needle.pattern.test(`{"noise":"x","leak":"${plant}"}`));
      expect(found.length, plant).toBeGreaterThan(0);
    }
    expect(personalDataNeedles().filter((needle) => needle.pattern.test(`{"at":"2026-11-25T12:00:00.000Z","time":1764072392123}`))).toEqual([]);
  });
});
