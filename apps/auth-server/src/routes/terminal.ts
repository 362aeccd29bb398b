/**
 * The terminal API (steps 403–404, 408). Every call carries a device proof. The terminal
 * listens for payment requests over server-sent events, or fetches one by id (payment link),
 * then approves or declines it, and reads the final state; and it reads its credential's state.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { approveRequest, KessaiError, limits, voidRequest, paymentRequestId, terminalOutcome } from '@kessai/protocol';
import { terminalCredentialStatus } from '@kessai/protocol';
import { textAnswer } from '@kessai/service';
import { authenticateTerminal, credentialIsActive } from '../callers.ts';
import type { AuthContext } from '../context.ts';
import { approve, decline, outcomeOf, requestForTerminal } from '../approval.ts';
import { credentialStatusOf } from '../credential-status.ts';
import { pendingForWallet, signTerminalView, type PaymentRequestWithMerchant } from '../payment-requests.ts';

const signedRequest = z.strictObject({ request: z.string() });

export async function terminalRoutes(plugin: FastifyInstance, context: AuthContext): Promise<void> {
  const app = plugin.withTypeProvider<ZodTypeProvider>();
  const { config, hub } = context;
  const byId = z.strictObject({ id: paymentRequestId });
  /** The open event streams: a draining server ends them before it waits for in-flight requests (process-main.ts), the terminal reconnects to another instance. */
  const streams = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const end of [...streams]) end();
  });

  function signedView(row: PaymentRequestWithMerchant): Promise<string> {
    return signTerminalView(row, row.merchant_name ?? row.merchant_id, config.keys, new Date());
  }

  // Step 403: push. Pending requests addressed to this wallet first, then each new one. A stream
  // outlives the check made when it opened, so the credential's status is read again before each
  // pushed request and each heartbeat: once it is revoked, the stream ends with a `revoked` event.
  const eventsSchema = {
    summary: 'Listen for payment requests (server-sent events, step 403)',
    description:
      'Each `payment_request` event carries a signed request; a `revoked` event ends the stream (credential revoked).',
    operationId: 'streamTerminalEvents',
    response: { 200: textAnswer('text/event-stream', 'Server-sent events until the terminal disconnects.') },
  };
  app.get('/v1/terminal/events', { schema: eventsSchema }, async (request, reply) => {
    const terminal = await authenticateTerminal(config.db, request);
    let chain: Promise<unknown> = Promise.resolve();
    const unsubscribe = hub.subscribe(terminal.credentialId, (event) =>
      whileActive(() => write(event.request), event.credentialChecked),
    );
    if (!unsubscribe) throw new KessaiError('stream_limit_reached');
    reply.hijack();
    const raw = reply.raw;
    // The stream leaves Fastify (hijacked): the headers hooks set on the reply (CORS for a wallet's origin, HSTS) go along by hand.
    const carried = Object.fromEntries(Object.entries(reply.getHeaders()).filter((entry): entry is [string, string | number | string[]] => entry[1] !== undefined));
    raw.writeHead(200, { ...carried, 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    function write(view: string) {
      if (raw.writableEnded) return;
      raw.write(`event: payment_request\ndata: ${JSON.stringify({ request: view })}\n\n`);
    }
    /**
     * Runs `then` in order with the stream's other writes, if the credential is still active; ends
     * the stream if not. `checked`: the statement that stored the pushed request found it active a
     * moment ago (insertPaymentRequest), as fresh as reading it here.
     */
    function whileActive(then: () => void, checked = false) {
      chain = chain.then(async () => {
        if (raw.writableEnded) return;
        if (checked || (await credentialIsActive(config.db, terminal.credentialId))) return then();
        raw.end(`event: revoked\ndata: ${JSON.stringify({ code: 'credential_revoked' })}\n\n`);
        close();
      }).catch((err: unknown) => request.log.error({ err }, 'event stream check failed'));
    }
    const heartbeat = setInterval(() => whileActive(() => raw.write(': keep-alive\n\n')), config.sseHeartbeatMs ?? limits.sseHeartbeatMs);
    const close = () => {
      clearInterval(heartbeat);
      unsubscribe();
      streams.delete(endStream);
    };
    const endStream = () => {
      close();
      if (!raw.writableEnded) raw.end();
    };
    streams.add(endStream);
    request.raw.on('close', close);
    const pending = await pendingForWallet(config.db, terminal.credentialId, limits.listPageMax);
    for (const row of pending) write(await signedView(row));
    raw.write(': ready\n\n');
  });

  // Step 403 by payment link: any enrolled terminal may open a request not addressed to another.
  app.get('/v1/terminal/payment-requests/:id', { schema: { summary: 'Open a payment request by its link (signed)', operationId: 'getTerminalPaymentRequest', params: byId, response: { 200: signedRequest } } }, async (request) => {
    const terminal = await authenticateTerminal(config.db, request);
    const row = await requestForTerminal(context, terminal, request.params.id);
    return { request: await signedView(row) };
  });

  // Step 404: the payer confirmed; steps 405–407 follow before this answers.
  app.post('/v1/terminal/payment-requests/:id/approve', { schema: { summary: 'Approve a payment request (steps 404–407)', operationId: 'approvePaymentRequest', params: byId, body: approveRequest, response: { 200: terminalOutcome } } }, async (request, reply) => {
    const terminal = await authenticateTerminal(config.db, request);
    return approve(context, terminal, request.params.id, request.body, new Date(), Date.now() - reply.elapsedTime);
  });

  app.post('/v1/terminal/payment-requests/:id/decline', { schema: { summary: 'Decline a payment request', operationId: 'declinePaymentRequest', params: byId, body: voidRequest, response: { 200: terminalOutcome } } }, async (request) => {
    const terminal = await authenticateTerminal(config.db, request);
    return decline(context, terminal, request.params.id, new Date());
  });

  // Step 408: the terminal sees the final state.
  app.get('/v1/terminal/payment-requests/:id/outcome', { schema: { summary: "A payment request's outcome (step 408)", operationId: 'getPaymentOutcome', params: byId, response: { 200: terminalOutcome } } }, async (request) => {
    const terminal = await authenticateTerminal(config.db, request);
    return outcomeOf(await requestForTerminal(context, terminal, request.params.id));
  });

  // The terminal's own credential: active (with the PIN tries left), locked, blocked or revoked. A
  // revoked credential may still ask, so the payer learns why it is refused (credential-status.ts).
  const credentialSchema = {
    summary: "The terminal's own credential: active, locked, blocked or revoked (asks the issuer)",
    operationId: 'getTerminalCredential',
    response: { 200: terminalCredentialStatus },
  };
  app.get('/v1/terminal/credential', { schema: credentialSchema }, async (request) => {
    const terminal = await authenticateTerminal(config.db, request, { revoked: 'allowed' });
    return credentialStatusOf(context, terminal);
  });
}
