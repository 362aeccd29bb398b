/**
 * Prometheus metrics (prom-client), one registry per server instance (tests run many servers in
 * one process): Node's default process metrics, the HTTP request duration by method, route
 * PATTERN and status code, the database pool, and each app's own (apps register theirs on
 * `app.operations.metrics.registry`). Label values are bounded sets — never an id, a raw URL or
 * anything a caller typed — so a scrape holds no personal data and its size does not grow.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Db } from './db.ts';

const knownMethods = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

export class ServerMetrics {
  readonly registry = new Registry();
  readonly #httpDuration: Histogram<'method' | 'route' | 'status_code'>;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    this.#httpDuration = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'Time from the request head to the answer sent, by method, route pattern and status code',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
  }

  /** onResponse: one observation per answered request. A path no route has is `(no route)`, never its raw URL. */
  observeRequest(request: FastifyRequest, reply: FastifyReply): void {
    const method = knownMethods.has(request.method) ? request.method : 'OTHER';
    const route = request.routeOptions.url ?? '(no route)';
    this.#httpDuration.observe({ method, route, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000);
  }

  /** The database pool's counts, read at each scrape. */
  watchDatabase(db: Pick<Db, 'poolStats' | 'kind' | 'statementCount'>): void {
    this.#watchStatements(db);
    if (!db.poolStats) return;
    const stats = db.poolStats.bind(db);
    new Gauge({
      name: 'db_pool_connections',
      help: `Database connections by state (in_use, idle) and callers waiting for one (waiting); ${db.kind === 'pglite' ? 'PGlite: one session, waiting = work queued behind it' : 'the pg Pool'}`,
      labelNames: ['state'],
      registers: [this.registry],
      collect() {
        const { inUse, idle, waiting } = stats();
        this.set({ state: 'in_use' }, inUse);
        this.set({ state: 'idle' }, idle);
        this.set({ state: 'waiting' }, waiting);
      },
    });
  }

  /** Statements sent so far (db.ts statementCount), read at each scrape: the benchmark's round trips per payment. */
  #watchStatements(db: Pick<Db, 'statementCount'>): void {
    if (!db.statementCount) return;
    const count = db.statementCount.bind(db);
    let reported = 0;
    new Counter({
      name: 'db_statements_total',
      help: 'Statements sent to the database (each query, BEGIN, COMMIT; a multi-statement exec counts once: one round trip)',
      registers: [this.registry],
      collect() {
        const now = count();
        this.inc(now - reported);
        reported = now;
      },
    });
  }
}
