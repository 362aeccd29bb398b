-- Wrong recovery codes are counted per credential and source address (revocation.ts): a stranger
-- who knows the wallet handle locks the recovery path only from their own address, never for the
-- payer. credential_recovery.failures and locked_until now count every address together, up to the
-- much higher recoveryAttemptsPerCredentialMax.
create table credential_recovery_failures (
  credential_id text not null references credentials (id),
  source text not null,
  failures integer not null default 0 check (failures >= 0),
  locked_until timestamptz,
  updated_at timestamptz not null,
  primary key (credential_id, source)
);
