-- PIN attempts per credential, beside the per-account count (cards.pin_failures). A credential is
-- keyed by its device key's thumbprint: the approval the settlement server verifies is signed by
-- that key, so a broker cannot move a thief's wrong PINs onto another credential's count. Only a
-- right PIN through the credential, or the operator (POST /admin/v1/cards/unlock), resets it.
create table credential_pin_limits (
  device_jkt text primary key,
  credential_id text not null,
  account_id text not null references ledger_accounts (id),
  failures integer not null default 0 check (failures >= 0),
  status text not null default 'active' check (status in ('active', 'locked')),
  locked_at timestamptz,
  updated_at timestamptz not null default now()
);
create index credential_pin_limits_by_credential on credential_pin_limits (credential_id);
create index credential_pin_limits_by_account on credential_pin_limits (account_id);
