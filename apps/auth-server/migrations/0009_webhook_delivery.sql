-- Webhooks that arrive (webhooks.ts): each outbox row has an explicit status — pending (to be
-- tried, or being tried while leased_until is ahead), delivered, or dead (every attempt of
-- limits.webhookRetryDelaysMs failed; the operator or the merchant may resend it) — and the
-- payment request it reports. Every event of a payment request carries the next number of
-- payment_requests.event_sequence (migration 0008), taken in the statement that queues the event.
alter table payment_requests add constraint payment_requests_event_sequence_not_negative check (event_sequence >= 0);

alter table webhook_outbox add column status text not null default 'pending' check (status in ('pending', 'delivered', 'dead'));
alter table webhook_outbox add column leased_until timestamptz;
alter table webhook_outbox add column dead_at timestamptz;
alter table webhook_outbox add column resent_at timestamptz;
alter table webhook_outbox add column payment_request_id text;
update webhook_outbox set status = 'delivered' where delivered_at is not null;
-- Rows the old schedule gave up on (8 attempts) are dead letters now: the operator can resend them.
update webhook_outbox set status = 'dead', dead_at = now() where delivered_at is null and attempts >= 8;
update webhook_outbox set payment_request_id = body::jsonb -> 'data' ->> 'id';
drop index webhook_outbox_due;
create index webhook_outbox_due on webhook_outbox (next_attempt_at) where status = 'pending';
create index webhook_outbox_by_merchant on webhook_outbox (merchant_id, status, created_at desc);

-- An Idempotency-Key's in-progress claim is a lease (idempotency.ts): a process that dies stops
-- renewing it, and a retry after locked_until runs the request again.
alter table idempotency_keys add column locked_until timestamptz;
update idempotency_keys set locked_until = created_at + interval '60 seconds' where state = 'in_progress';
