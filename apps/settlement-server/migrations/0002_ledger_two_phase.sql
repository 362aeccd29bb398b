-- The ledger in TigerBeetle's model (docs/ledger.md): pending transfers carry a timeout and a
-- state (pending → posted | voided | expired), accounts may also forbid credits beyond debits,
-- authorizations can expire, and refunds are reverse transfers recorded against their capture.

alter table ledger_accounts add column credits_must_not_exceed_debits boolean not null default false;
alter table ledger_accounts add constraint credits_must_not_exceed_debits
  check (not credits_must_not_exceed_debits or credits_pending + credits_posted <= debits_posted);

alter table transfers add column timeout_seconds integer not null default 0 check (timeout_seconds >= 0);
alter table transfers add column expires_at timestamptz;
alter table transfers add column state text check (state in ('pending', 'posted', 'voided', 'expired'));
update transfers p set state = coalesce(
  (select case r.kind when 'post_pending' then 'posted' else 'voided' end from transfers r where r.pending_id = p.id),
  'pending')
  where p.kind = 'pending';
-- Only a pending transfer has a state; only a pending transfer may have a timeout.
alter table transfers add constraint transfers_state_of_pending check ((kind = 'pending') = (state is not null));
alter table transfers add constraint transfers_timeout_of_pending check (kind = 'pending' or timeout_seconds = 0);
create index transfers_expiry on transfers (expires_at) where state = 'pending' and expires_at is not null;

alter table authorizations drop constraint authorizations_status_check;
alter table authorizations add constraint authorizations_status_check
  check (status in ('held', 'captured', 'voided', 'expired', 'declined'));
alter table authorizations add column refunded_amount bigint not null default 0 check (refunded_amount >= 0);
alter table authorizations add constraint refunds_within_capture check (refunded_amount <= captured_amount);

-- Refunds (step 409): each is a reverse transfer merchant → cardholder; the id is the one the
-- authentication server chose and saved before calling, so a retry finds it here.
create table refunds (
  id text primary key,
  authorization_id text not null references authorizations (id),
  amount bigint not null check (amount > 0),
  transfer_id text not null unique references transfers (id),
  created_at timestamptz not null default now()
);
create index refunds_by_authorization on refunds (authorization_id);
