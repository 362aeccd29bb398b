/**
 * Standard Webhooks (issue 14, item 4): every real delivery carries webhook-id (the event id),
 * webhook-timestamp and webhook-signature beside Kessai-Signature. The `standardwebhooks` package
 * verifies them with the merchant's secret mapped to `whsec_<base64 of its UTF-8 bytes>`; the
 * Kessai (Stripe-shaped) checker verifies the same delivery's Kessai-Signature.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { limits, standardWebhooksSecret, verifyStandardWebhook, verifyWebhook } from '@kessai/protocol';
import { MerchantClient, type WalletClient } from '@kessai/sdk';
import { checkout } from './support/shop.ts';
import { demoCard, enroll, startTestSystem, waitFor, type TestSystem } from './support/system.ts';

const cardNumber = '4242424242424242';
let system: TestSystem;
let wallet: WalletClient;
const received: Array<{ headers: Record<string, string>; body: string }> = [];

beforeAll(async () => {
  system = await startTestSystem({
    beforeListen: (role, app) => {
      if (role !== 'shop') return;
      app.addHook('preHandler', async (req) => {
        if (req.url !== '/webhooks/kessai' || typeof req.body !== 'string') return;
        const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
        received.push({ headers, body: req.body });
      });
    },
  });
  wallet = await enroll(system, cardNumber);
});
afterAll(async () => {
  await wallet?.close();
  await system?.stop();
});

describe('Standard Webhooks headers on real deliveries', () => {
  it('verifies with the standardwebhooks package and with the Kessai-Signature checker', async () => {
    const order = await checkout(system, [{ index: 0, quantity: 1 }]);
    const outcome = await wallet.approve(await wallet.fetchRequest(order.payment_request_id), demoCard(cardNumber).pin);
    expect(outcome.status).toBe('approved');
    const delivery = await waitFor('the approved event', async () => received.find((d) => d.body.includes(order.payment_request_id)));
    const [merchant] = await system.auth.db.query<{ webhook_secret: string }>(
      'select m.webhook_secret from merchants m join payment_requests p on p.merchant_id = m.id where p.id = $1',
      [order.payment_request_id],
    );
    const secret = merchant!.webhook_secret;
    const event = JSON.parse(delivery.body) as { id: string; type: string };
    expect(delivery.headers['webhook-id']).toBe(event.id);
    expect(delivery.headers['webhook-timestamp']).toMatch(/^\d+$/);
    expect(delivery.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    // The independent implementation accepts it, and refuses it under another secret or a changed body.
    expect(new Webhook(standardWebhooksSecret(secret)).verify(delivery.body, delivery.headers)).toEqual(JSON.parse(delivery.body));
    expect(() => new Webhook(standardWebhooksSecret(`${secret}x`)).verify(delivery.body, delivery.headers)).toThrow(/signature/i);
    expect(() => new Webhook(standardWebhooksSecret(secret)).verify(`${delivery.body} `, delivery.headers)).toThrow(/signature/i);
    // Kessai's own checkers accept both headers of the same delivery.
    const now = Date.now();
    expect(await verifyWebhook([secret], delivery.headers['kessai-signature']!, delivery.body, now, limits.webhookToleranceMs)).toBe(true);
    const standard = { id: delivery.headers['webhook-id']!, timestamp: delivery.headers['webhook-timestamp']!, signature: delivery.headers['webhook-signature']! };
    expect(await verifyStandardWebhook([secret], standard, delivery.body, now, limits.webhookToleranceMs)).toBe(true);
    expect(await verifyStandardWebhook([secret], { ...standard, id: 'evt_another' }, delivery.body, now, limits.webhookToleranceMs)).toBe(false);
    expect(await verifyStandardWebhook([secret], standard, delivery.body, now + limits.webhookToleranceMs + 60_000, limits.webhookToleranceMs)).toBe(false);
  });

  it("pages GET /v1/webhook-events with the SDK's async iterator", async () => {
    const merchant = new MerchantClient({ maxNetworkRetries: 0, baseUrl: system.auth.url, apiKey: system.merchant.apiKey, caCertPem: system.pki.caCertPem });
    try {
      const events = [];
      for await (const event of merchant.listWebhookEvents()) events.push(event);
      const delivered = received.map((d) => (JSON.parse(d.body) as { id: string }).id);
      expect(events.map((e) => e.id)).toEqual(expect.arrayContaining(delivered));
      expect(events.every((e) => typeof e.event_type === 'string' && typeof e.attempts === 'number')).toBe(true);
      const page = await merchant.listWebhookEvents({ limit: 1 }).page();
      // One item per page (more events may have been queued meanwhile: the shop captures on approval).
      expect(page.limit).toBe(1);
      expect(page.items).toHaveLength(1);
      // One item a page: the pager walks the same events page by page, each once (starting_after on every next page).
      // Two events at least: the approval's, and the capture's the shop makes on it.
      await waitFor('two events', async () => ((await system.auth.db.query('select id from webhook_outbox')).length >= 2 ? true : undefined));
      const paged = [];
      for await (const event of merchant.listWebhookEvents({ limit: 1 })) paged.push(event.id);
      expect(paged.length).toBeGreaterThan(1);
      expect(new Set(paged).size).toBe(paged.length);
      expect(paged).toEqual(expect.arrayContaining(delivered));
      const foreign = await merchant.listWebhookEvents({ startingAfter: 'evt_00000000000000000000000000' }).page().catch((e: unknown) => e);
      expect(foreign).toMatchObject({ code: 'starting_after_not_found', status: 404 });
    } finally {
      await merchant.close();
    }
  });
});
