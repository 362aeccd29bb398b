-- Events that arrive late (routes/webhooks.ts, reconciler.ts): per order the highest `sequence` of
-- the payment request's events applied so far — an event at or below it is stale (a retry that
-- overtook a later event) and is dropped — and when the reconciler last asked the authentication
-- server about the order. A dropped event is still recorded as processed, marked stale.
alter table orders add column last_event_sequence bigint not null default 0 check (last_event_sequence >= 0);
alter table orders add column reconciled_at timestamptz;
create index orders_waiting on orders (updated_at) where status in ('awaiting_payment', 'paid');
alter table processed_webhook_events add column stale boolean not null default false;
