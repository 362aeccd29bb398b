-- Refunds (step 409), relayed to the issuer. The row is the saved intent: written before the call
-- with the id the issuer keys the refund by, and found again by a retry with the same
-- Idempotency-Key, so a refund is never made twice.
alter table payment_requests add column refunded_minor bigint not null default 0 check (refunded_minor >= 0);

create table refunds (
  id text primary key,
  payment_request_id text not null references payment_requests (id),
  merchant_id text not null references merchants (id),
  idempotency_key text not null,
  amount_minor bigint not null check (amount_minor > 0),
  state text not null check (state in ('pending', 'succeeded')),
  created_at timestamptz not null default now(),
  unique (merchant_id, idempotency_key)
);
create index refunds_by_request on refunds (payment_request_id);
