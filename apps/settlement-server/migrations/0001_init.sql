-- The settlement server (role 40): the account store (the one place a card number is kept),
-- PIN verifiers, a minimal double-entry ledger, and the authorizations it signed.

create table ledger_accounts (
  id text primary key,
  kind text not null check (kind in ('cardholder', 'merchant', 'issuer_funding')),
  currency text not null,
  debits_pending bigint not null default 0 check (debits_pending >= 0),
  debits_posted bigint not null default 0 check (debits_posted >= 0),
  credits_pending bigint not null default 0 check (credits_pending >= 0),
  credits_posted bigint not null default 0 check (credits_posted >= 0),
  -- TigerBeetle's flag: debits (pending + posted) may never exceed posted credits.
  debits_must_not_exceed_credits boolean not null default false,
  created_at timestamptz not null default now(),
  check (not debits_must_not_exceed_credits or debits_pending + debits_posted <= credits_posted)
);

create table transfers (
  id text primary key,
  debit_account_id text not null references ledger_accounts (id),
  credit_account_id text not null references ledger_accounts (id),
  amount bigint not null check (amount >= 0),
  kind text not null check (kind in ('single', 'pending', 'post_pending', 'void_pending')),
  pending_id text references transfers (id),
  currency text not null,
  created_at timestamptz not null default now(),
  check (debit_account_id <> credit_account_id),
  check ((kind in ('post_pending', 'void_pending')) = (pending_id is not null))
);
-- A pending transfer is resolved (posted or voided) at most once.
create unique index transfers_one_resolution on transfers (pending_id) where pending_id is not null;

create table cards (
  card_number text primary key,
  holder_name text not null,
  expiry text not null,
  account_id text not null references ledger_accounts (id),
  status text not null check (status in ('active', 'blocked', 'locked')),
  pin_verifier text not null,
  pin_failures integer not null default 0,
  created_at timestamptz not null default now()
);

create table merchant_accounts (
  merchant_id text not null,
  currency text not null,
  account_id text not null references ledger_accounts (id),
  primary key (merchant_id, currency)
);

create table authorizations (
  id text primary key,
  request_id text not null unique,
  merchant_id text not null,
  account_id text references ledger_accounts (id),
  amount bigint not null,
  currency text not null,
  decision text not null check (decision in ('approved', 'declined')),
  decline_code text,
  status text not null check (status in ('held', 'captured', 'voided', 'declined')),
  hold_transfer_id text references transfers (id),
  captured_amount bigint not null default 0,
  jws text not null,
  created_at timestamptz not null default now()
);

create table approval_nonces (
  nonce text primary key,
  request_id text not null,
  created_at timestamptz not null default now()
);
