-- Holds expire at the issuer (step 409): the worker asks the issuer about each approved request
-- (hold-sync.ts), learns when its hold is due, and asks again then; an expired hold turns the
-- request `expired` and the merchant gets `payment_request.expired`. hold_check_at is when to ask
-- next; null means not asked yet.
alter table payment_requests add column hold_check_at timestamptz;
create index payment_requests_hold_check on payment_requests (hold_check_at) where status = 'approved';
