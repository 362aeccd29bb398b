/**
 * Step 407 to the shop: events are written to the outbox in the same statement or transaction as
 * the state change they report, each with the next `sequence` of its payment request, then
 * delivered by a worker with an HMAC signature (`Kessai-Signature: t=…,v1=…`). An attempt leases
 * its event for webhookLeaseMs (no concurrent sends, nothing lost to a dead process); a failed one
 * is retried after limits.webhookRetryDelaysMs (about four days in all); after the last the event
 * is dead until the operator or the merchant resends it (same id and body, fresh schedule).
 * Each attempt continues the trace of the request that queued its event (`traceparent`, a new
 * span per attempt; a new trace for an event queued outside any request), logged as trace_id.
 * Merchants' endpoints are reached trusting Node's root certificates plus the configured CA.
 */
import { Agent, request } from 'undici';
import { limits, newId, type PaymentRequestView, type RefundView, type WebhookEvent } from '@kessai/protocol';
import { formatTraceparent, newSpanId, newTraceId, trustedCas } from '@kessai/sdk';
import { recordDomainEvent, type Db, type Logger, type Queryable } from '@kessai/service';
import { standardWebhookHeaders, webhookSignature } from './webhook-secrets.ts';
import { eventsQueued } from './work-signals.ts';

if (limits.webhookAttemptsMax !== limits.webhookRetryDelaysMs.length + 1) throw new Error('limits: webhookAttemptsMax must be webhookRetryDelaysMs.length + 1');

/** The event `type` about `view` (with the refund it reports, if any); a new id unless `id` is given. */
export function webhookEvent(
  type: WebhookEvent['type'],
  view: PaymentRequestView,
  now: Date,
  sequence: number,
  { refund, id = newId('evt') }: { refund?: RefundView | undefined; id?: string } = {},
): WebhookEvent {
  // step 407: the shop is notified by a signed webhook event
  return { id, type, created_at: now.toISOString(), livemode: view.livemode, data: view, ...(refund ? { refund } : {}), sequence };
}

/**
 * An event whose sequence SQL fills in: the JSON of webhookEvent(…) up to its last member, so
 * `prefix || event_sequence || '}'` — in the statement that increments
 * payment_requests.event_sequence — is exactly JSON.stringify of the event with that sequence.
 */
export function sequencedEventBody(type: WebhookEvent['type'], view: PaymentRequestView, now: Date, refund?: RefundView): { id: string; prefix: string } {
  const id = newId('evt');
  const json = JSON.stringify(webhookEvent(type, view, now, 1, { refund, id }));
  if (!json.endsWith(',"sequence":1}')) throw new Error('webhookEvent: sequence is not the last member');
  return { id, prefix: json.slice(0, -'1}'.length) };
}


interface OutboxRow {
  id: string;
  merchant_id: string;
  event_type: string;
  body: string;
  attempts: number;
  webhook_url: string | null;
  webhook_secret: string;
  /** Secrets rotated away from and not yet retired: they sign too (webhook-secrets.ts). */
  previous_secrets: string[] | null;
  trace_id: string | null;
}

/** How long after failed attempt number `attempts` (1-based) the next one is due; undefined after the last. */
export function retryDelayMs(attempts: number): number | undefined {
  return limits.webhookRetryDelaysMs[attempts - 1];
}

/** An update recording successful deliveries: ids, statuses and times as three array parameters. */
function markSql(ids: string, statuses: string, times: string): string {
  return `update webhook_outbox w
             set status = 'delivered', delivered_at = v.at, last_status = v.status, leased_until = null
            from unnest(${ids}::text[], ${statuses}::int[], ${times}::timestamptz[]) as v (id, status, at)
           where w.id = v.id`;
}

interface Mark {
  id: string;
  status: number;
  at: Date;
}

function zipMarks([ids, statuses, times]: [string[], number[], Date[]]): Mark[] {
  return ids.map((id, i) => ({ id, status: statuses[i]!, at: times[i]! }));
}

export class WebhookDispatcher {
  readonly #db: Db;
  readonly #logger: Logger;
  readonly #agent: Agent;

  readonly #onAttempt: ((outcome: 'delivered' | 'failed' | 'dead') => void) | undefined;
  /** Successful deliveries not written yet (#mark). */
  #marks: Mark[] = [];
  #flushTimer: NodeJS.Timeout | undefined;

  /** `caCertPem`: extra CAs trusted beside Node's root certificates (a merchant's public certificate is reached too). `onAttempt`: told each attempt's outcome (/metrics). */
  constructor(db: Db, logger: Logger, caCertPem: string, onAttempt?: (outcome: 'delivered' | 'failed' | 'dead') => void) {
    this.#db = db;
    this.#logger = logger;
    this.#onAttempt = onAttempt;
    this.#agent = new Agent({ connect: { ca: trustedCas(caCertPem, 'public') }, headersTimeout: limits.webhookTimeoutMs, bodyTimeout: limits.webhookTimeoutMs });
  }

  /** The CAs a delivery trusts (tests check that the public roots are among them). */
  static trustedCas(caCertPem: string): string[] {
    return trustedCas(caCertPem, 'public');
  }

  /**
   * Claims due events under a lease of webhookLeaseMs (another pass or process skips them) and
   * delivers them; buries abandoned ones first. Writes every outcome before it returns.
   */
  async deliverDue(now: Date): Promise<number> {
    await this.#buryAbandoned(now);
    const delivered = await this.deliverQueued(now);
    await this.flushMarks();
    return delivered;
  }

  /**
   * Claims and delivers the events due now, without looking for abandoned ones (the worker's
   * wake-up after an event was queued, worker.ts). The claim is one statement — its own
   * transaction, its `for update skip locked` held to its end — so no BEGIN and COMMIT around it —
   * and it also records the deliveries that succeeded since the last claim (#marks).
   */
  async deliverQueued(now: Date): Promise<number> {
    const marks = this.#takeMarks();
    const leaseEnd = new Date(now.getTime() + limits.webhookLeaseMs);
    const due = await this.#db.query<OutboxRow>(
      `with marked as (${markSql('$5', '$6', '$7')})
       update webhook_outbox o set next_attempt_at = $2, leased_until = $2, attempts = o.attempts + 1
         from merchants m
        where o.merchant_id = m.id and o.id in (
          select id from webhook_outbox
           where status = 'pending' and next_attempt_at <= $1 and attempts < $3 and id <> all($5::text[])
           order by next_attempt_at limit $4 for update skip locked)
      returning o.id, o.merchant_id, o.event_type, o.body, o.attempts, o.trace_id, m.webhook_url, m.webhook_secret,
        array(select s.secret from merchant_webhook_secrets s where s.merchant_id = m.id and s.status = 'previous' order by s.rotated_at desc) as previous_secrets`,
      [now, leaseEnd, limits.webhookAttemptsMax, limits.webhookBatchMax, ...marks],
    ).catch((err: unknown) => {
      this.#marks.unshift(...zipMarks(marks)); // not written: kept for the next claim or flush
      throw err;
    });
    await Promise.all(due.map((row) => this.#deliver(row, now)));
    return due.length;
  }

  /** Writes the successful deliveries not recorded yet, in one statement (the worker's timer, close, deliverDue). */
  async flushMarks(): Promise<void> {
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    const marks = this.#takeMarks();
    if (marks[0].length === 0) return;
    await this.#db.query(markSql('$1', '$2', '$3'), marks).catch((err: unknown) => {
      this.#marks.unshift(...zipMarks(marks));
      throw err;
    });
  }

  /**
   * A successful delivery, recorded with the next claim or within webhookMarkDelayMs: its lease
   * keeps it from being sent again meanwhile; a process that dies first sends it again after the
   * lease (at least once, as any delivery whose answer was lost).
   */
  #mark(id: string, status: number, at: Date): void {
    this.#marks.push({ id, status, at });
    this.#flushTimer ??= setTimeout(() => {
      this.#flushTimer = undefined;
      this.flushMarks().catch((err: unknown) => this.#logger.warn({ err }, 'webhook outcomes not written; tried again'));
    }, limits.webhookMarkDelayMs);
    this.#flushTimer.unref();
  }

  #takeMarks(): [string[], number[], Date[]] {
    const marks = this.#marks.splice(0, this.#marks.length);
    return [marks.map((m) => m.id), marks.map((m) => m.status), marks.map((m) => m.at)];
  }

  /** The last attempt's process died before it recorded the outcome: once its lease is over, the event is dead. */
  async #buryAbandoned(now: Date): Promise<void> {
    const dead = await this.#db.query<{ id: string; merchant_id: string; event_type: string; attempts: number }>(
      `update webhook_outbox set status = 'dead', dead_at = $1, leased_until = null
        where status = 'pending' and attempts >= $2 and next_attempt_at <= $1 returning id, merchant_id, event_type, attempts`,
      [now, limits.webhookAttemptsMax],
    );
    for (const row of dead) this.#logDead(row, null);
  }

  async #deliver(row: OutboxRow, now: Date): Promise<void> {
    if (!row.webhook_url) {
      this.#mark(row.id, 0, now);
      return;
    }
    let status: number;
    const trace = { traceId: row.trace_id && /^[0-9a-f]{32}$/.test(row.trace_id) ? row.trace_id : newTraceId(), spanId: newSpanId(), flags: '01' };
    const traced = { trace_id: trace.traceId, span_id: trace.spanId };
    try {
      const seconds = Math.floor(now.getTime() / 1000);
      const signature = await webhookSignature(row.webhook_secret, row.previous_secrets ?? [], row.body, seconds);
      const standard = await standardWebhookHeaders(row, seconds);
      const response = await request(row.webhook_url, {
        method: 'POST',
        dispatcher: this.#agent,
        headers: { 'content-type': 'application/json', 'kessai-signature': signature, ...standard, traceparent: formatTraceparent(trace) },
        body: row.body,
        signal: AbortSignal.timeout(limits.webhookTimeoutMs),
      });
      status = response.statusCode;
      await response.body.dump();
    } catch {
      status = 0;
    }
    if (status >= 200 && status < 300) {
      this.#mark(row.id, status, now);
      this.#onAttempt?.('delivered');
      this.#logger.info({ event: row.id, type: row.event_type, attempts: row.attempts, ...traced }, 'webhook delivered');
      return;
    }
    // Only the attempt that holds the lease records its outcome: a resend meanwhile started a fresh schedule.
    const delayMs = retryDelayMs(row.attempts);
    if (delayMs === undefined) {
      const [dead] = await this.#db.query(
        "update webhook_outbox set status = 'dead', dead_at = $3, last_status = $2, leased_until = null where id = $1 and attempts = $4 and status = 'pending' returning id",
        [row.id, status, now, row.attempts],
      );
      this.#onAttempt?.('dead');
      if (dead) this.#logDead(row, status);
      return;
    }
    await this.#db.query("update webhook_outbox set last_status = $2, next_attempt_at = $3, leased_until = null where id = $1 and attempts = $4 and status = 'pending'", [
      row.id,
      status,
      new Date(now.getTime() + delayMs),
      row.attempts,
    ]);
    this.#onAttempt?.('failed');
    this.#logger.warn({ event: row.id, type: row.event_type, attempts: row.attempts, status, nextAttemptInMs: delayMs, ...traced }, 'webhook delivery failed');
  }

  /** Ids, type and counts only: the body (and so the payment request's view) is never logged. */
  #logDead(row: { id: string; merchant_id: string; event_type: string; attempts: number }, status: number | null): void {
    void recordDomainEvent(this.#db, { actor: 'system', action: 'webhook_event.dead', resource: `${row.id} ${row.merchant_id}`, outcome: `dead after ${Number(row.attempts)} attempts` });
    this.#logger.warn({ event: row.id, merchant: row.merchant_id, type: row.event_type, attempts: Number(row.attempts), status }, 'webhook event dead after its last attempt; resend it once the receiver is fixed');
  }

  async close(): Promise<void> {
    const lost = (err: unknown) => this.#logger.warn({ err }, 'webhook outcomes not recorded at close: sent again after their lease');
    await this.flushMarks().catch(lost);
    await this.#agent.close();
  }
}

export const webhookEventStatuses = ['pending', 'delivered', 'dead'] as const;
export type WebhookEventStatus = (typeof webhookEventStatuses)[number];

/** What the operator and the merchant see of an outbox row: ids, states and times, never the body. */
export interface WebhookEventRecord {
  id: string;
  merchant_id: string;
  event_type: string;
  payment_request_id: string | null;
  status: WebhookEventStatus;
  attempts: number;
  last_status: number | null;
  next_attempt_at: Date;
  delivered_at: Date | null;
  dead_at: Date | null;
  resent_at: Date | null;
  created_at: Date;
  /** The event's mode: its own (a settlement batch's event), else its payment request's (false without either). */
  livemode: boolean;
}

/** An outbox row's mode, as SQL: its own (a settlement batch's event), else its payment request's. */
export const eventLivemode = `coalesce(webhook_outbox.livemode,
  (select p.livemode from payment_requests p where p.id = webhook_outbox.payment_request_id), false)`;
const recordColumns = `id, merchant_id, event_type, payment_request_id, status, attempts, last_status, next_attempt_at, delivered_at,
  dead_at, resent_at, created_at, ${eventLivemode} as livemode`;

/**
 * Newest first, one more than `limit` (so the caller knows whether there are more); after `cursor` (the last item of
 * the previous page, merchant-lists.ts cursorOf) when given.
 */
export function listWebhookEvents(
  db: Queryable,
  filter: {
    merchantId?: string;
    status?: WebhookEventStatus;
    livemode?: boolean;
    cursor?: { created_at: string; id: string } | null;
  },
  limit: number,
): Promise<WebhookEventRecord[]> {
  return db.query<WebhookEventRecord>(
    `select ${recordColumns} from webhook_outbox
      where ($1::text is null or merchant_id = $1) and ($2::text is null or status = $2)
        and ($4::boolean is null or ${eventLivemode} = $4)
        and ($5::timestamptz is null or (created_at, id) < ($5::timestamptz, $6::text))
      order by created_at desc, id desc limit $3`,
    [
      filter.merchantId ?? null,
      filter.status ?? null,
      limit + 1,
      filter.livemode ?? null,
      filter.cursor?.created_at ?? null,
      filter.cursor?.id ?? null,
    ],
  );
}

/**
 * Re-queues an event — dead, delivered or still pending — for a fresh schedule: the same id and
 * body, attempts from zero, due now (or when a running attempt's lease ends, so no two deliveries
 * of it overlap). `merchantId` confines a merchant to its own events. Undefined when there is no such event.
 */
export async function resendWebhookEvent(
  db: Db,
  id: string,
  merchant: { id: string; livemode: boolean } | undefined,
  now: Date,
): Promise<WebhookEventRecord | undefined> {
  const merchantId = merchant?.id;
  const [row] = await db.query<WebhookEventRecord>(
    `update webhook_outbox set status = 'pending', attempts = 0, delivered_at = null, dead_at = null, resent_at = $2,
            next_attempt_at = greatest($2, coalesce(leased_until, $2))
      where id = $1 and ($3::text is null or merchant_id = $3) and ($4::boolean is null or ${eventLivemode} = $4)
      returning ${recordColumns}`,
    [id, now, merchantId ?? null, merchant?.livemode ?? null],
  );
  if (row) void recordDomainEvent(db, { actor: merchantId ? `merchant:${merchantId}` : 'operator', action: 'webhook_event.resent', resource: `${row.id} ${row.merchant_id}`, outcome: 'pending' });
  if (row) eventsQueued(db);
  return row;
}
