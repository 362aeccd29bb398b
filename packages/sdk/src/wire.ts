/**
 * Tolerant answers (docs/protocol.md, "Compatibility"): the servers stay strict on what they
 * accept, but the SDK reads their answers and webhook events with every object loose — a field
 * added to an answer is ignored, never a failure — and an event type it does not know yet is kept
 * as a string beside the known union. So an SDK built today keeps working when the API grows.
 */
import { z } from 'zod';
import {
  paymentRequestView,
  refundView,
  settlementBatchEvent,
  settlementBatchView,
  settlementReport,
  webhookEvent,
  webhookEventType,
} from '@kessai/protocol';
import type {
  PaymentRequestView,
  RefundView,
  SettlementBatchEvent,
  SettlementBatchView,
  SettlementReport,
  WebhookEvent,
} from '@kessai/protocol';

type Def = {
  type: string;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  innerType?: z.ZodType;
  options?: z.ZodType[];
};

/** The same schema with every object in it loose (unknown keys kept through, never refused). */
export function tolerant<T>(schema: z.ZodType<T>): z.ZodType<T> {
  return loosen(schema) as z.ZodType<T>;
}

function loosen(schema: z.ZodType): z.ZodType {
  const def = (schema as unknown as { _zod: { def: Def } })._zod.def;
  switch (def.type) {
    case 'object':
      return z.looseObject(
        Object.fromEntries(Object.entries(def.shape ?? {}).map(([key, value]) => [key, loosen(value)])),
      );
    case 'array':
      return z.array(loosen(def.element!));
    case 'optional':
      return loosen(def.innerType!).optional();
    case 'nullable':
      return loosen(def.innerType!).nullable();
    case 'union':
      return z.union((def.options ?? []).map(loosen) as [z.ZodType, z.ZodType, ...z.ZodType[]]);
    default:
      return schema;
  }
}

/** The event types this SDK knows; any other string is accepted too (a type added after it was built). */
export const knownWebhookEventTypes = webhookEventType.options;
export type KnownWebhookEventType = (typeof knownWebhookEventTypes)[number];
/** A known type, or a newer one as a plain string (`string & {}` keeps the known names in completions). */
export type WebhookEventType = KnownWebhookEventType | (string & {});
/** A payment request's event, or one of a type newer than this SDK carrying a payment request as `data`. */
export type TolerantPaymentRequestEvent = Omit<WebhookEvent, 'type'> & {
  type: Exclude<KnownWebhookEventType, SettlementBatchEvent['type']> | (string & {});
};
/** `settlement_batch.closed`: an issuer closed a batch of the merchant (no payment request, no `sequence`). */
export type TolerantSettlementBatchEvent = SettlementBatchEvent;
/** Tell them apart with isSettlementBatchEvent: every other event carries a payment request. */
export type TolerantWebhookEvent = TolerantPaymentRequestEvent | TolerantSettlementBatchEvent;

/** True for `settlement_batch.closed` (a type test: `event.type === …` cannot narrow beside the open string). */
export function isSettlementBatchEvent(event: TolerantWebhookEvent): event is TolerantSettlementBatchEvent {
  return event.type === settlementBatchEvent.shape.type.value;
}

export const wirePaymentRequestView = tolerant<PaymentRequestView>(paymentRequestView);
export const wireRefundView = tolerant<RefundView>(refundView);
export const wireSettlementBatchView = tolerant<SettlementBatchView>(settlementBatchView);
export const wireSettlementReport = tolerant<SettlementReport>(settlementReport);
export const wireSettlementBatchEvent = tolerant<SettlementBatchEvent>(settlementBatchEvent);
const settlementBatchEventType: string = settlementBatchEvent.shape.type.value;
const wirePaymentRequestEvent = (loosen(webhookEvent) as z.ZodObject).extend({
  type: z
    .string()
    .min(1)
    .max(128)
    .refine((type) => type !== settlementBatchEventType),
});
export const wireWebhookEvent = z.union([
  wireSettlementBatchEvent,
  wirePaymentRequestEvent,
]) as unknown as z.ZodType<TolerantWebhookEvent>;
