-- Automatic capture (issue 15): an authorization asked for with capture_method 'automatic' is posted
-- whole in the authorization's own ledger job (status 'captured' at once). A reversal of such an
-- authorization (the authentication server lost the answer) gives the money back: a reversing
-- transfer merchant → cardholder, kept as a refund (refunds.reversal), so the day's settlement nets it.
alter table authorizations add column capture_method text not null default 'manual' check (capture_method in ('automatic', 'manual'));
alter table refunds add column reversal boolean not null default false;
