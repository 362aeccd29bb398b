/**
 * What the shop does when it learns a payment request's state — from a signed webhook or from
 * polling, by the same code: step 408 (verify the issuer's signed authorization, then mark the
 * order paid) and step 409 (capture; a hold that expired at the issuer; refunds, recorded once
 * per refund id from `payment_request.refunded` events). Every transition is a conditional UPDATE
 * on the current status, so a webhook and a poll racing each other, or a retried delivery, change
 * nothing twice.
 */
import {
  assert,
  isCurrency,
  KessaiError,
  type Currency,
  type PaymentRequestView,
  type RefundView,
} from '@kessai/protocol';
import { AuthorizationVerificationError, type AuthorizationVerifier, type MerchantClient } from '@kessai/sdk';
import type { Db, Logger } from '@kessai/service';

export const orderStatuses = [
  'awaiting_payment',
  'paid',
  'declined',
  'cancelled',
  'expired',
  'captured',
  'voided',
  'partially_refunded',
  'refunded',
] as const;
export type OrderStatus = (typeof orderStatuses)[number];

export interface OrderRow {
  id: string;
  cart_id: string;
  currency: Currency;
  amount_minor: bigint;
  captured_minor: bigint;
  /** All refunds so far (migration 0002). */
  refunded_minor: bigint;
  status: OrderStatus;
  payment_request_id: string | null;
  payment_link: string | null;
  merchant_id: string | null;
  authorization_id: string | null;
  decline_code: string | null;
  created_at: Date | string;
}

const orderColumns =
  'id, cart_id, currency, amount_minor, captured_minor, refunded_minor, status, payment_request_id, payment_link, ' +
  'merchant_id, authorization_id, decline_code, created_at';

export async function findOrder(db: Pick<Db, 'query'>, id: string): Promise<OrderRow | undefined> {
  const [row] = await db.query<OrderRow>(`select ${orderColumns} from orders where id = $1`, [id]);
  return row && normalize(row);
}

/** int8 may come back as bigint, number or string depending on the driver: one type here. */
function normalize(row: OrderRow): OrderRow {
  assert(isCurrency(row.currency), `order ${row.id} has a currency Kessai accepts`);
  return {
    ...row,
    amount_minor: BigInt(row.amount_minor),
    captured_minor: BigInt(row.captured_minor),
    refunded_minor: BigInt(row.refunded_minor),
  };
}

/** The Idempotency-Keys derive from the order id, so a retry can never ask twice. */
export const idempotencyKeys = {
  /**
   * One key per order and wallet handle: a retry of the same checkout finds its payment request,
   * and a checkout that failed for an unknown wallet can be retried with another handle (the
   * first answer, an error, stays stored under its own key).
   */
  paymentRequest: (orderId: string, walletHandle?: string) => `${orderId}:payment-request:${walletHandle ?? 'link'}`,
  capture: (orderId: string) => `${orderId}:capture`,
  /** The void of an authorization of the other mode (#refuseOtherMode). */
  void: (orderId: string) => `${orderId}:void`,
} as const;

export interface FulfilmentOptions {
  db: Db;
  merchant: MerchantClient;
  verifier: AuthorizationVerifier;
  autoCapture: boolean;
  logger: Logger;
  /** The mode of the shop's own API key (sk_live_… true): every order is of it, and so must be its authorization. */
  livemode: boolean;
}

export class Fulfilment {
  readonly #db: Db;
  readonly #merchant: MerchantClient;
  readonly #verifier: AuthorizationVerifier;
  readonly #autoCapture: boolean;
  readonly #log: Logger;
  readonly #livemode: boolean;
  /** Captures in flight, by order id: a poll joins the capture a webhook started. */
  readonly #captures = new Map<string, Promise<OrderRow>>();

  constructor(options: FulfilmentOptions) {
    this.#db = options.db;
    this.#merchant = options.merchant;
    this.#verifier = options.verifier;
    this.#autoCapture = options.autoCapture;
    this.#log = options.logger;
    this.#livemode = options.livemode;
  }

  /**
   * Brings the order of `view` up to date with it. With `waitForCapture: false` (webhooks, which
   * must answer quickly) an automatic capture runs after the answer; a capture that fails leaves
   * the order `paid`, and the next poll or delivery tries again with the same Idempotency-Key.
   * Throws AuthorizationVerificationError when the authorization does not verify: nothing changes.
   * With `refund` (a `payment_request.refunded` event) the refund is recorded once the order is captured.
   */
  async apply(
    view: PaymentRequestView,
    options: { waitForCapture: boolean; refund?: RefundView },
  ): Promise<OrderRow | undefined> {
    const order = await this.#applyStatus(view, options);
    if (!order || !options.refund) return order;
    return this.#recordRefund(order, options.refund);
  }

  /**
   * The refund of a stale `payment_request.refunded` event: recorded (once per refund id), the order's status left as
   * it is.
   */
  async recordRefundOf(view: PaymentRequestView, refund: RefundView): Promise<OrderRow | undefined> {
    const [found] = await this.#db.query<OrderRow>(`select ${orderColumns} from orders where payment_request_id = $1`, [
      view.id,
    ]);
    if (!found || found.id !== view.order_id) return undefined;
    return this.#recordRefund(normalize(found), refund);
  }

  async #applyStatus(view: PaymentRequestView, options: { waitForCapture: boolean }): Promise<OrderRow | undefined> {
    const [found] = await this.#db.query<OrderRow>(`select ${orderColumns} from orders where payment_request_id = $1`, [
      view.id,
    ]);
    if (!found || found.id !== view.order_id) {
      this.#log.warn(
        { paymentRequest: view.id, orderId: view.order_id },
        'payment request matches no order of this shop',
      );
      return undefined;
    }
    let order = normalize(found);
    switch (view.status) {
      case 'pending':
      case 'authorizing':
        return order;
      case 'declined':
      case 'cancelled':
        return this.#settle(order, view.status, { decline_code: view.decline_code });
      case 'expired':
        // Unpaid (the request expired) or paid but never captured (the issuer released the hold).
        return this.#settle(order, 'expired', { decline_code: view.decline_code }, ['awaiting_payment', 'paid']);
      case 'voided':
        return this.#settle(order, 'voided', {}, ['awaiting_payment', 'paid']);
      case 'approved':
      case 'captured':
        if (order.status === 'awaiting_payment') order = await this.#fulfil(order, view);
        if (order.status !== 'paid') return order;
        if (view.status === 'captured')
          return this.#settle(order, 'captured', { captured_minor: BigInt(view.captured_minor) }, ['paid']);
        if (!this.#autoCapture) return order;
        if (options.waitForCapture) return this.#capture(order);
        void this.#capture(order);
        return order;
    }
  }

  /**
   * The polling fallback: asks the authentication server when the shop still waits for something
   * (an unpaid order: its payment; a paid one: its capture, or its hold's expiry).
   */
  async refresh(order: OrderRow): Promise<OrderRow> {
    const waiting = order.status === 'awaiting_payment' || order.status === 'paid';
    if (!waiting || !order.payment_request_id) return order;
    try {
      const view = await this.#merchant.getPaymentRequest(order.payment_request_id);
      return (await this.apply(view, { waitForCapture: true })) ?? order;
    } catch (err) {
      if (!(err instanceof KessaiError) && !(err instanceof AuthorizationVerificationError)) throw err;
      this.#log.warn({ order: order.id, err }, 'could not refresh the order from the authentication server');
      return order;
    }
  }

  /** Waits for the captures started in the background. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.#captures.values()]);
  }

  /**
   * Step 408: the shop trusts no one's word that the order is paid but the issuer's: it verifies
   * the settlement server's signature and that it was given for this request, merchant, amount
   * and currency, in the mode of the shop's own key; only then does it mark the order paid (and so
   * fulfil it).
   */
  async #fulfil(order: OrderRow, view: PaymentRequestView): Promise<OrderRow> {
    if (!view.authorization) throw new AuthorizationVerificationError('malformed', 'approved without an authorization');
    if (!order.payment_request_id || !order.merchant_id) throw new Error(`order ${order.id} has no payment request`);
    // step 408: the shop verifies the issuer's signed authorization before it fulfils
    const authorization = await this.#verifier.verify(view.authorization, {
      rid: order.payment_request_id,
      mid: order.merchant_id,
      amountMinor: order.amount_minor,
      currency: order.currency,
    });
    if (authorization.decision !== 'approved')
      return this.#settle(order, 'declined', { decline_code: authorization.code });
    if (authorization.lm !== this.#livemode) return this.#refuseOtherMode(order, authorization.aid);
    const [paid] = await this.#db.query<OrderRow>(
      `update orders set status = 'paid', authorization_id = $2, authorization_jws = $3,
              paid_at = now(), updated_at = now()
       where id = $1 and status = 'awaiting_payment' returning ${orderColumns}`,
      [order.id, authorization.aid, view.authorization],
    );
    if (paid)
      this.#log.info(
        { order: order.id, authorization: authorization.aid, issuer: authorization.iss },
        'step 408: authorization verified, order paid',
      );
    return paid ? normalize(paid) : this.#reload(order);
  }

  /**
   * An authorization of the other mode — a test card's for a live order, which only a broker that
   * told the payer's device "test" can obtain, or one signed before issuers knew modes — ships
   * nothing: the shop voids its hold (best effort: an unvoided hold lapses at the issuer) and
   * declines the order with `livemode_mismatch`, as the issuer would have.
   */
  async #refuseOtherMode(order: OrderRow, authorizationId: string): Promise<OrderRow> {
    const requestId = order.payment_request_id;
    if (!requestId) throw new Error(`order ${order.id} has no payment request`);
    this.#log.warn(
      { order: order.id, authorization: authorizationId, livemode: this.#livemode },
      'step 408: the authorization is of the other mode: voided, order declined',
    );
    try {
      await this.#merchant.void(requestId, idempotencyKeys.void(order.id));
    } catch (err) {
      if (!(err instanceof KessaiError)) throw err;
      this.#log.warn({ order: order.id, code: err.code }, 'could not void the authorization of the other mode');
    }
    return this.#settle(order, 'declined', { decline_code: 'livemode_mismatch' });
  }

  /** Step 409: captures the whole authorized amount, once per order, however often it is asked. */
  #capture(order: OrderRow): Promise<OrderRow> {
    const running = this.#captures.get(order.id);
    if (running) return running;
    const requestId = order.payment_request_id;
    if (!requestId) throw new Error(`order ${order.id} is paid without a payment request`);
    const capturing = (async () => {
      try {
        // step 409 capture: the shop captures a verified authorization
        const view = await this.#merchant.capture(requestId, {}, idempotencyKeys.capture(order.id));
        if (view.status !== 'captured') return this.#reload(order);
        this.#log.info({ order: order.id, capturedMinor: view.captured_minor }, 'step 409: captured');
        return this.#settle(order, 'captured', { captured_minor: BigInt(view.captured_minor) }, ['paid']);
      } catch (err) {
        if (!(err instanceof KessaiError)) throw err;
        if (err.code === 'authorization_not_capturable') {
          // Expired or voided meanwhile: the payment request says which.
          const view = await this.#merchant.getPaymentRequest(requestId).catch(() => undefined);
          if (view?.status === 'expired' || view?.status === 'voided')
            return this.#settle(order, view.status, {}, ['paid']);
        }
        this.#log.warn(
          { order: order.id, code: err.code },
          'capture failed; the order stays paid and is retried later',
        );
        return this.#reload(order);
      }
    })().finally(() => this.#captures.delete(order.id));
    this.#captures.set(order.id, capturing);
    capturing.catch((err: unknown) => this.#log.error({ order: order.id, err }, 'capture crashed'));
    return capturing;
  }

  /**
   * Step 409, a refund the merchant made: recorded once per refund id; the order's refunded total
   * is the largest the authentication server reported (a lost event is covered by the next one),
   * and the order turns `partially_refunded`, or `refunded` once the whole capture is refunded.
   */
  async #recordRefund(order: OrderRow, refund: RefundView): Promise<OrderRow> {
    if (refund.payment_request_id !== order.payment_request_id || refund.currency !== order.currency) {
      this.#log.warn({ order: order.id, refund: refund.id }, 'refund does not match the order');
      return order;
    }
    const row = await this.#db.transaction(async (tx) => {
      await tx.query(
        `insert into order_refunds (refund_id, order_id, amount_minor, refunded_at) values ($1, $2, $3, $4)
          on conflict (refund_id) do nothing`,
        [refund.id, order.id, BigInt(refund.amount_minor), new Date(refund.created_at)],
      );
      const [updated] = await tx.query<OrderRow>(
        `update orders set refunded_minor = greatest(refunded_minor, $2),
                status = case when greatest(refunded_minor, $2) >= captured_minor
                              then 'refunded' else 'partially_refunded' end,
                updated_at = now()
          where id = $1 and status in ('captured', 'partially_refunded', 'refunded') returning ${orderColumns}`,
        [order.id, BigInt(refund.refunded_minor)],
      );
      return updated;
    });
    if (!row) {
      this.#log.warn(
        { order: order.id, status: order.status, refund: refund.id },
        'refund for an order that is not captured',
      );
      return this.#reload(order);
    }
    this.#log.info(
      { order: order.id, refund: refund.id, refundedMinor: BigInt(row.refunded_minor).toString(), status: row.status },
      'step 409: refund recorded',
    );
    return normalize(row);
  }

  /** Moves the order to a final status if it is still in one of `from`; otherwise leaves it. */
  async #settle(
    order: OrderRow,
    to: OrderStatus,
    fields: { decline_code?: string | null; captured_minor?: bigint },
    from: OrderStatus[] = ['awaiting_payment'],
  ): Promise<OrderRow> {
    const [row] = await this.#db.query<OrderRow>(
      `update orders set status = $2, decline_code = coalesce($3, decline_code),
              captured_minor = coalesce($4, captured_minor), updated_at = now()
       where id = $1 and status = any($5::text[]) returning ${orderColumns}`,
      [order.id, to, fields.decline_code ?? null, fields.captured_minor ?? null, from],
    );
    if (row) this.#log.info({ order: order.id, from: order.status, to }, 'order status changed');
    return row ? normalize(row) : this.#reload(order);
  }

  async #reload(order: OrderRow): Promise<OrderRow> {
    const row = await findOrder(this.#db, order.id);
    if (!row) throw new Error(`order ${order.id} vanished`);
    return row;
  }
}
