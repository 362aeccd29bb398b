/**
 * The merchant API: step 402 (create a payment request), polling (step 407's fallback), and
 * step 409 relayed to the issuer (capture, void, refunds). Every POST takes an Idempotency-Key.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  captureRequest,
  createPaymentRequest,
  KessaiError,
  limits,
  lineItemsTotal,
  newId,
  parseAmount,
  paymentRequestId,
  paymentLinkView,
  paymentRequestView,
  refundRequest,
  refundView,
  settlementCaptureResponse,
  voidRequest,
} from '@kessai/protocol';
import { authenticateMerchant, authenticateMerchantAndClaim, idempotencyScope, type MerchantCaller } from '../callers.ts';
import type { AuthContext } from '../context.ts';
import { claimLeaseEnd, idempotencyKeyOf, idempotent, requestHash } from '../idempotency.ts';
import type { IdempotencyRef, StoredResponse } from '../idempotency.ts';
import { insertPaymentRequest, loadPaymentRequest, loadWithMerchantName, merchantView } from '../payment-requests.ts';
import { signTerminalView, statusAt, type PaymentRequestRow } from '../payment-requests.ts';
import { transition } from '../payment-state.ts';
import { relayRefund } from '../refunds.ts';

export async function paymentRequestRoutes(plugin: FastifyInstance, context: AuthContext): Promise<void> {
  const app = plugin.withTypeProvider<ZodTypeProvider>();
  const { config, hub } = context;
  const byId = z.strictObject({ id: paymentRequestId });

  /** Runs a merchant POST under its Idempotency-Key and sends the (possibly stored) answer. */
  type MerchantRun = (merchant: MerchantCaller, ref: IdempotencyRef, loaded?: PaymentRequestRow) => Promise<StoredResponse>;
  /** `requestId`: the payment request the POST is about, read (`loaded`) by the statement that authenticates. */
  async function merchantPost(request: FastifyRequest, reply: FastifyReply, run: MerchantRun, requestId?: string) {
    let key: string;
    try {
      key = idempotencyKeyOf(request.headers);
    } catch (err) {
      await authenticateMerchant(config.db, request); // a caller who is not a merchant is told so first
      throw err;
    }
    const hash = await requestHash(request.method, request.url, request.body);
    // The merchant is authenticated and the key claimed by one statement.
    const claim = { key, requestHash: hash, lockedUntil: claimLeaseEnd() };
    const { merchant, claimed, paymentRequest: loaded } = await authenticateMerchantAndClaim(config.db, request, claim, requestId);
    const scope = idempotencyScope(merchant);
    const response = await idempotent(config.db, scope, key, hash, (ref) => run(merchant, ref, loaded), Date.now, claimed);
    if (response.status >= 400) return reply.code(response.status).type('application/problem+json').send(response.body);
    return reply.code(response.status).send(response.body);
  }

  /** `loaded`: the request as the authenticating statement read it (merchantPost), instead of reading it again. */
  async function ownedRequest(merchant: MerchantCaller, id: string, loaded?: PaymentRequestRow) {
    const row = loaded ?? (await loadPaymentRequest(config.db, id));
    // Another merchant's request does not exist, as far as this merchant can tell; nor does one of the other mode.
    if (row.merchant_id !== merchant.id || row.livemode !== merchant.livemode) throw new KessaiError('payment_request_not_found');
    return row;
  }

  // Step 402: the shop asks for a payment.
  const createSummary = 'Create a payment request (step 402)';
  app.post('/v1/payment-requests', { schema: { summary: createSummary, operationId: 'createPaymentRequest', body: createPaymentRequest, response: { 201: paymentRequestView } } }, async (request, reply) =>
    merchantPost(request, reply, async (merchant, ref) => {
      const body = request.body;
      if (lineItemsTotal(body.line_items) !== parseAmount(body.amount_minor)) throw new KessaiError('amount_mismatch');
      const now = new Date();
      const ttlMs = body.expires_in_seconds ? body.expires_in_seconds * 1000 : limits.paymentRequestTtlMsDefault;
      // step 402: the payment request is created (a wallet's credential checked active, the answer stored, by one statement)
      const created = {
        id: newId('pr'), merchantId: merchant.id, orderId: body.order_id, currency: body.currency,
        amountMinor: parseAmount(body.amount_minor), lineItems: body.line_items, walletHandle: body.wallet_handle ?? null,
        createdAt: now, expiresAt: new Date(now.getTime() + ttlMs), livemode: merchant.livemode,
      };
      const { row, stored } = await insertPaymentRequest(config.db, created, { ref, publicBaseUrl: config.publicBaseUrl });
      request.log.info({ request: row.id, merchant: merchant.id }, 'step 402: payment request created');
      // Step 403: push to the wallet if it is listening; the insert checked its credential active just now.
      const push = (view: string) => hub.publish(row.wallet_handle!, view, { credentialChecked: true });
      if (row.wallet_handle) push(await signTerminalView(row, merchant.name, config.keys, now));
      return { status: 201, body: merchantView(row, config.publicBaseUrl, now), stored };
    }),
  );

  app.get('/v1/payment-requests/:id', { schema: { summary: 'Retrieve a payment request', operationId: 'getPaymentRequest', params: byId, response: { 200: paymentRequestView } } }, async (request) => {
    const merchant = await authenticateMerchant(config.db, request);
    return merchantView(await ownedRequest(merchant, request.params.id), config.publicBaseUrl);
  });

  // Step 409: capture (fully or partly) or void, relayed to the issuer that holds the funds.
  const settleDocs = {
    capture: { summary: 'Capture an approved payment, in full or in part', operationId: 'capturePaymentRequest' },
    void: { summary: 'Void an approved payment: release the hold (step 409)', operationId: 'voidPaymentRequest' },
  };
  for (const action of ['capture', 'void'] as const) {
    app.post(`/v1/payment-requests/:id/${action}`, { schema: { ...settleDocs[action], params: byId, body: action === 'capture' ? captureRequest : voidRequest, response: { 200: paymentRequestView } } }, async (request, reply) =>
      merchantPost(request, reply, async (merchant, ref, loaded) => {
        const row = await ownedRequest(merchant, request.params.id, loaded);
        const amount = action === 'capture' ? ((request.body as { amount_minor?: string }).amount_minor ?? BigInt(row.amount_minor).toString()) : undefined;
        // Done already, as asked (an earlier try committed at the issuer and hold-sync adopted it): the same answer.
        if (row.status === (action === 'capture' ? 'captured' : 'voided') && (amount === undefined || parseAmount(amount) === BigInt(row.captured_minor))) return { status: 200, body: merchantView(row, config.publicBaseUrl) };
        if (row.status !== 'approved' || !row.issuer_id) throw new KessaiError('authorization_not_capturable', `payment request is ${row.status}`);
        const issuer = await context.issuers.byId(row.issuer_id);
        if (amount !== undefined && parseAmount(amount) > BigInt(row.amount_minor)) throw new KessaiError('capture_exceeds_authorization');
        const result = await context.http.call('POST', `${issuer.route.baseUrl}/internal/v1/authorizations/${row.id}/${action}`, {
          body: action === 'capture' ? { amount_minor: amount } : {},
          schema: settlementCaptureResponse,
          unavailable: 'issuer_unavailable',
        });
        const now = new Date();
        // The answer is stored by the transition's own statement (answerCte) when it happens.
        const at = { publicBaseUrl: config.publicBaseUrl, now, answer: { ref, status: 200 } };
        const recorded = await transition(config.db, row, result.status, { captured_minor: parseAmount(result.captured_minor) }, at);
        // Hold-sync adopted the issuer's state first (an earlier try of this call committed there, its answer lost): the same outcome.
        const updated = recorded ?? (await loadPaymentRequest(config.db, row.id));
        if (updated.status !== result.status) throw new KessaiError('authorization_not_capturable', `payment request is ${updated.status}`);
        request.log.info({ request: row.id, action, amount: result.captured_minor }, 'step 409: relayed to the issuer');
        return { status: 200, body: merchantView(updated, config.publicBaseUrl, now), stored: recorded !== undefined };
      }, request.params.id),
    );
  }

  // Step 409: a refund of part of what was captured (refunds.ts); several, up to the captured amount.
  app.post('/v1/payment-requests/:id/refunds', { schema: { summary: 'Refund part or all of a captured payment', operationId: 'createRefund', params: byId, body: refundRequest, response: { 201: refundView } } }, async (request, reply) =>
    merchantPost(request, reply, async (merchant, _ref, loaded) => {
      const row = await ownedRequest(merchant, request.params.id, loaded);
      const refund = await relayRefund(context, merchant, row, parseAmount(request.body.amount_minor), idempotencyKeyOf(request.headers));
      request.log.info({ request: row.id, refund: refund.id, amount: refund.amount_minor }, 'step 409: refund relayed to the issuer');
      return { status: 201, body: refund };
    }, request.params.id),
  );
}

/**
 * The payment link a shop shows (a QR code on a phone, a link on a page): public, it tells what is
 * asked and how to pay it. Only a terminal's signed, device-bound calls can answer it.
 */
export async function paymentLinkRoutes(plugin: FastifyInstance, context: AuthContext): Promise<void> {
  const app = plugin.withTypeProvider<ZodTypeProvider>();
  const { config } = context;
  const linkSchema = {
    summary: 'Open a payment link (public)',
    description:
      'What the payment request asks and how to pay it; a browser (Accept: text/html) goes to the browser wallet.',
    operationId: 'getPaymentLink',
    params: z.strictObject({ id: paymentRequestId }),
    response: { 200: paymentLinkView, 302: z.null().meta({ description: 'To the browser wallet (`?pay=<id>`).' }) },
  };
  app.get('/pay/:id', { schema: linkSchema }, async (request, reply) => {
    const row = await loadWithMerchantName(config.db, request.params.id);
    // A browser (a phone that scanned the shop's QR code) opens the request in the browser wallet.
    if (request.headers.accept?.includes('text/html') && config.walletUrl) return reply.redirect(`${config.walletUrl}?pay=${row.id}`);
    return {
      id: row.id,
      merchant: row.merchant_name ?? row.merchant_id,
      currency: row.currency,
      amount_minor: BigInt(row.amount_minor).toString(),
      status: statusAt(row, new Date()),
      expires_at: row.expires_at.toISOString(),
      how_to_pay: `kessai wallet pay ${config.publicBaseUrl}/pay/${row.id} --storage <your wallet folder>`,
    };
  });
}
