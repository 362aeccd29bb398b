-- The reference e-shop (role 50): its catalogue, carts and orders, and the signed authorization
-- each paid order was fulfilled on. No personal data of the payer: no name, no card, no wallet
-- handle (that one is passed through to the payment request and forgotten).

create table products (
  id text primary key,
  name text not null,
  description text not null,
  unit_price_minor bigint not null check (unit_price_minor > 0),
  currency text not null,
  created_at timestamptz not null default now()
);

create table carts (
  id text primary key,
  -- Set by the first item: a cart (and so an order) is in one currency.
  currency text,
  status text not null default 'open' check (status in ('open', 'checked_out')),
  created_at timestamptz not null default now()
);

create table cart_items (
  cart_id text not null references carts (id),
  product_id text not null references products (id),
  quantity integer not null check (quantity between 1 and 10000),
  added_at timestamptz not null default now(),
  primary key (cart_id, product_id)
);

create table orders (
  id text primary key,
  -- One order per cart: checking a cart out twice finds the same order.
  cart_id text not null unique references carts (id),
  currency text not null,
  amount_minor bigint not null check (amount_minor > 0),
  captured_minor bigint not null default 0 check (captured_minor >= 0 and captured_minor <= amount_minor),
  status text not null check (status in ('awaiting_payment', 'paid', 'declined', 'cancelled', 'expired', 'captured', 'voided')),
  -- Set together from the authentication server's answer to step 402.
  payment_request_id text unique,
  payment_link text,
  merchant_id text,
  -- Step 408: the settlement server's signed authorization the order was fulfilled on.
  authorization_id text,
  authorization_jws text,
  decline_code text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  paid_at timestamptz,
  check ((payment_request_id is null) = (merchant_id is null)),
  check (status not in ('paid', 'captured') or authorization_jws is not null)
);

-- The lines as they were priced at checkout: what the payment request was created with.
create table order_lines (
  order_id text not null references orders (id),
  position integer not null check (position >= 0),
  product_id text not null references products (id),
  description text not null,
  quantity integer not null check (quantity between 1 and 10000),
  unit_price_minor bigint not null check (unit_price_minor > 0),
  primary key (order_id, position)
);

-- Webhook deliveries are retried: an event id is handled once.
create table processed_webhook_events (
  event_id text primary key,
  type text not null,
  processed_at timestamptz not null default now()
);
