/**
 * Step 407 to the shop: events are written to the outbox in the same transaction as the state
 * change they report, then delivered by a worker with an HMAC signature (`Kessai-Signature:
 * t=…,v1=…`), retried with exponential back-off up to webhookAttemptsMax. Merchants that miss
 * them can always poll the payment request.
 */
import { Agent, request } from 'undici';
import { limits, newId, type PaymentRequestView, type RefundView, type WebhookEvent } from '@kessai/protocol';
import type { Db, Logger } from '@kessai/service';
import { webhookSignature } from './webhook-secrets.ts';

/** An event as it is signed and sent; payment-state.ts queues it with the request's next sequence number. */
export function webhookEvent(type: WebhookEvent['type'], view: PaymentRequestView, now: Date, sequence: number, refund?: RefundView): WebhookEvent {
  return { id: newId('evt'), type, created_at: now.toISOString(), sequence, data: view, ...(refund ? { refund } : {}) };
}


interface OutboxRow {
  id: string;
  event_type: string;
  body: string;
  attempts: number;
  webhook_url: string | null;
  webhook_secret: string;
  /** Secrets rotated away from and not yet retired: they sign too (webhook-secrets.ts). */
  previous_secrets: string[] | null;
}

export function backoffMs(attempts: number): number {
  return Math.min(limits.webhookBackoffMsFirst * 2 ** Math.max(0, attempts - 1), limits.webhookBackoffMsMax);
}

export class WebhookDispatcher {
  readonly #db: Db;
  readonly #logger: Logger;
  readonly #agent: Agent;

  constructor(db: Db, logger: Logger, caCertPem: string) {
    this.#db = db;
    this.#logger = logger;
    this.#agent = new Agent({ connect: { ca: caCertPem }, headersTimeout: limits.webhookTimeoutMs, bodyTimeout: limits.webhookTimeoutMs });
  }

  /** Claims due events (a lease of webhookTimeoutMs so another process skips them) and delivers them. */
  async deliverDue(now: Date): Promise<number> {
    const due = await this.#db.transaction((tx) =>
      tx.query<OutboxRow>(
        `update webhook_outbox o set next_attempt_at = $2, attempts = o.attempts + 1
           from merchants m
          where o.merchant_id = m.id and o.id in (
            select id from webhook_outbox where delivered_at is null and next_attempt_at <= $1 and attempts < $3
             order by next_attempt_at limit $4 for update skip locked)
        returning o.id, o.event_type, o.body, o.attempts, m.webhook_url, m.webhook_secret,
          array(select s.secret from merchant_webhook_secrets s where s.merchant_id = m.id and s.status = 'previous' order by s.rotated_at desc) as previous_secrets`,
        [now, new Date(now.getTime() + limits.webhookTimeoutMs * 2), limits.webhookAttemptsMax, limits.webhookBatchMax],
      ),
    );
    await Promise.all(due.map((row) => this.#deliver(row, now)));
    return due.length;
  }

  async #deliver(row: OutboxRow, now: Date): Promise<void> {
    if (!row.webhook_url) {
      await this.#db.query('update webhook_outbox set delivered_at = now(), last_status = 0 where id = $1', [row.id]);
      return;
    }
    let status: number;
    try {
      const signature = await webhookSignature(row.webhook_secret, row.previous_secrets ?? [], row.body, Math.floor(now.getTime() / 1000));
      const response = await request(row.webhook_url, {
        method: 'POST',
        dispatcher: this.#agent,
        headers: { 'content-type': 'application/json', 'kessai-signature': signature },
        body: row.body,
        signal: AbortSignal.timeout(limits.webhookTimeoutMs),
      });
      status = response.statusCode;
      await response.body.dump();
    } catch {
      status = 0;
    }
    if (status >= 200 && status < 300) {
      await this.#db.query('update webhook_outbox set delivered_at = now(), last_status = $2 where id = $1', [row.id, status]);
      this.#logger.info({ event: row.id, type: row.event_type, attempts: row.attempts }, 'webhook delivered');
      return;
    }
    await this.#db.query('update webhook_outbox set last_status = $2, next_attempt_at = $3 where id = $1', [row.id, status, new Date(now.getTime() + backoffMs(row.attempts))]);
    this.#logger.warn({ event: row.id, type: row.event_type, attempts: row.attempts, status }, 'webhook delivery failed');
  }

  close(): Promise<void> {
    return this.#agent.close();
  }
}
