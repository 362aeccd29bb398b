-- The merchant API's lists (merchant-lists.ts) page by keyset, newest first: each reads one
-- merchant's rows in (created_at desc, id desc) order from just below the cursor.
create index payment_requests_by_merchant_created on payment_requests (merchant_id, created_at desc, id desc);
create index refunds_by_merchant_created on refunds (merchant_id, created_at desc, id desc);
create index webhook_outbox_by_merchant_created on webhook_outbox (merchant_id, created_at desc, id desc);
-- The events retention sweep (limits.eventsRetentionDays) finds old, finished events.
create index webhook_outbox_finished_by_created on webhook_outbox (created_at) where status <> 'pending';
