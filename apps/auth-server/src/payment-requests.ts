/**
 * Payment requests as the authentication server keeps them (step 402) and the two views it gives:
 * the merchant's (JSON) and the terminal's (a JWS signed by this server, step 403, so the wallet
 * can show the verified merchant name, items and total).
 */
import { KessaiError, signJson, typ, type LineItem, type PaymentRequestStatus, type PaymentRequestView, type TerminalRequestPayload, type KeyRing, type WebhookEvent } from '@kessai/protocol';
import type { Queryable } from '@kessai/service';
import { sequencedEventBody } from './webhooks.ts';

export interface PaymentRequestRow {
  id: string;
  merchant_id: string;
  order_id: string;
  currency: string;
  amount_minor: bigint;
  captured_minor: bigint;
  /** All refunds so far (migration 0002); not in the merchant view: refunds are answered and sent as refund views. */
  refunded_minor: bigint;
  line_items: LineItem[];
  wallet_handle: string | null;
  status: PaymentRequestStatus;
  credential_id: string | null;
  issuer_id: string | null;
  authorization_jws: string | null;
  decline_code: string | null;
  created_at: Date;
  expires_at: Date;
}

/** Loads a request, turning a pending one past its expiry into `expired` (and telling the merchant, in the same statement). */
export async function loadPaymentRequest(db: Queryable, id: string, now: Date, publicBaseUrl: string): Promise<PaymentRequestRow> {
  const [row] = await db.query<PaymentRequestRow>('select * from payment_requests where id = $1', [id]);
  if (!row) throw new KessaiError('payment_request_not_found');
  if (row.status === 'pending' && row.expires_at.getTime() <= now.getTime()) {
    return (await transitionWithEvent(db, row, { status: 'expired' }, 'payment_request.expired', publicBaseUrl, now)) ?? loadPaymentRequest(db, id, now, publicBaseUrl);
  }
  return row;
}

export function merchantView(row: PaymentRequestRow, publicBaseUrl: string): PaymentRequestView {
  return {
    id: row.id,
    merchant_id: row.merchant_id,
    order_id: row.order_id,
    status: row.status,
    currency: row.currency,
    amount_minor: BigInt(row.amount_minor).toString(),
    captured_minor: BigInt(row.captured_minor).toString(),
    line_items: row.line_items,
    payment_link: paymentLink(publicBaseUrl, row.id),
    created_at: row.created_at.toISOString(),
    expires_at: row.expires_at.toISOString(),
    authorization: row.authorization_jws,
    decline_code: row.decline_code,
  };
}

export function paymentLink(publicBaseUrl: string, id: string): string {
  return `${publicBaseUrl}/pay/${id}`;
}

/** Step 403: the signed view the terminal shows the payer. */
export async function signTerminalView(row: PaymentRequestRow, merchantName: string, keys: KeyRing, now: Date): Promise<string> {
  const payload: TerminalRequestPayload = {
    rid: row.id,
    merchant: { id: row.merchant_id, name: merchantName },
    order_id: row.order_id,
    currency: row.currency as TerminalRequestPayload['currency'],
    amount_minor: BigInt(row.amount_minor).toString(),
    line_items: row.line_items,
    expires_at: row.expires_at.toISOString(),
    iat: Math.floor(now.getTime() / 1000),
  };
  const key = keys.current('sig');
  if (!key.privateKey) throw new Error('authentication server signing key has no private part');
  return signJson(payload, key.privateKey, { typ: typ.requestView, kid: key.kid });
}

/** The columns a transition may set (besides updated_at, always now()). */
const transitionColumns = ['status', 'captured_minor', 'authorization_jws', 'decline_code', 'credential_id'] as const;
export type Transition = { status: PaymentRequestStatus } & Partial<Pick<PaymentRequestRow, (typeof transitionColumns)[number]>>;

/**
 * Moves a payment request out of `from.status` and queues the webhook event of its new state in
 * one statement (`update … returning` feeding `insert into webhook_outbox`): atomic without
 * BEGIN and COMMIT, one database round trip instead of four. The event is built beforehand from
 * `from` and `change`, which is exactly what the row becomes: the update applies only while the
 * request is still in `from.status`, and sets the columns `change` names; the event's `sequence` is
 * the request's event_sequence, incremented by the same update. Answers the new row, or
 * undefined (nothing written) when the request had left `from.status` meanwhile.
 */
export async function transitionWithEvent(db: Queryable, from: PaymentRequestRow, change: Transition, type: WebhookEvent['type'], publicBaseUrl: string, now: Date): Promise<PaymentRequestRow | undefined> {
  const next: PaymentRequestRow = { ...from, ...change };
  const event = sequencedEventBody(type, merchantView(next, publicBaseUrl), now);
  const params: unknown[] = [from.id, from.status, event.id, type, event.prefix];
  const set = Object.entries(change).map(([column, value]) => {
    if (!(transitionColumns as readonly string[]).includes(column)) throw new TypeError(`transitionWithEvent: ${column} is not a transition column`);
    params.push(value);
    return `${column} = $${params.length}`;
  });
  const written = await db.query(
    `with next as (update payment_requests set ${set.join(', ')}, updated_at = now(), event_sequence = event_sequence + 1 where id = $1 and status = $2 returning merchant_id, event_sequence)
     insert into webhook_outbox (id, merchant_id, event_type, body, payment_request_id) select $3, merchant_id, $4, $5 || event_sequence::text || '}', $1 from next returning id`,
    params,
  );
  return written.length === 1 ? next : undefined;
}
