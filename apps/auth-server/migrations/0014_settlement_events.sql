-- Settlement events (settlement-events.ts): the broker asks each issuer for the batches it closed
-- after a cursor it keeps here, one row per issuer. A worker claims a row (skip locked) until
-- next_poll_at, with a token, so several broker processes ask each issuer once per
-- limits.settlementEventsPollMs and only the claim's holder moves the cursor.
create table settlement_event_cursors (
  issuer_id text primary key,
  -- The issuer's position (`<epoch µs>:<batch id>`) of the last batch announced; null: from its first.
  cursor text,
  next_poll_at timestamptz not null default now(),
  claim_token text,
  updated_at timestamptz not null default now()
);

-- One event per batch and type, ever: a batch read twice (two workers, a retried page) finds its row
-- here and queues nothing. Batch ids derive from day, merchant and currency, so two issuers may share
-- one: the issuer is part of the key. event_id is null when the merchant is not known here.
create table settlement_batch_events (
  issuer_id text not null,
  batch_id text not null,
  event_type text not null,
  event_id text,
  created_at timestamptz not null default now(),
  primary key (issuer_id, batch_id, event_type)
);

-- An event's mode: null for a payment request's event (its request's mode, webhooks.ts eventLivemode);
-- a settlement batch event has no payment request and carries its own.
alter table webhook_outbox add column livemode boolean;
