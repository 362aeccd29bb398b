-- Settlement (step 409, end of day; docs/ledger.md): fee income and payout accounts per currency,
-- merchants' fee schedules, the business days closed, one batch per merchant, currency and day with
-- a line per capture and refund it settles, and the fee and payout transfers it made.

alter table ledger_accounts drop constraint ledger_accounts_kind_check;
alter table ledger_accounts add constraint ledger_accounts_kind_check
  check (kind in ('cardholder', 'merchant', 'issuer_funding', 'fee_income', 'merchant_payout'));

-- One fee income account and one payout account (money leaving the bank for the merchants'
-- bank accounts) per currency, created on first use.
create table settlement_accounts (
  kind text not null check (kind in ('fee_income', 'merchant_payout')),
  currency text not null,
  account_id text not null unique references ledger_accounts (id),
  primary key (kind, currency)
);

-- A merchant's fee per captured transaction: round half up of amount × basis_points / 10000, plus
-- fixed_minor. Without a row the server's configured default applies.
create table merchant_fee_schedules (
  merchant_id text not null,
  currency text not null,
  basis_points integer not null check (basis_points between 0 and 10000),
  fixed_minor bigint not null check (fixed_minor >= 0),
  updated_at timestamptz not null default now(),
  primary key (merchant_id, currency)
);

-- A business day is closed once; a second close finds it here and changes nothing.
create table settlement_days (
  business_day date primary key,
  time_zone text not null,
  closed_at timestamptz not null
);

create table settlement_batches (
  id text primary key,
  business_day date not null references settlement_days (business_day),
  merchant_id text not null,
  currency text not null,
  merchant_account_id text not null references ledger_accounts (id),
  basis_points integer not null,
  fixed_minor bigint not null,
  captured bigint not null check (captured >= 0),
  refunded bigint not null check (refunded >= 0),
  fees bigint not null check (fees >= 0),
  -- net = captured − refunded − fees; due = net + carried_in; payout = max(due, 0); carried_out = min(due, 0).
  net bigint not null,
  carried_in bigint not null check (carried_in <= 0),
  payout bigint not null check (payout >= 0),
  carried_out bigint not null check (carried_out <= 0),
  fee_transfer_id text references transfers (id),
  payout_transfer_id text references transfers (id),
  line_count integer not null,
  created_at timestamptz not null default now(),
  unique (merchant_id, currency, business_day),
  check (net = captured - refunded - fees),
  check (payout + carried_out = net + carried_in),
  check ((payout > 0) = (payout_transfer_id is not null)),
  check ((fees > 0) = (fee_transfer_id is not null))
);
create index settlement_batches_by_merchant on settlement_batches (merchant_id, business_day desc);

-- Each capture or refund transfer is settled in exactly one batch.
create table settlement_lines (
  transfer_id text primary key references transfers (id),
  batch_id text not null references settlement_batches (id),
  kind text not null check (kind in ('capture', 'refund')),
  authorization_id text not null references authorizations (id),
  payment_request_id text not null,
  refund_id text references refunds (id),
  amount bigint not null check (amount > 0),
  fee bigint not null check (fee >= 0 and fee <= amount),
  net bigint not null,
  posted_at timestamptz not null,
  check ((kind = 'refund') = (refund_id is not null)),
  check (kind = 'capture' or fee = 0),
  check (net = case kind when 'capture' then amount - fee else -amount end)
);
create index settlement_lines_by_batch on settlement_lines (batch_id, posted_at, transfer_id);
