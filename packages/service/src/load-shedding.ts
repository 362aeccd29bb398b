/**
 * Load shedding: each server bounds the requests it works on at once per work class (intake,
 * payment, read, admin, control) and answers `overloaded` (503, Retry-After) at once, in the first
 * onRequest hook, to one more — before any body is read, any database row written or any peer
 * called — instead of queueing it behind the others (limits.inFlightMax). A request whose caller's
 * deadline (Kessai-Deadline-Ms) leaves less than deadlineBudgetMsMin is refused deadline_exceeded
 * the same way: nobody would wait for its answer.
 *
 * A slot is held while the request is worked on: from onRequest until its answer is ready
 * (onSend), the answer is sent (onResponse), or the connection closes before a handler started
 * (the client went away, a trickled body hit requestTimeoutMs). A handler still running when its
 * client disconnects keeps the slot until it answers — its work is still load — and at the latest
 * inFlightAbandonedMsMax after the disconnect, so no path leaks a slot.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { KessaiError, limits } from '@kessai/protocol';
import { deadlineHeader } from './deadline.ts';
import type { Logger } from './logger.ts';
import { isOperationsRequest } from './operations.ts';
import { sendProblem, type KessaiApp } from './server.ts';

export type WorkClass = keyof typeof limits.inFlightMax;
export const workClasses = Object.keys(limits.inFlightMax) as WorkClass[];

/** Per-server overrides of limits.ts (tests use small limits, the benchmark its own). */
export interface LoadSheddingConfig {
  inFlightMax?: Partial<Record<WorkClass, number>>;
  deadlineBudgetMsMin?: number;
}

/**
 * Limits high enough never to answer `overloaded` to the test suites, which fire hundreds of
 * requests at once on purpose (simultaneous authorizations against one account, fuzzing);
 * test/load-shedding.test.ts passes its own small ones. Never for production.
 */
export const loadTestLoadShedding: LoadSheddingConfig = {
  inFlightMax: Object.fromEntries(Object.keys(limits.inFlightMax).map((name) => [name, 100_000])),
};

/** The class of a request, or 'exempt' for one not counted (event streams have their own limit, sseStreamsMax). */
export type ClassifyWork = (request: FastifyRequest) => WorkClass | 'exempt';

/**
 * The default rule, each server naming its exceptions by `METHOD /route/pattern` (the routes that
 * start a new payment are `intake`, each server's own list): public key documents are control (peers' in-doubt and verification work depends on them), /admin is
 * admin, other GETs (and HEAD, OPTIONS) are reads, everything else is payment work.
 */
export function classifyWork(exceptions: Readonly<Record<string, WorkClass | 'exempt'>> = {}): ClassifyWork {
  return (request) => {
    const route = request.routeOptions.url;
    const named = route === undefined ? undefined : exceptions[`${request.method} ${route}`];
    if (named) return named;
    if (route?.startsWith('/.well-known/')) return 'control';
    if (route?.startsWith('/admin/')) return 'admin';
    return request.method === 'GET' || request.method === 'HEAD' || request.method === 'OPTIONS' ? 'read' : 'payment';
  };
}

interface Slot {
  workClass: WorkClass;
  released: boolean;
  handling: boolean;
  timer?: NodeJS.Timeout;
}

/** The counters of one server: what tests and the benchmark read. */
export class LoadShedder {
  readonly inFlightMax: Readonly<Record<WorkClass, number>>;
  readonly deadlineBudgetMsMin: number;
  readonly #inFlight: Record<WorkClass, number>;
  readonly #shed: Record<WorkClass, number>;

  constructor(config: LoadSheddingConfig = {}) {
    this.inFlightMax = Object.freeze({ ...limits.inFlightMax, ...config.inFlightMax });
    for (const [name, max] of Object.entries(this.inFlightMax)) if (!Number.isInteger(max) || max < 1) throw new TypeError(`LoadShedder: inFlightMax.${name} must be an integer ≥ 1`);
    this.deadlineBudgetMsMin = config.deadlineBudgetMsMin ?? limits.deadlineBudgetMsMin;
    this.#inFlight = Object.fromEntries(workClasses.map((name) => [name, 0])) as Record<WorkClass, number>;
    this.#shed = { ...this.#inFlight };
  }

  /** Requests of each class being worked on now. */
  inFlight(): Record<WorkClass, number> {
    return { ...this.#inFlight };
  }

  /** Requests of each class refused `overloaded` since the server started. */
  shed(): Record<WorkClass, number> {
    return { ...this.#shed };
  }

  take(workClass: WorkClass): Slot | undefined {
    // A new payment (intake) is admitted only while the payment work in flight, its own included,
    // leaves room under inFlightMax.intake: past it, new payments are refused first and those already
    // started (approval, capture) keep the rest of inFlightMax.payment.
    const busy = workClass === 'intake' ? this.#inFlight.intake + this.#inFlight.payment : this.#inFlight[workClass];
    if (busy >= this.inFlightMax[workClass]) {
      this.#shed[workClass] += 1;
      return undefined;
    }
    this.#inFlight[workClass] += 1;
    return { workClass, released: false, handling: false };
  }

  release(slot: Slot): void {
    if (slot.released) return;
    slot.released = true;
    clearTimeout(slot.timer);
    this.#inFlight[slot.workClass] -= 1;
    if (this.#inFlight[slot.workClass] < 0) throw new Error(`load shedding: ${slot.workClass} count below zero`);
  }
}

const shedders = new WeakMap<object, LoadShedder>();
const slots = new WeakMap<FastifyRequest, Slot>();

/** The load shedder of a server built by shedLoad (tests read its counts). */
export function loadShedderOf(app: object): LoadShedder | undefined {
  return shedders.get(app);
}

/**
 * Adds the hooks to `app`; call it right after createServer, before any other onRequest hook, so
 * a refused request costs nothing else (not even a rate-limit bucket).
 */
export function shedLoad(app: KessaiApp, classify: ClassifyWork, config: LoadSheddingConfig = {}, logger?: Pick<Logger, 'warn'>): LoadShedder {
  const shedder = new LoadShedder(config);
  shedders.set(app, shedder);
  const log = shedLog(shedder, logger ?? app.log);

  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    // Health checks and scrapes are answered whatever the load: a shed /readyz would take a busy but healthy server out of rotation.
    const workClass = isOperationsRequest(request) ? 'exempt' : classify(request);
    if (workClass === 'exempt') return undefined;
    const budget = request.headers[deadlineHeader];
    if (typeof budget === 'string' && /^[0-9]{1,9}$/.test(budget) && Number(budget) < shedder.deadlineBudgetMsMin) {
      return sendProblem(reply, new KessaiError('deadline_exceeded', `the caller's deadline leaves ${budget} ms, less than the ${shedder.deadlineBudgetMsMin} ms this work needs`));
    }
    const slot = shedder.take(workClass);
    if (!slot) {
      log(workClass);
      const refused = new KessaiError('overloaded', `too many ${workClass} requests in progress (${shedder.inFlightMax[workClass]}); retry after ${limits.overloadRetryAfterSeconds} s`);
      refused.retryAfterSeconds = limits.overloadRetryAfterSeconds;
      return sendProblem(reply, refused);
    }
    slots.set(request, slot);
    reply.raw.once('close', () => {
      if (slot.released) return;
      if (!slot.handling) return shedder.release(slot);
      // The client left while its handler runs: the handler's answer (onSend) releases the slot, or this timer.
      slot.timer ??= setTimeout(() => shedder.release(slot), limits.inFlightAbandonedMsMax).unref();
    });
    return undefined;
  });
  app.addHook('preHandler', async (request) => {
    const slot = slots.get(request);
    if (slot) slot.handling = true;
  });
  app.addHook('onSend', async (request, _reply, payload) => {
    const slot = slots.get(request);
    if (slot) shedder.release(slot);
    return payload;
  });
  app.addHook('onResponse', async (request) => {
    const slot = slots.get(request);
    if (slot) shedder.release(slot);
  });
  return shedder;
}

/** One warning per overloadLogIntervalMs while shedding, with the count since the last one: a flood of refusals is not a flood of log lines. */
function shedLog(shedder: LoadShedder, logger: Pick<Logger, 'warn'>): (workClass: WorkClass) => void {
  let lastAt = 0;
  let since = 0;
  return (workClass) => {
    since += 1;
    const now = Date.now();
    if (now - lastAt < limits.overloadLogIntervalMs) return;
    logger.warn({ workClass, refused: since, inFlight: shedder.inFlight(), inFlightMax: shedder.inFlightMax }, 'overloaded: load shed (503 overloaded)');
    lastAt = now;
    since = 0;
  };
}
