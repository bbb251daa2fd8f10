-- Reconciliation with the gateways' APIs, and the retention pruner's mark.
-- Keep in step with migrations/sqlite.

-- Where a recorded event came from: a webhook call, or payhook asking the
-- gateway's API. A duplicate keeps the first delivery's source. The
-- constant default adds the column without rewriting the table.
ALTER TABLE webhook_events
    ADD COLUMN source TEXT NOT NULL DEFAULT 'webhook'
        CHECK (source IN ('webhook', 'reconcile'));

-- When the retention pruner emptied the event's raw body (`payload` is
-- then an empty byte string); NULL while the body is kept. The row itself
-- stays, so that a late re-delivery is still recognised as a duplicate.
ALTER TABLE webhook_events ADD COLUMN pruned_at TIMESTAMP;

-- The events whose body the pruner may still empty, by the time they were
-- last processed. Partial: once pruned, an event leaves the index.
CREATE INDEX webhook_events_unpruned ON webhook_events (processed_at, id)
    WHERE pruned_at IS NULL;

-- One row per payment reconciliation has claimed or checked, beside the
-- payments row rather than in it: a claim or a check never writes the row
-- every webhook locks and rewrites.
--   due_at        when the payment may next be checked (a claim moves it to
--                 the end of the claim, a check to the next check); NULL:
--                 due now.
--   failures      transient failures (429, 5xx) in a row, for the backoff.
--   checked_at, gateway_state, result
--                 the last check; NULL while the payment was only claimed.
CREATE TABLE reconciliations (
    payment_id    BIGINT  PRIMARY KEY REFERENCES payments (id),
    due_at        TIMESTAMP,
    failures      INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
    checked_at    TIMESTAMP,
    gateway_state TEXT,
    result        TEXT,
    CHECK ((checked_at IS NULL) = (result IS NULL))
);

-- The due scan: payments pending at their gateway, oldest change first.
-- Partial: nearly every payment has left `pending_external`, so the index
-- holds only the few a pass may pick.
CREATE INDEX payments_pending_external ON payments (updated_at, id)
    WHERE status = 'pending_external';
