-- The payment-request state machine (payment-state.ts) and in-doubt authorizations (in-doubt.ts).
-- event_sequence: the sequence number of the request's last webhook event (each event carries its
-- own, so a receiver drops stale ones). attempt_nonce: the approval nonce of the authorization now
-- in flight, which a reversal names so the issuer can refuse it should it still arrive.
-- resolve_at / resolve_attempts: when the in-doubt worker asks the issuer next, and how often it has.
alter table payment_requests add column event_sequence bigint not null default 0;
alter table payment_requests add column attempt_nonce text;
alter table payment_requests add column resolve_at timestamptz;
alter table payment_requests add column resolve_attempts integer not null default 0;
create index payment_requests_in_doubt on payment_requests (resolve_at) where status = 'authorizing';
