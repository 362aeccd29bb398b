/**
 * Payment requests as the authentication server keeps them (step 402) and the two views it gives:
 * the merchant's (JSON) and the terminal's (a JWS signed by this server, step 403, so the wallet
 * can show the verified merchant name, items and total).
 */
import { KessaiError, signJson, typ, type LineItem, type PaymentRequestStatus, type PaymentRequestView, type TerminalRequestPayload, type KeyRing, type Currency } from '@kessai/protocol';
import type { Queryable } from '@kessai/service';
import { answerCte, type IdempotencyRef } from './idempotency.ts';

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

/** A request with its merchant's name (the terminal's signed view and the approval rule show it), in one statement. */
export type PaymentRequestWithMerchant = PaymentRequestRow & { merchant_name: string | null };

/** loadPaymentRequest, with the merchant's current name joined: one statement where two were. */
export async function loadWithMerchantName(db: Queryable, id: string): Promise<PaymentRequestWithMerchant> {
  const [row] = await db.query<PaymentRequestWithMerchant>(
    `select p.*, m.name as merchant_name from payment_requests p left join merchants m on m.id = p.merchant_id
      where p.id = $1`,
    [id],
  );
  if (!row) throw new KessaiError('payment_request_not_found');
  return row;
}

/** The pending, unexpired requests addressed to a wallet, oldest first, with their merchants' names. */
export function pendingForWallet(db: Queryable, credentialId: string, limit: number) {
  return db.query<PaymentRequestWithMerchant>(
    `select p.*, m.name as merchant_name from payment_requests p left join merchants m on m.id = p.merchant_id
      where p.wallet_handle = $1 and p.status = 'pending' and p.expires_at > now() order by p.created_at limit $2`,
    [credentialId, limit],
  );
}

export interface NewPaymentRequest {
  id: string;
  merchantId: string;
  orderId: string;
  currency: Currency;
  amountMinor: bigint;
  lineItems: LineItem[];
  walletHandle: string | null;
  createdAt: Date;
  expiresAt: Date;
  livemode: boolean;
}

/** The row a new request is stored as (the insert's defaults spelled out), so its view is known before the insert. */
function newRow(request: NewPaymentRequest): PaymentRequestRow {
  return {
    id: request.id, merchant_id: request.merchantId, order_id: request.orderId, currency: request.currency,
    amount_minor: request.amountMinor, captured_minor: 0n, refunded_minor: 0n, line_items: request.lineItems,
    wallet_handle: request.walletHandle, status: 'pending', credential_id: null, issuer_id: null,
    authorization_jws: null, decline_code: null, created_at: request.createdAt, expires_at: request.expiresAt,
    event_sequence: 0n, attempt_nonce: null, resolve_at: null, resolve_attempts: 0, hold_check_at: null,
    livemode: request.livemode,
  };
}

/**
 * Step 402: stores a pending request. One addressed to a wallet is stored only while that
 * credential is active, checked by the insert itself (one statement): a request for a revoked or
 * unknown credential answers credential_revoked or credential_not_found and stores nothing.
 * `answer`: the merchant's Idempotency-Key, whose answer (201 and the merchant view) the same
 * statement stores (answerCte) — `stored` says it did.
 */
export async function insertPaymentRequest(
  db: Queryable,
  request: NewPaymentRequest,
  answer?: { ref: IdempotencyRef; publicBaseUrl: string },
): Promise<{ row: PaymentRequestRow; stored: boolean }> {
  const params: unknown[] = [
    request.id, request.merchantId, request.orderId, request.currency, request.amountMinor,
    JSON.stringify(request.lineItems), request.walletHandle, request.createdAt, request.expiresAt, request.livemode,
  ];
  const view = () => merchantView(newRow(request), answer!.publicBaseUrl, request.createdAt);
  const answered = answer && answerCte(answer.ref, { status: 201, body: view() }, 'inserted', params.length + 1);
  const [row] = await db.query<PaymentRequestRow>(
    `with inserted as (
       insert into payment_requests (id, merchant_id, order_id, currency, amount_minor, line_items, wallet_handle,
                                     status, created_at, expires_at, livemode)
       select $1, $2, $3, $4, $5, $6::text::jsonb, $7, 'pending', $8, $9, $10
        where $7::text is null or exists (select 1 from credentials where id = $7 and status = 'active')
       returning *)${answered ? `, ${answered.cte}` : ''}
     select * from inserted`,
    [...params, ...(answered?.params ?? [])],
  );
  if (row) return { row, stored: answered !== undefined };
  const [credential] = await db.query('select status from credentials where id = $1', [request.walletHandle]);
  throw new KessaiError(credential ? 'credential_revoked' : 'credential_not_found');
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
