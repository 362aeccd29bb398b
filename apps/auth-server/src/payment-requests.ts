/**
 * Payment requests as the authentication server keeps them (step 402) and the two views it gives:
 * the merchant's (JSON) and the terminal's (a JWS signed by this server, step 403, so the wallet
 * can show the verified merchant name, items and total).
 */
import { KessaiError, signJson, typ, type LineItem, type PaymentRequestStatus, type PaymentRequestView, type TerminalRequestPayload, type KeyRing, type Currency } from '@kessai/protocol';
import type { Queryable } from '@kessai/service';

export interface PaymentRequestRow {
  id: string;
  merchant_id: string;
  order_id: string;
  currency: Currency;
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
  /** The sequence number of the request's last webhook event (payment-state.ts). */
  event_sequence: bigint;
  /** The approval nonce of the authorization in flight (status authorizing), which a reversal names. */
  attempt_nonce: string | null;
  /** When the in-doubt worker asks the issuer about this authorizing request next (in-doubt.ts). */
  resolve_at: Date | null;
  resolve_attempts: number;
  /** When hold-sync asks the issuer about this approved request next (hold-sync.ts). */
  hold_check_at: Date | null;
  /** Made with a live key (migration 0012): only keys of the same mode see it. */
  livemode: boolean;
}

/** Loads a request as it is stored. Reads never write: the worker's expiry pass is the one writer of `expired` (payment-state.ts). */
export async function loadPaymentRequest(db: Queryable, id: string): Promise<PaymentRequestRow> {
  const [row] = await db.query<PaymentRequestRow>('select * from payment_requests where id = $1', [id]);
  if (!row) throw new KessaiError('payment_request_not_found');
  return row;
}

/** The status a reader is shown at `now`: a pending request past its expiry is expired already (nothing can answer it), though the expiry pass writes it a moment later. */
export function statusAt(row: PaymentRequestRow, now: Date): PaymentRequestStatus {
  return row.status === 'pending' && row.expires_at.getTime() <= now.getTime() ? 'expired' : row.status;
}

export function merchantView(row: PaymentRequestRow, publicBaseUrl: string, now: Date = new Date()): PaymentRequestView {
  return {
    id: row.id,
    merchant_id: row.merchant_id,
    order_id: row.order_id,
    status: statusAt(row, now),
    currency: row.currency,
    amount_minor: BigInt(row.amount_minor).toString(),
    captured_minor: BigInt(row.captured_minor).toString(),
    line_items: row.line_items,
    payment_link: paymentLink(publicBaseUrl, row.id),
    created_at: row.created_at.toISOString(),
    expires_at: row.expires_at.toISOString(),
    authorization: row.authorization_jws,
    decline_code: row.decline_code,
    livemode: row.livemode,
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
    livemode: row.livemode,
  };
  const key = keys.current('sig');
  if (!key.privateKey) throw new Error('authentication server signing key has no private part');
  return signJson(payload, key.privateKey, { typ: typ.requestView, kid: key.kid });
}
