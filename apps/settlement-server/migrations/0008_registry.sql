-- The issuer trusts only itself and the payer's device (DESIGN.md §1, "Trust model").
-- credentials: every credential this issuer registered at enrollment, after checking the card and
-- the PIN itself: its id, the thumbprint of the device key that signs its approvals, the card and
-- account, and its status. An authorization through a credential that is not here, is revoked, or
-- comes with another device key is refused, whatever the authentication server says.
create table credentials (
  id text primary key,
  device_jkt text not null unique,
  pan_lookup text not null references cards (pan_lookup),
  account_id text not null references ledger_accounts (id),
  status text not null check (status in ('active', 'revoked')),
  created_at timestamptz not null default now(),
  last_used_at timestamptz,
  revoked_at timestamptz,
  revoked_by text check (revoked_by in ('payer', 'operator', 'issuer_operator'))
);
create index credentials_active_by_card on credentials (pan_lookup) where status = 'active';

-- merchants: the merchants this issuer's operator onboarded, under the name payers are shown; no
-- other merchant is paid.
create table merchants (
  id text primary key,
  name text not null,
  created_at timestamptz not null default now()
);

-- pin_failures: the velocity record of wrong PINs per card. An operator unlock resets the
-- consecutive count (cards.pin_failures), never this: past pinFailuresWindowMax wrong PINs within
-- pinFailuresWindowMs the card is locked whatever the operator does.
create table pin_failures (
  pan_lookup text not null references cards (pan_lookup),
  at timestamptz not null default now()
);
create index pin_failures_by_card on pin_failures (pan_lookup, at);

-- cards.pin_verifier now holds a keyed PIN verification value, `pvv1.<kid>.<HMAC-SHA-256>`, under
-- the PIN verification key of the server's key folder (pin.ts). The argon2id verifiers of earlier
-- versions are re-derived by the seeder at start for the demo cards; no other store existed.
