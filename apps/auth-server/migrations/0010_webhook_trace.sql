-- The W3C trace id of the request that queued each webhook event (webhooks.ts): its delivery, by a
-- worker later, continues that trace, so one payment's trace reaches the shop's webhook request.
-- An id of 32 hex digits, never personal data; null for events queued outside any request.
alter table webhook_outbox add column trace_id text;
