-- The authentication server (role 30). It keeps merchants, credential *records*, payment
-- requests and their states, and a webhook outbox — never a card number, holder name, expiry or
-- PIN, not even encrypted.

create table merchants (
  id text primary key,
  name text not null,
  api_key_hash text not null unique,
  webhook_url text,
  webhook_secret text not null,
  created_at timestamptz not null default now()
);

create table credentials (
  id text primary key,
  issuer_id text not null,
  device_jwk jsonb not null,
  device_jkt text not null,
  status text not null check (status in ('active', 'revoked')),
  created_at timestamptz not null default now(),
  last_used_at timestamptz
);

create table payment_requests (
  id text primary key,
  merchant_id text not null references merchants (id),
  order_id text not null,
  currency text not null,
  amount_minor bigint not null check (amount_minor >= 0),
  captured_minor bigint not null default 0 check (captured_minor >= 0),
  line_items jsonb not null,
  wallet_handle text,
  status text not null check (status in ('pending', 'authorizing', 'approved', 'declined', 'cancelled', 'expired', 'captured', 'voided')),
  credential_id text references credentials (id),
  issuer_id text,
  authorization_jws text,
  decline_code text,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  updated_at timestamptz not null default now()
);
create index payment_requests_pending_by_wallet on payment_requests (wallet_handle) where status = 'pending';
create index payment_requests_by_status on payment_requests (status, expires_at);

create table approval_nonces (
  nonce text primary key,
  request_id text not null,
  created_at timestamptz not null default now()
);

create table device_proofs (
  jti text primary key,
  credential_id text not null,
  expires_at timestamptz not null
);

create table idempotency_keys (
  merchant_id text not null,
  key text not null,
  request_hash text not null,
  state text not null check (state in ('in_progress', 'done')),
  response_status integer,
  response_body jsonb,
  created_at timestamptz not null default now(),
  primary key (merchant_id, key)
);

create table webhook_outbox (
  id text primary key,
  merchant_id text not null references merchants (id),
  event_type text not null,
  -- The exact bytes that are signed and sent.
  body text not null,
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  delivered_at timestamptz,
  last_status integer,
  created_at timestamptz not null default now()
);
create index webhook_outbox_due on webhook_outbox (next_attempt_at) where delivered_at is null;
