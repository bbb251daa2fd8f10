DROP INDEX payments_pending_external;
DROP TABLE reconciliations;
DROP INDEX webhook_events_unpruned;
ALTER TABLE webhook_events
    DROP COLUMN pruned_at,
    DROP COLUMN source;
