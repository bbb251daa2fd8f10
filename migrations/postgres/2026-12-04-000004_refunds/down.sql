DROP INDEX webhook_events_awaiting;
ALTER TABLE webhook_events DROP COLUMN report;
DROP TABLE refunds;
ALTER TABLE payments
    DROP COLUMN dispute_reason,
    DROP COLUMN dispute_currency,
    DROP COLUMN dispute_amount_minor,
    DROP COLUMN dispute_status,
    DROP COLUMN dispute_id,
    DROP COLUMN refund_total_at,
    DROP COLUMN refund_total_minor,
    DROP COLUMN refunded_minor;
