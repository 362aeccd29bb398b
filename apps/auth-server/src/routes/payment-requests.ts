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
import { authenticateMerchant, idempotencyScope, type MerchantCaller } from '../callers.ts';
import type { AuthContext } from '../context.ts';
import { idempotencyKeyOf, idempotent, requestHash } from '../idempotency.ts';
import { loadPaymentRequest, merchantView, signTerminalView, statusAt, type PaymentRequestRow } from '../payment-requests.ts';
import { transition } from '../payment-state.ts';
import { relayRefund } from '../refunds.ts';

export async function paymentRequestRoutes(plugin: FastifyInstance, context: AuthContext): Promise<void> {
  const app = plugin.withTypeProvider<ZodTypeProvider>();
  const { config, hub } = context;
  const byId = z.strictObject({ id: paymentRequestId });

  /** Runs a merchant POST under its Idempotency-Key and sends the (possibly stored) answer. */
  async function merchantPost(request: FastifyRequest, reply: FastifyReply, run: (merchant: MerchantCaller) => Promise<{ status: number; body: unknown }>) {
    const merchant = await authenticateMerchant(config.db, request);
    const key = idempotencyKeyOf(request.headers);
    const hash = await requestHash(request.method, request.url, request.body);
    const response = await idempotent(config.db, idempotencyScope(merchant), key, hash, () => run(merchant));
    if (response.status >= 400) return reply.code(response.status).type('application/problem+json').send(response.body);
    return reply.code(response.status).send(response.body);
  }

  async function ownedRequest(merchant: MerchantCaller, id: string): Promise<PaymentRequestRow> {
    const row = await loadPaymentRequest(config.db, id);
    // Another merchant's request does not exist, as far as this merchant can tell; nor does one of the other mode.
    if (row.merchant_id !== merchant.id || row.livemode !== merchant.livemode) throw new KessaiError('payment_request_not_found');
    return row;
  }

  // Step 402: the shop asks for a payment.
  const createSummary = 'Create a payment request (step 402)';
  app.post('/v1/payment-requests', { schema: { summary: createSummary, operationId: 'createPaymentRequest', body: createPaymentRequest, response: { 201: paymentRequestView } } }, async (request, reply) =>
    merchantPost(request, reply, async (merchant) => {
      const body = request.body;
      if (lineItemsTotal(body.line_items) !== parseAmount(body.amount_minor)) throw new KessaiError('amount_mismatch');
      if (body.wallet_handle) {
        const [credential] = await config.db.query<{ status: string }>('select status from credentials where id = $1', [body.wallet_handle]);
        if (!credential) throw new KessaiError('credential_not_found');
        if (credential.status !== 'active') throw new KessaiError('credential_revoked');
      }
      const now = new Date();
      const ttlMs = body.expires_in_seconds ? body.expires_in_seconds * 1000 : limits.paymentRequestTtlMsDefault;
      // step 402: the payment request is created
      const [row] = await config.db.query<PaymentRequestRow>(
        `insert into payment_requests (id, merchant_id, order_id, currency, amount_minor, line_items, wallet_handle, status, expires_at, livemode)
         values ($1, $2, $3, $4, $5, $6::text::jsonb, $7, 'pending', $8, $9) returning *`,
        [
          newId('pr'), merchant.id, body.order_id, body.currency, parseAmount(body.amount_minor), JSON.stringify(body.line_items),
          body.wallet_handle ?? null, new Date(now.getTime() + ttlMs), merchant.livemode,
        ],
      );
      if (!row) throw new Error('insert returned no row');
      request.log.info({ request: row.id, merchant: merchant.id }, 'step 402: payment request created');
      // Step 403: push to the wallet if it is listening.
      if (row.wallet_handle) hub.publish(row.wallet_handle, await signTerminalView(row, merchant.name, config.keys, now));
      return { status: 201, body: merchantView(row, config.publicBaseUrl) };
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
      merchantPost(request, reply, async (merchant) => {
        const row = await ownedRequest(merchant, request.params.id);
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
        let updated = await transition(config.db, row, result.status, { captured_minor: parseAmount(result.captured_minor) }, { publicBaseUrl: config.publicBaseUrl, now: new Date() });
        // Hold-sync adopted the issuer's state first (an earlier try of this call committed there, its answer lost): the same outcome.
        updated ??= await loadPaymentRequest(config.db, row.id);
        if (updated.status !== result.status) throw new KessaiError('authorization_not_capturable', `payment request is ${updated.status}`);
        request.log.info({ request: row.id, action, amount: result.captured_minor }, 'step 409: relayed to the issuer');
        return { status: 200, body: merchantView(updated, config.publicBaseUrl) };
      }),
    );
  }

  // Step 409: a refund of part of what was captured (refunds.ts); several, up to the captured amount.
  app.post('/v1/payment-requests/:id/refunds', { schema: { summary: 'Refund part or all of a captured payment', operationId: 'createRefund', params: byId, body: refundRequest, response: { 201: refundView } } }, async (request, reply) =>
    merchantPost(request, reply, async (merchant) => {
      const row = await ownedRequest(merchant, request.params.id);
      const refund = await relayRefund(context, merchant, row, parseAmount(request.body.amount_minor), idempotencyKeyOf(request.headers));
      request.log.info({ request: row.id, refund: refund.id, amount: refund.amount_minor }, 'step 409: refund relayed to the issuer');
      return { status: 201, body: refund };
    }),
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
    const row = await loadPaymentRequest(config.db, request.params.id);
    // A browser (a phone that scanned the shop's QR code) opens the request in the browser wallet.
    if (request.headers.accept?.includes('text/html') && config.walletUrl) return reply.redirect(`${config.walletUrl}?pay=${row.id}`);
    const [merchant] = await config.db.query<{ name: string }>('select name from merchants where id = $1', [row.merchant_id]);
    return {
      id: row.id,
      merchant: merchant?.name ?? row.merchant_id,
      currency: row.currency,
      amount_minor: BigInt(row.amount_minor).toString(),
      status: statusAt(row, new Date()),
      expires_at: row.expires_at.toISOString(),
      how_to_pay: `kessai wallet pay ${config.publicBaseUrl}/pay/${row.id} --storage <your wallet folder>`,
    };
  });
}
