/**
 * The authentication-server console's API (`/admin/v1/...`, operator token only): payment
 * requests and their states, credential records, and webhook deliveries with their resend. Every list is bounded by
 * limits.listPageMax. This server keeps no personal data (docs/architecture.md), and these views
 * add none: no device key, no signed view or webhook body, only ids, states, amounts and times.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { amountString, idPattern, KessaiError, limits, paymentRequestStatus } from '@kessai/protocol';
import { requireOperator, consolePage, consolePageOf, decimalString, isoOrNull } from '@kessai/service';
import type { AuthConfig } from './config.ts';
import { listWebhookEvents, resendWebhookEvent, webhookEventStatuses, type WebhookEventRecord } from './webhooks.ts';

const amount = amountString;
const timestamp = z.string();
const limitParam = z.coerce.number().int().min(1).max(limits.listPageMax).default(limits.listPageMax);

const paymentRequestView = z.strictObject({
  id: z.string(),
  merchant_id: z.string(),
  order_id: z.string(),
  status: paymentRequestStatus,
  currency: z.string(),
  amount_minor: amount,
  captured_minor: amount,
  refunded_minor: amount,
  line_items: z.number().int(),
  credential_id: z.string().nullable(),
  issuer_id: z.string().nullable(),
  decline_code: z.string().nullable(),
  created_at: timestamp,
  updated_at: timestamp,
  expires_at: timestamp,
});

const credentialView = z.strictObject({
  id: z.string(),
  issuer_id: z.string(),
  status: z.string(),
  created_at: timestamp,
  last_used_at: timestamp.nullable(),
});

/** One webhook event and its delivery; the merchant API answers the same view of its own events (routes/webhook-events.ts). */
export const webhookDeliveryView = z.strictObject({
  id: z.string(),
  merchant_id: z.string(),
  event_type: z.string(),
  payment_request_id: z.string().nullable(),
  /** delivered; pending (will be tried again); dead (every attempt of webhookRetryDelaysMs failed: resend it). */
  state: z.enum(webhookEventStatuses),
  attempts: z.number().int(),
  last_status: z.number().int().nullable(),
  next_attempt_at: timestamp.nullable(),
  delivered_at: timestamp.nullable(),
  dead_at: timestamp.nullable(),
  /** The last resend (by the operator or the merchant), which started a fresh schedule. */
  resent_at: timestamp.nullable(),
  created_at: timestamp,
  /** The mode of the event's payment request. */
  livemode: z.boolean(),
});

export function deliveryViewOf(row: WebhookEventRecord): z.infer<typeof webhookDeliveryView> {
  return {
    id: row.id,
    merchant_id: row.merchant_id,
    event_type: row.event_type,
    payment_request_id: row.payment_request_id,
    state: row.status,
    attempts: Number(row.attempts),
    last_status: row.last_status === null ? null : Number(row.last_status),
    next_attempt_at: row.status === 'pending' ? iso(row.next_attempt_at) : null,
    delivered_at: iso(row.delivered_at),
    dead_at: iso(row.dead_at),
    resent_at: iso(row.resent_at),
    created_at: iso(row.created_at)!,
    livemode: Boolean(row.livemode),
  };
}

// The consoles' shared list helpers (packages/service/src/console-pages.ts).
const page = consolePage;
const pageOf = consolePageOf;
const iso = isoOrNull;
const decimal = decimalString;

interface PaymentRequestRow {
  id: string;
  merchant_id: string;
  order_id: string;
  status: z.infer<typeof paymentRequestStatus>;
  currency: string;
  amount_minor: bigint;
  captured_minor: bigint;
  refunded_minor: bigint;
  line_items: number;
  credential_id: string | null;
  issuer_id: string | null;
  decline_code: string | null;
  created_at: Date;
  updated_at: Date;
  expires_at: Date;
}

interface CredentialRow {
  id: string;
  issuer_id: string;
  status: string;
  created_at: Date;
  last_used_at: Date | null;
}

/** Registered by app.ts only when the config has an operator token (requireOperator refuses a missing one). */
export async function adminConsoleRoutes(plugin: FastifyInstance, config: AuthConfig): Promise<void> {
  const app = plugin.withTypeProvider<ZodTypeProvider>();
  app.addHook('onRequest', requireOperator(config.operatorToken ?? ''));
  const db = config.db;

  const requestQuery = z.strictObject({ limit: limitParam, status: paymentRequestStatus.optional() });
  app.get('/admin/v1/payment-requests', { schema: { summary: 'List payment requests (operator console)', operationId: 'adminListPaymentRequests', querystring: requestQuery, response: { 200: page(paymentRequestView) } } }, async (request) => {
    const { limit, status } = request.query;
    const rows = await db.query<PaymentRequestRow>(
      `select id, merchant_id, order_id, status, currency, amount_minor, captured_minor, refunded_minor,
              jsonb_array_length(line_items)::int4 as line_items, credential_id, issuer_id, decline_code, created_at, updated_at, expires_at
         from payment_requests where $2::text is null or status = $2
        order by created_at desc, id desc limit $1`,
      [limit + 1, status ?? null],
    );
    return pageOf(rows, limit, (row) => ({
      id: row.id,
      merchant_id: row.merchant_id,
      order_id: row.order_id,
      status: row.status,
      currency: row.currency,
      amount_minor: decimal(row.amount_minor),
      captured_minor: decimal(row.captured_minor),
      refunded_minor: decimal(row.refunded_minor),
      line_items: row.line_items,
      credential_id: row.credential_id,
      issuer_id: row.issuer_id,
      decline_code: row.decline_code,
      created_at: iso(row.created_at)!,
      updated_at: iso(row.updated_at)!,
      expires_at: iso(row.expires_at)!,
    }));
  });

  const credentialQuery = z.strictObject({ limit: limitParam, status: z.enum(['active', 'revoked']).optional() });
  app.get('/admin/v1/credentials', { schema: { summary: 'List credentials (operator console)', operationId: 'adminListCredentials', querystring: credentialQuery, response: { 200: page(credentialView) } } }, async (request) => {
    const { limit, status } = request.query;
    // Explicit columns: the device key and its thumbprint stay out of the console.
    const rows = await db.query<CredentialRow>(
      `select id, issuer_id, status, created_at, last_used_at from credentials where $2::text is null or status = $2
        order by created_at desc, id desc limit $1`,
      [limit + 1, status ?? null],
    );
    return pageOf(rows, limit, (row) => ({ id: row.id, issuer_id: row.issuer_id, status: row.status, created_at: iso(row.created_at)!, last_used_at: iso(row.last_used_at) }));
  });

  const deliveryQuery = z.strictObject({ limit: limitParam, state: z.enum(webhookEventStatuses).optional(), merchant_id: z.string().max(limits.stringLengthMax).optional() });
  app.get('/admin/v1/webhook-deliveries', { schema: { summary: 'List webhook deliveries (operator console)', operationId: 'adminListWebhookDeliveries', querystring: deliveryQuery, response: { 200: page(webhookDeliveryView) } } }, async (request) => {
    const { limit, state, merchant_id } = request.query;
    // The event body is not sent, only the payment request it is about.
    const rows = await listWebhookEvents(db, { ...(state ? { status: state } : {}), ...(merchant_id ? { merchantId: merchant_id } : {}) }, limit);
    return pageOf(rows, limit, deliveryViewOf);
  });

  // Resend: the same event (id and body) queued again for a fresh schedule — a dead one once its receiver is fixed.
  app.post('/admin/v1/webhook-deliveries/:id/resend', { schema: { summary: 'Resend a webhook event (operator)', operationId: 'adminResendWebhookEvent', params: z.strictObject({ id: z.string().regex(idPattern('evt'), 'evt_ id') }), response: { 200: webhookDeliveryView } } }, async (request) => {
    const row = await resendWebhookEvent(db, request.params.id, undefined, new Date());
    if (!row) throw new KessaiError('webhook_event_not_found');
    request.log.info({ event: row.id, merchant: row.merchant_id, type: row.event_type }, 'webhook event resent by the operator');
    return deliveryViewOf(row);
  });
}
