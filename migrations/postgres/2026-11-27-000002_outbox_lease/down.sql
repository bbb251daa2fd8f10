DROP INDEX outbox_pending_order;
ALTER TABLE outbox DROP COLUMN locked_until;
