-- A wrong PIN with tries left is not a payment request's decision (authorize.ts): its signed decline
-- is kept here by its attempt's approval nonce, so a retry of that same attempt gets the same answer,
-- while the payer may answer the request again with a new approval. The request's own decision,
-- when it comes, is the one row in `authorizations`.
create table pin_retry_declines (
  approval_nonce text primary key,
  request_id text not null,
  account_id text not null references ledger_accounts (id),
  jws text not null,
  created_at timestamptz not null default now()
);
create index pin_retry_declines_request on pin_retry_declines (request_id);
