/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/) across Kessai's hops: a server parses
 * the inbound `traceparent` (version 00 only, strictly), starts a span of its own for the request,
 * and every outbound call made while that request is handled (HttpClient, webhook delivery) sends
 * `traceparent` with the same trace id and that span as parent. The current context travels in an
 * AsyncLocalStorage; outside any request an outbound call starts a trace of its own.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';

export interface TraceContext {
  /** 32 lowercase hex digits, not all zero. */
  traceId: string;
  /** This hop's span: 16 lowercase hex digits, not all zero. */
  spanId: string;
  /** The trace flags received (01 = sampled), passed on unchanged; 01 for a trace started here. */
  flags: string;
}

export const traceStorage = new AsyncLocalStorage<TraceContext>();

const traceparentShape = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const allZero = /^0+$/;

/**
 * The parent of an inbound `traceparent`, or undefined when it is absent or not a valid version-00 header (then a new
 * trace starts).
 */
export function parseTraceparent(value: unknown): { traceId: string; parentId: string; flags: string } | undefined {
  if (typeof value !== 'string') return undefined;
  const match = traceparentShape.exec(value);
  if (!match) return undefined;
  const [, traceId, parentId, flags] = match as unknown as [string, string, string, string];
  if (allZero.test(traceId) || allZero.test(parentId)) return undefined;
  return { traceId, parentId, flags };
}

export const newTraceId = (): string => randomBytes(16).toString('hex');
export const newSpanId = (): string => randomBytes(8).toString('hex');

/** This hop's context: the inbound trace continued with a new span, or a new trace. */
export function continueTrace(traceparent: unknown): TraceContext & { parentId?: string } {
  const parent = parseTraceparent(traceparent);
  if (!parent) return { traceId: newTraceId(), spanId: newSpanId(), flags: '01' };
  return { traceId: parent.traceId, spanId: newSpanId(), flags: parent.flags, parentId: parent.parentId };
}

export function formatTraceparent(context: TraceContext): string {
  return `00-${context.traceId}-${context.spanId}-${context.flags}`;
}

/** The `traceparent` for an outbound call: the current request's span as parent, or a new trace. */
export function outboundTraceparent(): string {
  return formatTraceparent(traceStorage.getStore() ?? { traceId: newTraceId(), spanId: newSpanId(), flags: '01' });
}
