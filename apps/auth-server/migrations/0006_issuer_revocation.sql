-- A revocation ends at the issuer's registry (DESIGN.md §1): issuer_revoked_at is when the issuer
-- acknowledged it. Until then the worker relays it again (revocation-relay.ts).
alter table credentials add column issuer_revoked_at timestamptz;
alter table credentials add column issuer_revoke_tried_at timestamptz;
create index credentials_revocations_to_relay on credentials (id) where status = 'revoked' and issuer_revoked_at is null;
