/**
 * Issue 14 item 5: `GET /v1/events/stream` and `kessai listen --forward-to`. A real system, a real
 * receiver over HTTP that verifies each forward with the SDK's verifyWebhookEvent and the run's secret.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { limits } from '@kessai/protocol';
import { verifyWebhookEvent, type WalletClient } from '@kessai/sdk';
import { listen, newListenSecret } from '../apps/cli/src/listen.ts';
import { approvedRequest, startWithMerchant } from './support/payer.ts';
import { callJson, waitFor } from './support/system.ts';

const cardNumber = '4242424242424242';
let env: Awaited<ReturnType<typeof startWithMerchant>>;
let wallet: WalletClient;
let receiver: Server;
let receiverUrl: string;
const received: Array<{ type: string; id: string; verified: boolean }> = [];
let secret = '';

/** The broker's open event-stream responses (to read how much each holds unsent). */
const streamResponses: Array<{ writableLength: number }> = [];
/** Each stream the broker opened: the Last-Event-ID it was asked for, and a way to cut its connection. */
const streamOpens: Array<{ lastEventId: string | undefined; cut: () => void }> = [];

beforeAll(async () => {
  env = await startWithMerchant({
    beforeListen: (role, app) => {
      if (role !== 'auth-server') return;
      app.addHook('onRequest', async (request, reply) => {
        if (request.url !== '/v1/events/stream') return;
        streamResponses.push(reply.raw);
        const lastEventId = request.headers['last-event-id'];
        streamOpens.push({ lastEventId: typeof lastEventId === 'string' ? lastEventId : undefined, cut: () => request.raw.socket.destroy() });
      });
    },
  });
  wallet = await env.payer(cardNumber);
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      void verifyWebhookEvent([secret], String(req.headers['kessai-signature'] ?? ''), body).then((event) => {
        const parsed = JSON.parse(body) as { id: string; type: string };
        received.push({ type: parsed.type, id: parsed.id, verified: event !== undefined });
        res.statusCode = event ? 200 : 400;
        res.end();
      });
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/webhooks`;
}, 120_000);
afterAll(async () => {
  receiver?.close();
  await env?.stop();
});

function streamRequest(headers: Record<string, string>, signal?: AbortSignal) {
  const agent = new Agent({ connect: { ca: env.system.pki.caCertPem } });
  return request(new URL('/v1/events/stream', env.system.auth.url), { dispatcher: agent, headers, ...(signal ? { signal } : {}) });
}

describe('kessai listen', () => {
  it('forwards each new event, re-signed with the run’s secret, and prints type, id and the forward’s status', async () => {
    secret = newListenSecret();
    expect(secret).toMatch(/^whsec_/);
    const lines: string[] = [];
    const controller = new AbortController();
    const running = listen({ brokerUrl: env.system.auth.url, apiKey: env.system.merchant.apiKey, forwardTo: receiverUrl, caCertPem: env.system.pki.caCertPem, signal: controller.signal, print: (l) => lines.push(l), events: ['payment_request.approved'] }, secret);
    await waitFor('listen ready', async () => (lines.some((l) => l.startsWith('Ready!')) ? true : undefined));
    await new Promise((resolve) => setTimeout(resolve, 300)); // the stream is open
    const id = await approvedRequest(env.merchant, wallet, cardNumber, 1200n);
    const event = await waitFor('the approval forwarded', async () => received.find((r) => r.type === 'payment_request.approved'));
    expect(event.verified).toBe(true);
    const [row] = await env.system.auth.db.query<{ id: string }>("select id from webhook_outbox where payment_request_id = $1 and event_type = 'payment_request.approved'", [id]);
    expect(event.id).toBe(row!.id);
    await waitFor('status printed', async () => (lines.some((l) => l === `<-- [200] POST ${receiverUrl} [${row!.id}]`) ? true : undefined));
    expect(lines).toContain(`--> payment_request.approved [${row!.id}]`);
    expect(lines.join('\n')).toContain(secret);
    controller.abort();
    await running; // ends cleanly on abort (Ctrl-C)
  }, 60_000);

  it('the stream resumes after Last-Event-ID, refuses an unknown one and a missing key, and bounds streams per merchant', async () => {
    const auth = { authorization: `Bearer ${env.system.merchant.apiKey}` };
    await approvedRequest(env.merchant, wallet, cardNumber, 800n); // a second event, after the first test's
    expect((await streamRequest({})).statusCode).toBe(401);
    const unknown = await streamRequest({ ...auth, 'last-event-id': 'evt_nosuchevent123' });
    expect(unknown.statusCode).toBe(404);
    expect(((await unknown.body.json()) as { code: string }).code).toBe('webhook_event_not_found');
    const [first] = await env.system.auth.db.query<{ id: string }>('select id from webhook_outbox where merchant_id = $1 order by created_at, id limit 1', [env.system.merchant.merchantId]);
    const controller = new AbortController();
    const resumed = await streamRequest({ ...auth, 'last-event-id': first!.id }, controller.signal);
    expect(resumed.statusCode).toBe(200);
    expect(resumed.headers['content-type']).toBe('text/event-stream');
    let text = '';
    for await (const chunk of resumed.body) {
      text += (chunk as Buffer).toString();
      if (text.includes('event: payment_request.approved')) break;
    }
    expect(text).not.toContain(`id: ${first!.id}\n`);
    expect(text).toMatch(/^id: evt_/m);
    const open = [];
    for (let i = 0; i < limits.eventStreamsPerMerchantMax; i++) open.push(await streamRequest(auth, controller.signal));
    const over = await streamRequest(auth);
    expect(over.statusCode).toBe(429);
    expect(((await over.body.json()) as { code: string }).code).toBe('stream_limit_reached');
    controller.abort();
  }, 60_000);
  it('the stream ends when its API key stops working (rolled without overlap) while it is open', async () => {
    const ops = env.system.operatorHeaders(env.system.auth.url);
    const made = await callJson(env.system, 'POST', `${env.system.auth.url}/admin/v1/merchants`, { name: `Stream key ${Date.now()}` }, ops);
    expect(made.status).toBe(200);
    const controller = new AbortController();
    const stream = await streamRequest({ authorization: `Bearer ${made.body.api_key}` }, controller.signal);
    expect(stream.statusCode).toBe(200);
    let ended = false;
    const reader = (async () => {
      for await (const _chunk of stream.body) void _chunk;
      ended = true;
    })().catch(() => undefined);
    const rolled = await callJson(env.system, 'POST', `${env.system.auth.url}/admin/v1/merchants/${made.body.merchant.merchant_id}/api-keys/roll`, { overlap_seconds: 0 }, ops);
    expect(rolled.status).toBe(200);
    // The old key is refused at once; the stream it opened must not go on carrying the merchant's events.
    await waitFor('the stream to end', async () => ended || undefined, 3 * limits.eventStreamPollMs + 2_000);
    controller.abort();
    await reader;
  }, 60_000);
  it('listen reopens a cut stream after the last event it saw (Last-Event-ID), so the events of the gap are forwarded', async () => {
    secret = newListenSecret();
    const lines: string[] = [];
    const controller = new AbortController();
    const before = streamOpens.length;
    const running = listen({ brokerUrl: env.system.auth.url, apiKey: env.system.merchant.apiKey, forwardTo: receiverUrl, caCertPem: env.system.pki.caCertPem, signal: controller.signal, print: (l) => lines.push(l), events: ['payment_request.approved'], reconnectMs: 200 }, secret);
    try {
      const first = await waitFor('the stream open', async () => streamOpens[before]);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const firstId = await approvedRequest(env.merchant, wallet, cardNumber, 1300n);
      const [firstEvent] = await env.system.auth.db.query<{ id: string }>("select id from webhook_outbox where payment_request_id = $1 and event_type = 'payment_request.approved'", [firstId]);
      await waitFor('the first forwarded', async () => (lines.some((l) => l.includes(`[200] POST ${receiverUrl} [${firstEvent!.id}]`)) ? true : undefined));
      first.cut(); // the connection drops (no clean end of the stream)
      const secondId = await approvedRequest(env.merchant, wallet, cardNumber, 1301n);
      const reopened = await waitFor('the stream reopened', async () => streamOpens[before + 1]);
      expect(reopened.lastEventId).toBe(firstEvent!.id);
      const [secondEvent] = await env.system.auth.db.query<{ id: string }>("select id from webhook_outbox where payment_request_id = $1 and event_type = 'payment_request.approved'", [secondId]);
      await waitFor('the gap’s event forwarded', async () => (lines.some((l) => l.includes(`[200] POST ${receiverUrl} [${secondEvent!.id}]`)) ? true : undefined));
    } finally {
      controller.abort();
      await running;
    }
  }, 60_000);

  it('a forward target that never answers is given up after webhookTimeoutMs, and the next event is still forwarded', async () => {
    const hanging = createServer(() => undefined); // reads the request, never answers
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    const hangingUrl = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/webhooks`;
    const lines: string[] = [];
    const controller = new AbortController();
    const running = listen({ brokerUrl: env.system.auth.url, apiKey: env.system.merchant.apiKey, forwardTo: hangingUrl, caCertPem: env.system.pki.caCertPem, signal: controller.signal, print: (l) => lines.push(l), events: ['payment_request.approved'] }, newListenSecret());
    try {
      await waitFor('listen ready', async () => (lines.some((l) => l.startsWith('Ready!')) ? true : undefined));
      await new Promise((resolve) => setTimeout(resolve, 300));
      await approvedRequest(env.merchant, wallet, cardNumber, 600n);
      await approvedRequest(env.merchant, wallet, cardNumber, 601n);
      const failed = () => lines.filter((l) => l.startsWith('<-- [failed:')).length;
      await waitFor('both forwards given up', async () => (failed() >= 2 ? true : undefined), 3 * limits.webhookTimeoutMs + 5_000);
    } finally {
      controller.abort();
      await running;
      hanging.closeAllConnections();
      hanging.close();
    }
  }, 60_000);

  it('listen stops with an error when the broker refuses its key (401), instead of reconnecting for ever', async () => {
    const lines: string[] = [];
    const controller = new AbortController();
    const running = listen({ brokerUrl: env.system.auth.url, apiKey: 'sk_test_nosuchkey0000000000000000', forwardTo: receiverUrl, caCertPem: env.system.pki.caCertPem, signal: controller.signal, print: (l) => lines.push(l), reconnectMs: 50 }, newListenSecret());
    const outcome = await Promise.race([running.then(() => 'ended', (err: Error) => err.message), new Promise((resolve) => setTimeout(() => resolve('still running'), 2_000))]);
    controller.abort();
    await running.catch(() => undefined);
    expect(outcome).toMatch(/401.*unauthenticated/);
  }, 30_000);

  it('a stream its reader does not drain stops reading events (no unbounded buffer); nothing is lost', async () => {
    const auth = { authorization: `Bearer ${env.system.merchant.apiKey}` };
    const controller = new AbortController();
    const before = streamResponses.length;
    const stream = await streamRequest(auth, controller.signal); // its body is not read
    expect(stream.statusCode).toBe(200);
    const response = streamResponses[before]!;
    await approvedRequest(env.merchant, wallet, cardNumber, 650n); // an event to copy
    const [model] = await env.system.auth.db.query<{ id: string }>("select id from webhook_outbox where merchant_id = $1 and payment_request_id is not null order by created_at desc limit 1", [env.system.merchant.merchantId]);
    // Events of 64 KiB, 8 polls' worth: far more than the socket's buffers hold.
    const padding = 'x'.repeat(64 * 1024);
    const count = 8 * limits.eventStreamBatchMax;
    await env.system.auth.db.query(
      `insert into webhook_outbox (id, merchant_id, event_type, payment_request_id, body, status)
       select 'evt_big' || n || '_' || $3, merchant_id, event_type, payment_request_id, '{"pad":"' || $2 || '"}', 'delivered'
         from webhook_outbox, generate_series(1, $4) as n where id = $1`,
      [model!.id, padding, Date.now(), count],
    );
    await new Promise((resolve) => setTimeout(resolve, 10 * limits.eventStreamPollMs));
    // At most about one read's batch waits in the broker's memory, not every event.
    expect(response.writableLength).toBeLessThan(2 * limits.eventStreamBatchMax * padding.length);
    // Reading now delivers them all, in order, each once.
    let text = '';
    let seen = 0;
    for await (const chunk of stream.body) {
      text += (chunk as Buffer).toString();
      const blocks = text.split('\n\n');
      text = blocks.pop()!;
      seen += blocks.filter((block) => block.includes('id: evt_big')).length;
      if (seen === count) break;
    }
    expect(seen).toBe(count);
    controller.abort();
    await env.system.auth.db.query("delete from webhook_outbox where id like 'evt_big%'");
  }, 120_000);

  it('the stream still sends, once, an event that committed after a later-stamped one was sent (within the look-back)', async () => {
    const auth = { authorization: `Bearer ${env.system.merchant.apiKey}` };
    const controller = new AbortController();
    const stream = await streamRequest(auth, controller.signal);
    expect(stream.statusCode).toBe(200);
    let text = '';
    const reader = (async () => {
      for await (const chunk of stream.body) text += (chunk as Buffer).toString();
    })().catch(() => undefined);
    await approvedRequest(env.merchant, wallet, cardNumber, 700n);
    const sentId = await waitFor('an event on the stream', async () => /^id: (evt_\S+)$/m.exec(text)?.[1]);
    // A row stamped just before the event just sent (after the stream's start), as a transaction that began earlier and
    // committed later would leave it: a cursor on (created_at, id) alone would step over it.
    const lateId = `evt_late${Date.now()}`;
    await env.system.auth.db.query(
      `insert into webhook_outbox (id, merchant_id, event_type, payment_request_id, body, status, created_at)
       select $2, merchant_id, event_type, payment_request_id, replace(body, id, $2), 'delivered', created_at - interval '1 millisecond'
         from webhook_outbox where id = $1`,
      [sentId, lateId],
    );
    await waitFor('the late event on the stream', async () => text.includes(`id: ${lateId}\n`) || undefined);
    await new Promise((resolve) => setTimeout(resolve, 3 * limits.eventStreamPollMs));
    expect(text.split(`id: ${lateId}\n`).length - 1).toBe(1);
    expect(text.split(`id: ${sentId}\n`).length - 1).toBe(1);
    controller.abort();
    await reader;
  }, 60_000);
});
