/**
 * The payment request's state machine: every change of a request's status at the authentication
 * server goes through `transition` below, and `transitions` is the whole list of what may happen.
 * Each row is (from, event, to, webhook event). `authorizing` is the in-doubt state: it is written
 * (with the approval's nonce) before the issuer is called, so a crash or a lost answer leaves a
 * record that the in-doubt worker (in-doubt.ts) resolves by asking the issuer.
 *
 * Writers, one per event:
 *   approval_saved, issuer_approved, issuer_declined, issuer_refused, pin_retry, payer_declined — approval.ts
 *   inquiry_approved, inquiry_declined, reversed, inquiry_voided, inquiry_expired — in-doubt.ts (the issuer's stored answer, or a reversal)
 *   expired — the worker's expiry pass (app.ts), the only writer of expiry; reads never write
 *   captured, voided — the merchant's capture and void (routes/payment-requests.ts), and hold-sync.ts
 *     when the issuer committed one the broker never recorded
 *   hold_expired — hold-sync.ts, after the issuer released the hold (and a reversal made sure)
 *   refunded — refunds.ts (status stays captured)
 */
import type { PaymentRequestStatus, RefundView, WebhookEvent } from '@kessai/protocol';
import { traceStorage } from '@kessai/sdk';
import type { Queryable } from '@kessai/service';
import { merchantView, type PaymentRequestRow } from './payment-requests.ts';
import { sequencedEventBody } from './webhooks.ts';
import { eventsQueued } from './work-signals.ts';
import { answerCte, type IdempotencyRef } from './idempotency.ts';

export type PaymentEvent =
  | 'approval_saved'
  | 'issuer_approved'
  | 'issuer_declined'
  | 'issuer_refused'
  | 'pin_retry'
  | 'inquiry_approved'
  | 'inquiry_declined'
  | 'reversed'
  | 'inquiry_voided'
  | 'inquiry_expired'
  | 'payer_declined'
  | 'expired'
  | 'captured'
  | 'voided'
  | 'hold_expired'
  | 'refunded';

export interface TransitionRule {
  from: PaymentRequestStatus;
  event: PaymentEvent;
  to: PaymentRequestStatus;
  /** The webhook event queued in the same statement, or null for a change the merchant is not told of. */
  webhook: WebhookEvent['type'] | null;
}

export const transitions: readonly TransitionRule[] = [
  // Step 404: the approval is checked and its nonce spent; the issuer is called after this is saved.
  { from: 'pending', event: 'approval_saved', to: 'authorizing', webhook: null },
  { from: 'pending', event: 'payer_declined', to: 'cancelled', webhook: 'payment_request.cancelled' },
  { from: 'pending', event: 'expired', to: 'expired', webhook: 'payment_request.expired' },
  // Step 407: the issuer's signed decision.
  { from: 'authorizing', event: 'issuer_approved', to: 'approved', webhook: 'payment_request.approved' },
  { from: 'authorizing', event: 'issuer_declined', to: 'declined', webhook: 'payment_request.declined' },
  // The issuer refused the call itself (a 4xx answer: nothing was held): the payer may answer again.
  { from: 'authorizing', event: 'issuer_refused', to: 'pending', webhook: null },
  // A wrong PIN with tries left (the issuer's signed decline says how many): the payer may answer again.
  { from: 'authorizing', event: 'pin_retry', to: 'pending', webhook: null },
  // In doubt, resolved by asking the issuer (in-doubt.ts): its stored decision is adopted …
  { from: 'authorizing', event: 'inquiry_approved', to: 'approved', webhook: 'payment_request.approved' },
  { from: 'authorizing', event: 'inquiry_declined', to: 'declined', webhook: 'payment_request.declined' },
  // … or it had none and the reversal spent the attempt's nonce there, so it never will: answer again …
  { from: 'authorizing', event: 'reversed', to: 'pending', webhook: null },
  // … or its hold was released already (an earlier reversal won the race with the authorization).
  { from: 'authorizing', event: 'inquiry_voided', to: 'voided', webhook: 'payment_request.voided' },
  { from: 'authorizing', event: 'inquiry_expired', to: 'expired', webhook: 'payment_request.expired' },
  // Step 409.
  { from: 'approved', event: 'captured', to: 'captured', webhook: 'payment_request.captured' },
  { from: 'approved', event: 'voided', to: 'voided', webhook: 'payment_request.voided' },
  { from: 'approved', event: 'hold_expired', to: 'expired', webhook: 'payment_request.expired' },
  { from: 'captured', event: 'refunded', to: 'captured', webhook: 'payment_request.refunded' },
];

/** The rule for `event` in state `from`, or undefined when the machine has none (the event is refused). */
export function ruleFor(from: PaymentRequestStatus, event: PaymentEvent): TransitionRule | undefined {
  return transitions.find((rule) => rule.from === from && rule.event === event);
}

export class IllegalTransition extends Error {
  constructor(from: PaymentRequestStatus, event: PaymentEvent) {
    super(`payment request: no transition for ${event} in state ${from}`);
    this.name = 'IllegalTransition';
  }
}

/** The columns a transition may set besides status (updated_at is always now(), event_sequence counts events). */
const columns = ['captured_minor', 'refunded_minor', 'authorization_jws', 'decline_code', 'credential_id', 'issuer_id', 'attempt_nonce', 'resolve_at', 'resolve_attempts', 'hold_check_at'] as const;
export type TransitionChange = Partial<Pick<PaymentRequestRow, (typeof columns)[number]>>;
/** Columns that only grow: a late writer never lowers them (two refunds answered out of order). */
const monotonic = new Set<string>(['refunded_minor']);

export interface TransitionContext {
  publicBaseUrl: string;
  now: Date;
  /** payment_request.refunded only: the refund that caused the event. */
  refund?: RefundView;
  /**
   * A merchant POST's Idempotency-Key: its answer (`status` and the merchant view of the new row)
   * is stored by the same statement when the transition happens (answerCte, idempotency.ts).
   */
  answer?: { ref: IdempotencyRef; status: number };
}

/**
 * Applies `event` to the request as `from` shows it, in one statement: the row is updated only
 * while it is still in `from.status` with `from.attempt_nonce` (the same authorization attempt), and the webhook event of the rule (if any) is queued with
 * the request's next sequence number by the same statement — atomic without BEGIN and COMMIT.
 * Answers the new row, or undefined when the request had left `from.status` meanwhile (nothing
 * written). An event the machine has no rule for in `from.status` throws IllegalTransition.
 */
export async function transition(db: Queryable, from: PaymentRequestRow, event: PaymentEvent, change: TransitionChange, context: TransitionContext): Promise<PaymentRequestRow | undefined> {
  const rule = ruleFor(from.status, event);
  if (!rule) throw new IllegalTransition(from.status, event);
  // The guard: still in the state the caller saw, and still the same attempt (a request can go
  // authorizing → pending → authorizing again: an outcome of the first attempt must not land on the second).
  const params: unknown[] = [from.id, from.status, rule.to, from.attempt_nonce];
  const set = ['status = $3', 'updated_at = now()'];
  for (const [column, value] of Object.entries(change)) {
    if (!(columns as readonly string[]).includes(column)) throw new TypeError(`transition: ${column} is not a transition column`);
    params.push(value);
    set.push(monotonic.has(column) ? `${column} = greatest(${column}, $${params.length})` : `${column} = $${params.length}`);
  }
  // What the row becomes ({...from, ...change}): the event's data and a stored answer are its view.
  const next: PaymentRequestRow = { ...from, ...change, status: rule.to };
  const view = merchantView(next, context.publicBaseUrl, context.now);
  if (rule.webhook !== null) set.push('event_sequence = event_sequence + 1');
  const ctes = [`next as (update payment_requests set ${set.join(', ')}
                 where id = $1 and status = $2 and attempt_nonce is not distinct from $4 returning *)`];
  if (rule.webhook !== null) {
    // The event's sequence is the row's new event_sequence, completing the signed bytes in the
    // statement itself (sequencedEventBody).
    const body = sequencedEventBody(rule.webhook, view, context.now, context.refund);
    params.push(body.id, rule.webhook, body.prefix);
    const n = params.length;
    // The trace of the request that made this change, if any: the event's delivery continues it (webhooks.ts).
    params.push(traceStorage.getStore()?.traceId ?? null);
    ctes.push(`queued as (insert into webhook_outbox (id, merchant_id, event_type, body, payment_request_id, trace_id)
                 select $${n - 2}, merchant_id, $${n - 1}, $${n} || event_sequence::text || '}', id, $${n + 1}
                   from next)`);
  }
  if (context.answer) {
    const { ref, status } = context.answer;
    const answered = answerCte(ref, { status, body: view }, 'next', params.length + 1);
    params.push(...answered.params);
    ctes.push(answered.cte);
  }
  const [row] = await db.query<PaymentRequestRow>(`with ${ctes.join(',\n     ')}\n     select * from next`, params);
  if (!rule.webhook) return row;
  if (row) eventsQueued(db); // committed (one statement): the worker delivers it now (worker.ts)
  return row;
}
