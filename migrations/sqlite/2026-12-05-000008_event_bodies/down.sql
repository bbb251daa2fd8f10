ALTER TABLE webhook_events ADD COLUMN payload BLOB NOT NULL DEFAULT X'';
ALTER TABLE webhook_events ADD COLUMN pruned_at TIMESTAMP;
UPDATE webhook_events SET payload = (
    SELECT b.payload FROM webhook_event_bodies b WHERE b.event_row = webhook_events.id
) WHERE id IN (SELECT event_row FROM webhook_event_bodies);
UPDATE webhook_events SET pruned_at = (
    SELECT p.pruned_at FROM webhook_bodies_pruned p WHERE p.event_row = webhook_events.id
);
CREATE INDEX webhook_events_unpruned ON webhook_events (processed_at, id)
    WHERE pruned_at IS NULL;
DROP TABLE webhook_bodies_pruned;
DROP TABLE webhook_event_bodies;
