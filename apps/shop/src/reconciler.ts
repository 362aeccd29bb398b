/**
 * The shop's reconciler: the last resort when events do not arrive (the shop was down while they
 * were retried and dead-lettered, or an event was lost). An order still waiting — awaiting payment,
 * or paid and not yet captured — shopReconcileAfterMs after its last change is asked about at the
 * authentication server (the merchant API's GET of its payment request) and brought up to date by
 * the same fulfilment code as a webhook. One writer: this worker; at most shopReconcileBatchMax
 * orders per pass, each asked again no sooner than shopReconcileIntervalMs.
 */
import { limits } from '@kessai/protocol';
import type { Db, Logger } from '@kessai/service';
import { findOrder, type Fulfilment } from './fulfilment.ts';

export async function reconcileOrders(db: Db, fulfilment: Fulfilment, logger: Logger, now: Date): Promise<number> {
  // Claimed with the time of this pass, so a second process (or the next pass) skips them until the interval has
  // passed.
  const due = await db.transaction((tx) =>
    tx.query<{ id: string }>(
      `update orders set reconciled_at = $1 where id in (
         select id from orders where status in ('awaiting_payment', 'paid') and payment_request_id is not null
            and updated_at <= $2 and (reconciled_at is null or reconciled_at <= $3)
          order by updated_at limit $4 for update skip locked)
       returning id`,
      [
        now,
        new Date(now.getTime() - limits.shopReconcileAfterMs),
        new Date(now.getTime() - limits.shopReconcileIntervalMs),
        limits.shopReconcileBatchMax,
      ],
    ),
  );
  // One at a time: a pass after an outage must not turn into a burst against the authentication server.
  for (const { id } of due) {
    const order = await findOrder(db, id);
    if (!order) continue;
    try {
      const after = await fulfilment.refresh(order);
      if (after.status !== order.status)
        logger.info(
          { order: id, from: order.status, to: after.status },
          'reconciler: order brought up to date from the authentication server',
        );
    } catch (err) {
      logger.warn({ order: id, err }, 'reconciler: could not ask about the order; the next pass tries again');
    }
  }
  return due.length;
}
