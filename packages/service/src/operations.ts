/**
 * The operations surface every server shares: `GET /livez` (the process and its event loop run),
 * `GET /readyz` (the server can do its work: database, keys and each app's own checks — and it is
 * not draining) and the draining state that process-main.ts turns on at SIGTERM. Health routes sit
 * outside load shedding and rate limits, need no credential, and log nothing at info per call.
 */
import type { FastifyRequest } from 'fastify';
import { limits, livenessAnswer, readinessAnswer } from '@kessai/protocol';
import type { Db } from './db.ts';
import type { Logger } from './logger.ts';
import { ServerMetrics } from './metrics.ts';
import { textAnswer } from './openapi.ts';
import { requireOperator } from './operator.ts';
import type { KessaiApp } from './server.ts';

/** One thing /readyz asks: resolves when ready, rejects (or runs past readinessCheckTimeoutMs) when not. */
export interface ReadinessCheck {
  /** Short, fixed name: it is what /readyz answers in `checks` (never an error message, which could quote a secret). */
  name: string;
  check: () => Promise<void>;
}

export type CheckOutcome = 'ok' | 'failed' | 'timeout';

/** A server's operational state: its readiness checks and whether it is draining. */
export class Operations {
  /** Pluggable: each app (and each later feature, e.g. migrations) adds its own. */
  readonly readinessChecks: ReadinessCheck[] = [];
  /** This server's Prometheus registry and request histogram (metrics.ts). */
  readonly metrics = new ServerMetrics();
  #drainingSince: number | undefined;
  readonly #lastOutcome = new Map<string, CheckOutcome>();
  #addRoutes: (() => void) | undefined;

  /**
   * createServer hands over how to add /livez, /readyz and /metrics. They are added once, by
   * whoever takes them first: registerOpenApi right after it starts the OpenAPI generator (which
   * documents only the routes added after it), else createServer's own plugin when the app loads.
   */
  deferRoutes(add: () => void): void {
    this.#addRoutes = add;
  }

  /** The function that adds the operations routes, once: later calls get a no-op. */
  takeRoutes(): () => void {
    const add = this.#addRoutes ?? (() => {});
    this.#addRoutes = undefined;
    return add;
  }

  /** True from the drain signal on: /readyz answers 503 and every answer closes its connection. */
  get draining(): boolean {
    return this.#drainingSince !== undefined;
  }

  startDraining(now = Date.now()): void {
    this.#drainingSince ??= now;
  }

  /** Runs every check at once, each under readinessCheckTimeoutMs; logs a check only when its outcome changes. */
  async readiness(logger: Logger): Promise<{ ready: boolean; checks: Record<string, CheckOutcome> }> {
    const outcomes = await Promise.all(this.readinessChecks.map(async ({ name, check }) => [name, await runCheck(name, check, logger)] as const));
    const checks = Object.fromEntries(outcomes) as Record<string, CheckOutcome>;
    for (const [name, outcome] of outcomes) {
      const before = this.#lastOutcome.get(name);
      // A check failing from the first call on is logged too; one that passes from the start is not.
      if (before !== outcome && (before !== undefined || outcome !== 'ok')) logger[outcome === 'ok' ? 'info' : 'warn']({ check: name, outcome, before: before ?? null }, 'readiness check changed');
      this.#lastOutcome.set(name, outcome);
    }
    return { ready: outcomes.every(([, outcome]) => outcome === 'ok'), checks };
  }
}

async function runCheck(name: string, check: () => Promise<void>, logger: Logger): Promise<CheckOutcome> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<CheckOutcome>((resolve) => (timer = setTimeout(() => resolve('timeout'), limits.readinessCheckTimeoutMs)));
  try {
    return await Promise.race([
      check().then(
        () => 'ok' as const,
        (err: unknown) => {
          // At debug: a failing dependency is reported once by the change log above, not every second.
          logger.debug({ err, check: name }, 'readiness check failed');
          return 'failed' as const;
        },
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The routes of the operations surface, which load shedding and rate limits let through uncounted. */
export const operationsRoutes: ReadonlySet<string> = new Set(['/livez', '/readyz', '/metrics']);

/** True for /livez, /readyz and /metrics (matched by route pattern, so no raw-URL trick reaches it). */
export function isOperationsRequest(request: FastifyRequest): boolean {
  const route = request.routeOptions.url;
  return route !== undefined && operationsRoutes.has(route);
}

/** The database check: `select 1` answers (under readinessCheckTimeoutMs, as every check). */
export function databaseReadiness(db: Pick<Db, 'query'>): ReadinessCheck {
  return { name: 'database', check: async () => void (await db.query('select 1')) };
}

/** The keys check: the ring holds a current key of each use the server signs or opens with. */
export function keysReadiness(ring: { current(use: 'sig' | 'enc'): unknown }, uses: ReadonlyArray<'sig' | 'enc'>): ReadinessCheck {
  return {
    name: 'keys',
    check: async () => {
      for (const use of uses) ring.current(use);
    },
  };
}

const livezSchema = {
  summary: 'Liveness: the process runs',
  description: 'For a load balancer or orchestrator; no credential, never rate-limited or shed.',
  operationId: 'getLiveness',
  response: { 200: livenessAnswer },
};
const readyzSchema = {
  summary: 'Readiness: the server can do its work',
  description:
    'Runs every readiness check (database, keys, migrations, the app’s own); 503 while one fails or the server drains.',
  operationId: 'getReadiness',
  response: {
    200: readinessAnswer.meta({ description: 'Ready: every check answered ok.' }),
    503: readinessAnswer.meta({ description: 'Not ready (a check failed or timed out) or draining.' }),
  },
};
const metricsSchema = {
  summary: 'Prometheus metrics',
  description:
    "Prometheus' text format (version 0.0.4). With an operator token configured, only its bearer may read it.",
  operationId: 'getMetrics',
  response: { 200: textAnswer('text/plain', 'The metrics, as text.') },
};

/**
 * Registers /livez and /readyz on `app`. `logLevel: 'warn'` keeps the per-call request lines out of
 * info logs (health checks arrive every second); a failing check is logged when it changes.
 */
export function registerHealthRoutes(app: KessaiApp, operations: Operations, logger: Logger): void {
  app.get('/livez', { logLevel: 'warn', schema: livezSchema }, async (_request, reply) => reply.header('cache-control', 'no-store').send({ status: 'live' }));
  app.get('/readyz', { logLevel: 'warn', schema: readyzSchema }, async (_request, reply) => {
    reply.header('cache-control', 'no-store');
    if (operations.draining) return reply.code(503).send({ status: 'draining', checks: { draining: 'failed' } });
    const { ready, checks } = await operations.readiness(logger);
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', checks });
  });
}

/**
 * GET /metrics in Prometheus' text format. With `token` (the server's operator token) only a
 * caller presenting it may read it: no label holds personal data or an id, but payment volumes,
 * decline codes and webhook backlogs are the operator's business, not the public's. Without one
 * (the wallet host, which has neither operator nor business data) it is open.
 */
export function registerMetricsRoute(app: KessaiApp, operations: Operations, token: string | undefined): void {
  app.get('/metrics', { logLevel: 'warn', schema: metricsSchema, ...(token ? { onRequest: requireOperator(token) } : {}) }, async (_request, reply) => {
    const { registry } = operations.metrics;
    return reply.header('cache-control', 'no-store').type(registry.contentType).send(await registry.metrics());
  });
}
