/**
 * The broker's own Prometheus metrics, on the server's registry (packages/service/src/metrics.ts).
 * Payments by state is a gauge read at scrape by one grouped query, not a counter of transitions:
 * it is right after a restart and the same on every instance behind the load balancer (several
 * processes share one database; per-process counters would each see a part), at the cost of one
 * `count(*) … group by status` per scrape. Webhook deliveries are counted by outcome as they
 * happen (each attempt is made by one process); the age of the oldest pending event is read at
 * scrape. Labels are bounded: states and outcomes, never an id.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Queryable } from '@kessai/service';

export type WebhookOutcome = 'delivered' | 'failed' | 'dead';

export interface BrokerMetrics {
  webhookAttempt(outcome: WebhookOutcome): void;
}

export function brokerMetrics(registry: Registry, db: Queryable): BrokerMetrics {
  new Gauge({
    name: 'kessai_payment_requests',
    help: 'Payment requests in the database by state (read at scrape)',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      this.reset();
      // A database that does not answer leaves the gauge empty: /readyz reports it, the scrape still succeeds.
      const rows = await db.query<{ status: string; n: bigint }>('select status, count(*) as n from payment_requests group by status').catch(() => []);
      for (const row of rows) this.set({ state: row.status }, Number(row.n));
    },
  });
  new Gauge({
    name: 'kessai_webhook_oldest_pending_age_seconds',
    help: 'Age of the oldest webhook event not yet delivered and not dead (0 when there is none)',
    registers: [registry],
    async collect() {
      const [row] = await db.query<{ age: number | string | null }>("select extract(epoch from now() - min(created_at))::float8 as age from webhook_outbox where status = 'pending'").catch(() => []);
      this.set(row?.age === null || row?.age === undefined ? 0 : Math.max(0, Number(row.age)));
    },
  });
  const deliveries = new Counter({
    name: 'kessai_webhook_deliveries_total',
    help: 'Webhook delivery attempts by outcome: delivered (2xx), failed (to be retried), dead (the last attempt failed)',
    labelNames: ['outcome'],
    registers: [registry],
  });
  for (const outcome of ['delivered', 'failed', 'dead'] as const) deliveries.inc({ outcome }, 0);
  return { webhookAttempt: (outcome) => deliveries.inc({ outcome }) };
}
