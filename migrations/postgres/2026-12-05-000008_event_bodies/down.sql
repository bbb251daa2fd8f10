ALTER TABLE webhook_events
    ADD COLUMN payload BYTEA NOT NULL DEFAULT '',
    ADD COLUMN pruned_at TIMESTAMP;
UPDATE webhook_events e SET payload = b.payload
    FROM webhook_event_bodies b WHERE b.event_row = e.id;
UPDATE webhook_events e SET pruned_at = p.pruned_at
    FROM webhook_bodies_pruned p WHERE p.event_row = e.id;
ALTER TABLE webhook_events ALTER COLUMN payload DROP DEFAULT;
CREATE INDEX webhook_events_unpruned ON webhook_events (processed_at, id)
    WHERE pruned_at IS NULL;
DROP TABLE webhook_bodies_pruned;
DROP TABLE webhook_event_bodies;
