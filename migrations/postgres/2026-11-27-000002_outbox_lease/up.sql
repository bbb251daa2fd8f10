-- Delivery of the outbox to the shop. Keep in step with migrations/sqlite.
-- locked_until: the lease of the dispatcher that claimed the row; a row is
-- claimable when it is NULL or in the past, so a crashed dispatcher's claim
-- expires by itself.
ALTER TABLE outbox ADD COLUMN locked_until TIMESTAMP NULL;

-- The claim looks for the oldest pending row of each order.
CREATE INDEX outbox_pending_order ON outbox (order_id, id) WHERE status = 'pending';
