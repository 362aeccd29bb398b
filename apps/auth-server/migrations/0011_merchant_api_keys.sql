-- Merchants are created by the broker's operator (merchants.ts, `kessai merchants create`), and
-- their API keys roll as Stripe's do: merchants.api_key_hash is the current key (its SHA-256 only);
-- a key rolled away from keeps working until expires_at, then is refused. Expired rows stay (hashes
-- only), so that a restart never brings a rolled-away key back from a configuration.
alter table merchants add column api_key_last4 text;
create table merchant_previous_api_keys (
  merchant_id text not null references merchants (id),
  key_hash text primary key,
  last4 text,
  rolled_at timestamptz not null default now(),
  expires_at timestamptz not null
);
create index merchant_previous_api_keys_by_merchant on merchant_previous_api_keys (merchant_id, expires_at);
