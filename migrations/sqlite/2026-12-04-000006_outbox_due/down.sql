DROP INDEX outbox_dead;
DROP INDEX outbox_order;
DROP INDEX outbox_pending_due;
CREATE INDEX outbox_pending_order ON outbox (order_id, id) WHERE status = 'pending';
CREATE INDEX outbox_status_next_attempt ON outbox (status, next_attempt_at);
