/**
 * The merchant's typed client for the authentication server's merchant API (steps 402 and 409),
 * and the check a merchant runs on every webhook before trusting it. Bodies are validated with the
 * protocol schemas on the way out and on the way back; every POST carries an Idempotency-Key that
 * the caller chose and stored first, so a retry can never create a second payment.
 */
import { z } from 'zod';
import {
  Secret,
  captureRequest,
  createPaymentRequest,
  limits,
  paymentRequestId,
  refundRequest,
  settlementBatchId,
  verifyStandardWebhook,
  verifyWebhook,
  type CreatePaymentRequest,
  type PaymentRequestView,
  type RefundView,
  type SettlementBatchView,
  type SettlementReport,
} from '@kessai/protocol';
import { randomUUID } from 'node:crypto';
import { HttpClient } from './http.ts';
import { ListIterable, type ListPage, type ListParams } from './pager.ts';
import { retrying, type RetryOptions } from './retry.ts';
import {
  wirePaymentRequestView,
  wireRefundView,
  wireSettlementBatchView,
  wireSettlementReport,
  wireWebhookEvent,
  type TolerantWebhookEvent,
} from './wire.ts';

export interface MerchantClientOptions {
  /** The authentication server, e.g. https://127.0.0.1:8443. */
  baseUrl: string;
  apiKey: string | Secret<string>;
  /** The CA that issued the authentication server's certificate. */
  caCertPem: string;
  timeoutMs?: number;
  /**
   * Retries of a network error, 409 in progress, 429, 502 or 503, with jittered back-off (default 2, as stripe-node).
   */
  maxNetworkRetries?: number;
}

/**
 * An event of `GET /v1/events`: `data` is the event's object as in the webhook body; unknown types and fields are
 * kept.
 */
const merchantEvent = z.looseObject({
  id: z.string(),
  type: z.string(),
  created_at: z.string(),
  data: z.unknown(),
  livemode: z.boolean().optional(),
});
export type MerchantEvent = z.infer<typeof merchantEvent>;
/**
 * One webhook delivery of `GET /v1/webhook-events` (its event id and type, delivery state and attempts, among other
 * fields).
 */
const webhookDelivery = z.looseObject({
  id: z.string(),
  event_type: z.string(),
  state: z.string(),
  attempts: z.number().int(),
});
export type WebhookDelivery = z.infer<typeof webhookDelivery>;

export interface CaptureOptions {
  /** Capture less than authorized (a partial capture); the whole authorized amount when absent. */
  amountMinor?: bigint;
}

export class MerchantClient {
  readonly #http: HttpClient;
  readonly #baseUrl: string;
  readonly #apiKey: Secret<string>;
  readonly #retry: RetryOptions;

  constructor(options: MerchantClientOptions) {
    const base = new URL(options.baseUrl);
    if (base.protocol !== 'https:') throw new TypeError('MerchantClient: baseUrl must be https');
    this.#baseUrl = `${base.origin}${base.pathname.replace(/\/+$/, '')}`;
    this.#apiKey = typeof options.apiKey === 'string' ? new Secret(options.apiKey) : options.apiKey;
    if (this.#apiKey.expose().length === 0) throw new TypeError('MerchantClient: apiKey is empty');
    this.#retry = { maxNetworkRetries: options.maxNetworkRetries ?? 2 };
    this.#http = new HttpClient({
      caCertPem: options.caCertPem,
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    });
  }

  /** Step 402: asks the authentication server for a payment request. */
  async createPaymentRequest(body: CreatePaymentRequest, idempotencyKey?: string): Promise<PaymentRequestView> {
    return this.#post('/v1/payment-requests', outgoing(createPaymentRequest, body), idempotencyKey);
  }

  async getPaymentRequest(id: string): Promise<PaymentRequestView> {
    return this.#get(this.#url(id), wirePaymentRequestView);
  }

  /** Step 409: captures the authorized amount, or part of it. */
  async capture(id: string, options: CaptureOptions, idempotencyKey?: string): Promise<PaymentRequestView> {
    const body = options.amountMinor === undefined ? {} : { amount_minor: options.amountMinor.toString() };
    return this.#post(this.#url(id, 'capture'), outgoing(captureRequest, body), idempotencyKey);
  }

  /** Step 409: releases the hold without taking any money. */
  async void(id: string, idempotencyKey?: string): Promise<PaymentRequestView> {
    return this.#post(this.#url(id, 'void'), {}, idempotencyKey);
  }

  /** Step 409: refunds part of what was captured; several refunds may follow, up to the captured amount. */
  async refund(id: string, amountMinor: bigint, idempotencyKey?: string): Promise<RefundView> {
    return this.#post(
      `${this.#url(id)}/refunds`,
      outgoing(refundRequest, { amount_minor: amountMinor.toString() }),
      idempotencyKey,
      wireRefundView,
    );
  }

  /** The merchant's settlement batches at every issuer, newest first, every page (`for await`), or one (`.page()`). */
  listSettlementBatches(params: ListParams = {}): ListIterable<SettlementBatchView> {
    return new ListIterable(this.#page, '/v1/settlement-batches', wireSettlementBatchView, params);
  }

  /** One batch's settlement report: every capture and refund with its fee and net, and the totals. */
  async settlementReport(batchId: string): Promise<SettlementReport> {
    return this.#get(this.#reportUrl(batchId, 'json'), wireSettlementReport);
  }

  /** The same report as CSV text (docs/ledger.md, "Settlement report"). */
  async settlementReportCsv(batchId: string): Promise<string> {
    return (
      await this.#http.text(this.#reportUrl(batchId, 'csv'), {
        headers: this.#auth(),
        unavailable: 'issuer_unavailable',
      })
    ).text;
  }

  /** The merchant's payment requests, newest first, every page (`for await`), or one (`.page()`). */
  listPaymentRequests(params: ListParams = {}): ListIterable<PaymentRequestView> {
    return new ListIterable(this.#page, '/v1/payment-requests', wirePaymentRequestView, params);
  }

  /** The merchant's refunds, newest first; only one payment request's with `paymentRequestId`. */
  listRefunds(params: ListParams & { paymentRequestId?: string } = {}): ListIterable<RefundView> {
    return new ListIterable(this.#page, '/v1/refunds', wireRefundView, {
      ...params,
      filters: { payment_request_id: params.paymentRequestId },
    });
  }

  /** The merchant's events (kept limits.eventsRetentionDays days), newest first; `types` filters them. */
  listEvents(params: ListParams & { types?: readonly string[] } = {}): ListIterable<MerchantEvent> {
    return new ListIterable(this.#page, '/v1/events', merchantEvent, {
      ...params,
      filters: { types: params.types?.join(',') },
    });
  }

  /** The webhook deliveries of the merchant's events, newest first; `status: 'dead'` for the dead letters. */
  listWebhookEvents(params: ListParams & { status?: string } = {}): ListIterable<WebhookDelivery> {
    return new ListIterable(this.#page, '/v1/webhook-events', webhookDelivery, {
      ...params,
      filters: { status: params.status },
    });
  }

  readonly #page = <T>(pathAndQuery: string, schema: z.ZodType<ListPage<T>>): Promise<ListPage<T>> =>
    this.#get(`${this.#baseUrl}${pathAndQuery}`, schema);

  close(): Promise<void> {
    return this.#http.close();
  }

  async #get<T>(url: string, schema: z.ZodType<T>): Promise<T> {
    return retrying(this.#retry, () =>
      this.#http.call('GET', url, { headers: this.#auth(), schema, unavailable: 'broker_unavailable' }),
    );
  }

  /** A POST with its Idempotency-Key (the caller's, else a fresh one), the same key on every retry. */
  async #post<T = PaymentRequestView>(
    pathOrUrl: string,
    body: unknown,
    idempotencyKey: string = `sdk-${randomUUID()}`,
    schema: z.ZodType<T> = wirePaymentRequestView as unknown as z.ZodType<T>,
  ): Promise<T> {
    if (idempotencyKey.length < 1 || idempotencyKey.length > limits.idempotencyKeyLengthMax) {
      throw new TypeError(`MerchantClient: Idempotency-Key must be 1..${limits.idempotencyKeyLengthMax} characters`);
    }
    const url = pathOrUrl.startsWith('/') ? `${this.#baseUrl}${pathOrUrl}` : pathOrUrl;
    const headers = { ...this.#auth(), 'idempotency-key': idempotencyKey };
    return retrying(this.#retry, () =>
      this.#http.call('POST', url, { body, headers, schema, unavailable: 'broker_unavailable' }),
    );
  }

  #url(id: string, action?: 'capture' | 'void'): string {
    // The id goes into the path: only a well-formed one, so it can never change the path.
    if (!paymentRequestId.safeParse(id).success) throw new TypeError('MerchantClient: not a payment request id');
    return `${this.#baseUrl}/v1/payment-requests/${id}${action ? `/${action}` : ''}`;
  }

  #reportUrl(batchId: string, format: 'json' | 'csv'): string {
    if (!settlementBatchId.safeParse(batchId).success) throw new TypeError('MerchantClient: not a settlement batch id');
    return `${this.#baseUrl}/v1/settlement-batches/${batchId}/report.${format}`;
  }

  #auth(): Record<string, string> {
    return { authorization: `Bearer ${this.#apiKey.expose()}` };
  }
}

/** What we send is checked too: a body the schema refuses is a bug in the caller. */
function outgoing<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const where = parsed.error.issues
      .map((issue) => `${issue.path.join('.') || '(body)'}: ${issue.message}`)
      .join('; ');
    throw new TypeError(`MerchantClient: request body does not match the protocol schema (${where})`);
  }
  return parsed.data;
}

/** The headers of a webhook delivery the verifier reads (names in lower case, as Node gives them). */
export type WebhookHeaders = Record<string, string | string[] | undefined>;

/**
 * Checks a webhook delivery over the raw body bytes, with any of `secrets` (several during
 * rotation), inside limits.webhookToleranceMs of `nowMs`: its `Kessai-Signature` (a string, or the
 * headers holding it), else its Standard Webhooks headers (`webhook-id`, `webhook-timestamp`,
 * `webhook-signature`); only then parses the body, tolerantly (unknown fields and event types are
 * accepted). Returns undefined when the signature is bad or stale or the body is not a webhook
 * event, so the receiver answers 400 without learning which.
 */
export async function verifyWebhookEvent(
  secrets: readonly string[],
  signature: string | WebhookHeaders,
  rawBody: string,
  nowMs: number = Date.now(),
): Promise<TolerantWebhookEvent | undefined> {
  if (secrets.length === 0) throw new TypeError('verifyWebhookEvent: no secrets');
  if (!(await signatureVerifies(secrets, signature, rawBody, nowMs))) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(rawBody);
  } catch {
    return undefined;
  }
  const parsed = wireWebhookEvent.safeParse(json);
  return parsed.success ? parsed.data : undefined;
}

async function signatureVerifies(
  secrets: readonly string[],
  signature: string | WebhookHeaders,
  rawBody: string,
  nowMs: number,
): Promise<boolean> {
  const header = (name: string): string | undefined => {
    const value =
      typeof signature === 'string' ? (name === 'kessai-signature' ? signature : undefined) : signature[name];
    return typeof value === 'string' && value.length <= 1024 ? value : undefined;
  };
  const kessai = header('kessai-signature');
  if (kessai !== undefined) return verifyWebhook(secrets, kessai, rawBody, nowMs, limits.webhookToleranceMs);
  const [id, timestamp, standard] = [header('webhook-id'), header('webhook-timestamp'), header('webhook-signature')];
  if (id === undefined || timestamp === undefined || standard === undefined) return false;
  return verifyStandardWebhook(
    secrets,
    { id, timestamp, signature: standard },
    rawBody,
    nowMs,
    limits.webhookToleranceMs,
  );
}
