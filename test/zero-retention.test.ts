/**
 * Zero retention, all the way: after real purchases in both conversion modes and a round of
 * refusals, no card number, holder name, expiry or PIN is in any file of the system's data folder
 * (every role's logs, keys and files; only the settlement servers' account stores are skipped),
 * any server's audit log, any webhook payload (queued or received), any error answer, or any table
 * of the authentication server or the shop. And in pass-through mode the authentication server
 * never opens a credential: the opening function is unreachable from the pass-through conversion,
 * and its key ring is never handed to it during a whole pass-through purchase.
 *
 * Why no heap snapshot: the test process runs every role at once — the settlement servers open the
 * card data by design, the wallet holds it, and demo-data.ts lists every test card — so a card
 * number found in `v8.writeHeapSnapshot()` would prove nothing about the authentication server,
 * and one not found would be luck. The call-count proof below is about that server alone.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jweOpenings } from '@kessai/protocol';
import { WalletClient } from '@kessai/sdk';
import { collectAuditRows, collectAuthAndShopRetention, collectDataFolder, findPersonalData, wholeToken } from './support/retention.ts';
import { checkout, waitForOrder } from './support/shop.ts';
import { callJson, demoCard, enroll, startTestSystem, type TestSystem } from './support/system.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
let system: TestSystem;
/** Every error answer (status ≥ 400) any server sent, and every webhook body the shop received. */
const errorAnswers: string[] = [];
/** Everything the authentication server received from pass-through wallets: URL, headers and body of each request. */
const passThroughReceived: string[] = [];
/** Credential ids of pass-through wallets, to pick their requests out. */
const passThroughCredentials = new Set<string>();
const webhookBodies: string[] = [];
/** What the authentication server received and answered for `GET /v1/terminal/credential` (the wallet's status). */
const statusReceived: string[] = [];
const statusAnswers: string[] = [];

beforeAll(async () => {
  system = await startTestSystem({
    beforeListen: (role, app) => {
      app.addHook('onSend', async (_request, reply, payload) => {
        if (reply.statusCode >= 400) errorAnswers.push(`${role} ${reply.statusCode}: ${String(payload)}`);
        return payload;
      });
      if (role === 'auth-server') {
        app.addHook('onSend', async (request, _reply, payload) => {
          if (request.url === '/v1/terminal/credential') statusAnswers.push(String(payload));
          return payload;
        });
        app.addHook('preHandler', async (request) => {
          const text = `${request.method} ${request.url} ${JSON.stringify(request.headers)} ${JSON.stringify(request.body ?? null)}`;
          if (request.url === '/v1/terminal/credential') statusReceived.push(text);
          const body = request.body as { issuer_id?: string } | undefined;
          if (body?.issuer_id === 'fuji-bank' || [...passThroughCredentials].some((id) => text.includes(id))) passThroughReceived.push(text);
        });
      }
      if (role === 'shop') {
        app.addHook('preHandler', async (request) => {
          if (request.routeOptions.url === '/webhooks/kessai') webhookBodies.push(typeof request.body === 'string' ? request.body : JSON.stringify(request.body));
        });
      }
    },
  });
});
afterAll(() => system?.stop());

/** The authentication server's cipher-1 key ring: the only thing openJson could open a credential with there. */
const authOpenings = () => jweOpenings.get(system.auth.context.config.keys) ?? 0;

async function purchase(cardNumber: string, pin = demoCard(cardNumber).pin): Promise<string> {
  const wallet = await enroll(system, cardNumber);
  try {
    const order = await checkout(system, [{ index: 0, quantity: 1 }, { index: 2, quantity: 2 }], wallet.wallet.credential_id);
    const outcome = await wallet.approve(await wallet.fetchRequest(order.payment_request_id), pin);
    if (outcome.status === 'approved') await waitForOrder(system, order.order_id, 'captured');
    return outcome.status;
  } finally {
    await wallet.close();
  }
}

/** Enrollment refused for `cardNumber` (and expiry), with the code the server answered. */
async function refusedEnrollment(cardNumber: string, expiry?: string, pin?: string): Promise<string> {
  const known = cardNumber === '4242424242424241' ? demoCard('4242424242424242') : demoCard(cardNumber);
  try {
    await WalletClient.enroll({ authBaseUrl: system.auth.url, caCertPem: system.pki.caCertPem, directoryKey: system.directoryKey.publicJwk, holderName: known.holderName, cardNumber, expiry: expiry ?? known.expiry, pin: pin ?? known.pin });
    return 'enrolled';
  } catch (err) {
    return (err as { code?: string }).code ?? 'no code';
  }
}

describe('the authentication server in pass-through mode', () => {
  it('cannot reach the opening function from the pass-through conversion (import graph)', async () => {
    const seen = new Set<string>();
    const pending = [path.join(root, 'apps/auth-server/src/conversion/pass-through.ts')];
    while (pending.length > 0) {
      const file = pending.pop()!;
      if (seen.has(file)) continue;
      seen.add(file);
      const source = await readFile(file, 'utf8');
      expect(source, file).not.toMatch(/\bopenJson\b|\bcompactDecrypt\b|\bdecrypt\b/);
      for (const [, specifier] of source.matchAll(/(?:import|export)[^'"]*from\s+['"]([^'"]+)['"]/g)) {
        // A package import would bring openJson's module with it: the pass-through conversion has none.
        expect(specifier!.startsWith('.'), `${file} imports ${specifier}`).toBe(true);
        pending.push(path.resolve(path.dirname(file), specifier!));
      }
    }
    // The server's only caller of openJson is the re-seal conversion, chosen only when the issuer is not pass-through.
    const approval = await readFile(path.join(root, 'apps/auth-server/src/approval.ts'), 'utf8');
    expect(approval).toMatch(/if \(issuer\.metadata\.conversion_mode === 'pass_through'\) return passThrough\(sealedCredential\);\n\s*return reseal\(/);
  });

  it('never opens a JWE with its key ring through a whole pass-through purchase, and does in re-seal mode', async () => {
    const before = authOpenings();
    expect(await purchase('5555555555554444')).toBe('approved');
    expect(authOpenings()).toBe(before);
    // The counter works: a re-seal purchase opens cipher 1 once.
    expect(await purchase('4242424242424242')).toBe('approved');
    expect(authOpenings()).toBe(before + 1);
  });
});

describe('pass-through mode keeps the authentication server blind, enrollment included', () => {
  it('receives no card number, holder name or expiry in clear in anything a pass-through wallet sends it, from enrollment to payment', async () => {
    const card = demoCard('5555555555554444');
    const wallet = await enroll(system, card.cardNumber);
    passThroughCredentials.add(wallet.wallet.credential_id);
    try {
      const order = await checkout(system, [{ index: 0, quantity: 1 }], wallet.wallet.credential_id);
      expect((await wallet.approve(await wallet.fetchRequest(order.payment_request_id), card.pin)).status).toBe('approved');
    } finally {
      await wallet.close();
    }
    const received = passThroughReceived.join('\n');
    expect(passThroughReceived.length).toBeGreaterThanOrEqual(3); // enrollment, fetch, approve
    expect(received).toContain('sealed_card');
    for (const needle of [card.cardNumber, card.holderName, card.expiry, `"${card.pin}"`]) expect(received).not.toContain(needle);
    expect(findPersonalData(received)).toEqual([]);
  });
});

describe('zero retention after purchases and refusals', () => {
  beforeAll(async () => {
    // A wrong PIN with tries left: the request stays payable (pending), the attempt's PIN block went through the broker all the same.
    expect(await purchase('4000056655665556', '0000')).toBe('pending');
    expect(await purchase('4000000000009995')).toBe('declined');
    expect(await purchase('5200828282828210')).toBe('declined');
    expect(await refusedEnrollment('4000000000000002')).toBe('enrollment_refused');
    expect(await refusedEnrollment('5105105105105100')).toBe('enrollment_refused');
    expect(await refusedEnrollment('5555555555554444', undefined, '0000')).toBe('enrollment_refused');
    expect(await refusedEnrollment('4242424242424241')).toBe('card_invalid');
    expect(await refusedEnrollment('4242424242424242', '01/20')).toBe('card_expired');
    // Personal data where it does not belong: in an unknown key, in a path, in a query string.
    const card = demoCard('4242424242424242');
    expect((await callJson(system, 'POST', `${system.auth.url}/v1/enrollments`, { [card.cardNumber]: card.holderName })).status).toBe(400);
    expect((await callJson(system, 'GET', `${system.shop.url}/api/orders/${card.cardNumber}`)).status).toBe(400);
    expect((await callJson(system, 'GET', `${system.auth.url}/v1/terminal/payment-requests/${card.cardNumber}?pin=${card.pin}`)).status).toBeGreaterThanOrEqual(400);
    expect((await callJson(system, 'POST', `${system.auth.url}/v1/payment-requests`, { card_number: card.cardNumber }, { authorization: `Bearer ${system.merchant.apiKey}`, 'idempotency-key': 'zero-retention-1' })).status).toBe(400);
    await new Promise((resolve) => setTimeout(resolve, 300)); // last webhooks and audit rows
  });

  it('keeps none in any file of the data folder but the settlement servers’ account stores, logs of every role included', async () => {
    const { text, files } = await collectDataFolder(system);
    for (const role of ['auth-server', 'shop', ...system.settlements.map((s) => `settlement-${s.issuer.id}`)]) expect(files).toContain(path.join('logs', `${role}.log`));
    expect(text.length).toBeGreaterThan(10_000);
    expect(findPersonalData(text)).toEqual([]);
  });

  it('keeps none in any server’s audit log', async () => {
    const { text, rows } = await collectAuditRows(system);
    expect(rows).toBeGreaterThan(20);
    expect(findPersonalData(text)).toEqual([]);
  });

  it('sends none in a webhook, as queued and as received', async () => {
    const queued = await system.auth.db.query<{ payload: string }>('select body as payload from webhook_outbox');
    expect(queued.length).toBeGreaterThan(3);
    expect(webhookBodies.length).toBeGreaterThan(3);
    expect(findPersonalData([...queued.map((row) => row.payload), ...webhookBodies].join('\n'))).toEqual([]);
  });

  it('answers none in an error, whatever the request carried', () => {
    expect(errorAnswers.length).toBeGreaterThanOrEqual(8);
    expect(findPersonalData(errorAnswers.join('\n'))).toEqual([]);
  });

  it('keeps none in any table of the authentication server or the shop', async () => {
    const { text, rows } = await collectAuthAndShopRetention(system);
    expect(rows).toBeGreaterThan(20);
    expect(findPersonalData(text)).toEqual([]);
  });
});

describe("the card's last four digits stay on the wallet's storage", () => {
  it('the wallet keeps them; asking for its status sends them nowhere, and the authentication server keeps them in no table and no log', async () => {
    const card = demoCard('5425233430109903');
    const last4 = card.cardNumber.slice(-4);
    const wallet = await enroll(system, card.cardNumber);
    try {
      expect(wallet.wallet.card_last4).toBe(last4);
      expect(await wallet.credentialStatus()).toMatchObject({ status: 'active' });
      expect(await wallet.credentialStatus()).toMatchObject({ status: 'active' });
    } finally {
      await wallet.close();
    }
    expect(statusReceived.length).toBeGreaterThanOrEqual(2);
    expect(statusAnswers.length).toBe(statusReceived.length);
    const exchanged = [...statusReceived, ...statusAnswers].join('\n');
    expect(exchanged).not.toMatch(wholeToken(last4));
    expect(exchanged).not.toMatch(/last.?4|last.?four|card_number|holder/i);
    const { text } = await collectAuthAndShopRetention(system);
    expect(text).not.toMatch(wholeToken(last4));
    expect(text).not.toMatch(/card_last4/);
  });
});
