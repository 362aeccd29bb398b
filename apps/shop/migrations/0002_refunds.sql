-- Refunds (step 409) as the shop learns them from `payment_request.refunded` events: each refund
-- once (by its id), the order's refunded total, and two more order states.
alter table orders add column refunded_minor bigint not null default 0 check (refunded_minor >= 0);
alter table orders add constraint orders_refunds_within_capture check (refunded_minor <= captured_minor);
alter table orders drop constraint orders_status_check;
alter table orders add constraint orders_status_check
  check (status in ('awaiting_payment', 'paid', 'declined', 'cancelled', 'expired', 'captured', 'voided', 'partially_refunded', 'refunded'));

create table order_refunds (
  -- The authentication server's refund id: a redelivered event finds it here.
  refund_id text primary key,
  order_id text not null references orders (id),
  amount_minor bigint not null check (amount_minor > 0),
  -- When the refund was made, as the event says.
  refunded_at timestamptz not null,
  recorded_at timestamptz not null default now()
);
create index order_refunds_by_order on order_refunds (order_id);
