-- Refunds and disputes. Keep in step with migrations/postgres.
--
-- payments: refunded_minor is the payment's refunded_amount as the domain's
-- ledger counts it; refund_total_* is the latest running total a gateway
-- reported (Stripe's amount_refunded) and when, the ledger's other half;
-- dispute_* is the payment's current dispute (all NULL when it has none).
-- SQLite adds a column with a CHECK in place: no table rebuild.
ALTER TABLE payments ADD COLUMN refunded_minor BIGINT NOT NULL DEFAULT 0;
ALTER TABLE payments ADD COLUMN refund_total_minor BIGINT;
ALTER TABLE payments ADD COLUMN refund_total_at TIMESTAMP;
ALTER TABLE payments ADD COLUMN dispute_id TEXT;
ALTER TABLE payments ADD COLUMN dispute_status TEXT
    CHECK (dispute_status IN ('open', 'won', 'lost', 'closed'));
ALTER TABLE payments ADD COLUMN dispute_amount_minor BIGINT;
ALTER TABLE payments ADD COLUMN dispute_currency TEXT;
ALTER TABLE payments ADD COLUMN dispute_reason TEXT;

-- One row per gateway refund id of a payment: the latest status reported
-- for it and when, and the earliest report that said it succeeded. Rows are
-- written by upsert on (payment_id, refund_id), so ids increase with the
-- first report of each refund: the ledger's order.
CREATE TABLE refunds (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    payment_id   BIGINT  NOT NULL REFERENCES payments (id),
    refund_id    TEXT    NOT NULL,
    amount_minor BIGINT  NOT NULL,
    currency     TEXT    NOT NULL,
    status       TEXT    NOT NULL
        CHECK (status IN ('pending', 'succeeded', 'failed', 'canceled')),
    status_at    TIMESTAMP NOT NULL,
    succeeded_at TIMESTAMP,
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL
);

CREATE UNIQUE INDEX refunds_payment_refund_id ON refunds (payment_id, refund_id);

-- The refunds or dispute an event reported, as JSON, so that a replay, a
-- re-delivery and an event kept until its payment completes are applied
-- again with them. NULL for every other kind.
ALTER TABLE webhook_events ADD COLUMN report TEXT;

-- The events kept until their payment completes, read in the transaction
-- that completes it. Partial: nearly no event is ever in this state.
CREATE INDEX webhook_events_awaiting ON webhook_events (payment_id, id)
    WHERE outcome = 'awaiting_completion';
