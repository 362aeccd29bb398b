-- Revocation of a lost storage. The recovery code given to the payer at enrollment is kept only as
-- an argon2id verifier; wrong codes are counted and lock the recovery path for a while; a
-- revocation records when and by whom (the payer with the code, or the operator).
create table credential_recovery (
  credential_id text primary key references credentials (id),
  verifier text,
  failures integer not null default 0 check (failures >= 0),
  locked_until timestamptz,
  revoked_at timestamptz,
  revoked_by text check (revoked_by in ('payer', 'operator'))
);

-- Key rotation of webhook secrets: the secrets a merchant's webhook secret was rotated away from.
-- While `previous`, every delivery is signed with the current secret and with each of them (one
-- `v1=` per secret in Kessai-Signature), so a shop not yet configured with the new secret keeps
-- verifying. A `retired` one signs nothing and keeps only its SHA-256, so that a restart does not
-- bring it back from the configuration.
create table merchant_webhook_secrets (
  merchant_id text not null references merchants (id),
  secret_hash text not null,
  secret text,
  status text not null check (status in ('previous', 'retired')),
  rotated_at timestamptz not null default now(),
  primary key (merchant_id, secret_hash),
  check ((status = 'previous') = (secret is not null))
);
