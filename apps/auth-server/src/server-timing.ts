/**
 * Server-Timing for the benchmark (config.serverTiming): each response says how long the server
 * spent on it (`total`) and on the timed steps inside it — step 405 `conversion`, step 406
 * `authorization` (the issuer's round trip), step 407 `record` — as `name;dur=<ms>`. Only
 * durations; off unless asked for, since timings tell a client about the server's work.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { performance } from 'node:perf_hooks';
import type { FastifyRequest } from 'fastify';
import type { KessaiApp } from '@kessai/service';

type Entries = Array<[name: string, ms: number]>;

const current = new AsyncLocalStorage<Entries>();
const byRequest = new WeakMap<FastifyRequest, { entries: Entries; startedAt: number }>();

/** Runs fn, recording its duration under `name` when the current request is timed. */
export async function timed<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const entries = current.getStore();
  if (!entries) return fn();
  const startedAt = performance.now();
  try {
    return await fn();
  } finally {
    entries.push([name, performance.now() - startedAt]);
  }
}

export function registerServerTiming(app: KessaiApp): void {
  app.addHook('onRequest', (request, _reply, done) => {
    const entries: Entries = [];
    byRequest.set(request, { entries, startedAt: performance.now() });
    current.run(entries, done);
  });
  app.addHook('onSend', async (request, reply, payload) => {
    const timing = byRequest.get(request);
    if (timing) {
      const parts = timing.entries.map(([name, ms]) => `${name};dur=${ms.toFixed(2)}`);
      parts.push(`total;dur=${(performance.now() - timing.startedAt).toFixed(2)}`);
      reply.header('server-timing', parts.join(', '));
    }
    return payload;
  });
}
