-- Test and live mode, as Stripe's (docs/protocol.md "Test and live mode"). A key's mode is the
-- prefix of the key itself (sk_test_… / sk_live_…), which only its hash is kept of, so the mode is
-- stored beside the hash. Keys made before this migration (sk_… with neither prefix) are test keys:
-- they could only ever have paid the demo's test cards. A payment request is of the mode of the key
-- that created it, and only a key of that mode sees it.
alter table merchants add column api_key_livemode boolean not null default false;
alter table merchant_previous_api_keys add column livemode boolean not null default false;
alter table payment_requests add column livemode boolean not null default false;
