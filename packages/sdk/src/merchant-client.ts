/**
 * The merchant's typed client for the authentication server's merchant API (steps 402 and 409),
 * and the check a merchant runs on every webhook before trusting it. Bodies are validated with the
 * protocol schemas on the way out and on the way back; every POST carries an Idempotency-Key that
 * the caller chose and stored first, so a retry can never create a second payment.
 */
import type { z } from 'zod';
import {
  Secret,
  captureRequest,
  createPaymentRequest,
  limits,
  paymentRequestId,
  paymentRequestView,
  refundRequest,
  refundView,
  settlementBatchId,
  settlementBatchPage,
  settlementReport,
  verifyWebhook,
  webhookEvent,
  type CreatePaymentRequest,
  type PaymentRequestView,
  type RefundView,
  type SettlementBatchView,
  type SettlementReport,
  type WebhookEvent,
} from '@kessai/protocol';
import { HttpClient } from './http.ts';

export interface MerchantClientOptions {
  /** The authentication server, e.g. https://127.0.0.1:8443. */
  baseUrl: string;
  apiKey: string | Secret<string>;
  /** The CA that issued the authentication server's certificate. */
  caCertPem: string;
  timeoutMs?: number;
}

export interface CaptureOptions {
  /** Capture less than authorized (a partial capture); the whole authorized amount when absent. */
  amountMinor?: bigint;
}

export class MerchantClient {
  readonly #http: HttpClient;
  readonly #baseUrl: string;
  readonly #apiKey: Secret<string>;

  constructor(options: MerchantClientOptions) {
    const base = new URL(options.baseUrl);
    if (base.protocol !== 'https:') throw new TypeError('MerchantClient: baseUrl must be https');
    this.#baseUrl = `${base.origin}${base.pathname.replace(/\/+$/, '')}`;
    this.#apiKey = typeof options.apiKey === 'string' ? new Secret(options.apiKey) : options.apiKey;
    if (this.#apiKey.expose().length === 0) throw new TypeError('MerchantClient: apiKey is empty');
    this.#http = new HttpClient({ caCertPem: options.caCertPem, ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }) });
  }

  /** Step 402: asks the authentication server for a payment request. */
  async createPaymentRequest(body: CreatePaymentRequest, idempotencyKey: string): Promise<PaymentRequestView> {
    return this.#post('/v1/payment-requests', outgoing(createPaymentRequest, body), idempotencyKey);
  }

  async getPaymentRequest(id: string): Promise<PaymentRequestView> {
    return this.#http.call('GET', this.#url(id), { headers: this.#auth(), schema: paymentRequestView, unavailable: 'issuer_unavailable' });
  }

  /** Step 409: captures the authorized amount, or part of it. */
  async capture(id: string, options: CaptureOptions, idempotencyKey: string): Promise<PaymentRequestView> {
    const body = options.amountMinor === undefined ? {} : { amount_minor: options.amountMinor.toString() };
    return this.#post(this.#url(id, 'capture'), outgoing(captureRequest, body), idempotencyKey);
  }

  /** Step 409: releases the hold without taking any money. */
  async void(id: string, idempotencyKey: string): Promise<PaymentRequestView> {
    return this.#post(this.#url(id, 'void'), {}, idempotencyKey);
  }

  /** Step 409: refunds part of what was captured; several refunds may follow, up to the captured amount. */
  async refund(id: string, amountMinor: bigint, idempotencyKey: string): Promise<RefundView> {
    return this.#post(`${this.#url(id)}/refunds`, outgoing(refundRequest, { amount_minor: amountMinor.toString() }), idempotencyKey, refundView);
  }

  /** The merchant's settlement batches at every issuer, newest business day first. */
  async listSettlementBatches(): Promise<SettlementBatchView[]> {
    const list = await this.#http.call('GET', `${this.#baseUrl}/v1/settlement-batches`, { headers: this.#auth(), schema: settlementBatchPage, unavailable: 'issuer_unavailable' });
    return list.items;
  }

  /** One batch's settlement report: every capture and refund with its fee and net, and the totals. */
  async settlementReport(batchId: string): Promise<SettlementReport> {
    return this.#http.call('GET', this.#reportUrl(batchId, 'json'), { headers: this.#auth(), schema: settlementReport, unavailable: 'issuer_unavailable' });
  }

  /** The same report as CSV text (docs/ledger.md, "Settlement report"). */
  async settlementReportCsv(batchId: string): Promise<string> {
    return (await this.#http.text(this.#reportUrl(batchId, 'csv'), { headers: this.#auth(), unavailable: 'issuer_unavailable' })).text;
  }

  close(): Promise<void> {
    return this.#http.close();
  }

  async #post<T = PaymentRequestView>(pathOrUrl: string, body: unknown, idempotencyKey: string, schema: z.ZodType<T> = paymentRequestView as unknown as z.ZodType<T>): Promise<T> {
    if (idempotencyKey.length < 1 || idempotencyKey.length > limits.idempotencyKeyLengthMax) {
      throw new TypeError(`MerchantClient: Idempotency-Key must be 1..${limits.idempotencyKeyLengthMax} characters`);
    }
    const url = pathOrUrl.startsWith('/') ? `${this.#baseUrl}${pathOrUrl}` : pathOrUrl;
    return this.#http.call('POST', url, {
      body,
      headers: { ...this.#auth(), 'idempotency-key': idempotencyKey },
      schema,
      unavailable: 'issuer_unavailable',
    });
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
    const where = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(body)'}: ${issue.message}`).join('; ');
    throw new TypeError(`MerchantClient: request body does not match the protocol schema (${where})`);
  }
  return parsed.data;
}

/**
 * Checks a webhook delivery: the `Kessai-Signature` header over the raw body bytes, with any of
 * `secrets` (several during rotation), inside limits.webhookToleranceMs of `nowMs`; only then
 * parses the body. Returns undefined when the signature is bad or stale or the body is not a
 * webhook event, so the receiver answers 400 without learning which.
 */
export async function verifyWebhookEvent(secrets: readonly string[], signatureHeader: string, rawBody: string, nowMs: number = Date.now()): Promise<WebhookEvent | undefined> {
  if (secrets.length === 0) throw new TypeError('verifyWebhookEvent: no secrets');
  if (signatureHeader.length > 1024) return undefined;
  if (!(await verifyWebhook(secrets, signatureHeader, rawBody, nowMs, limits.webhookToleranceMs))) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(rawBody);
  } catch {
    return undefined;
  }
  const parsed = webhookEvent.safeParse(json);
  return parsed.success ? parsed.data : undefined;
}
