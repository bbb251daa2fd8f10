-- The raw bodies of events in a table of their own, and the pruner's mark
-- beside them. Keep in step with migrations/postgres, which says why.
--
-- On SQLite it also ends the pruner's rewrite of each batch of events
-- (deleting and re-inserting the rows, emptied, so that their pages were
-- freed): deleting bodies in the order they were inserted frees whole
-- pages, which later inserts reuse.

-- One row per event whose body is kept, stored in the table's own b-tree
-- under the event's row id (INTEGER PRIMARY KEY is SQLite's row id). No
-- foreign key: the store inserts both in one transaction and never deletes
-- an event.
CREATE TABLE webhook_event_bodies (
    event_row   INTEGER   PRIMARY KEY,
    received_at TIMESTAMP NOT NULL,
    payload     BLOB      NOT NULL
);
CREATE INDEX webhook_event_bodies_received ON webhook_event_bodies (received_at, event_row);

-- When the pruner removed an event's body: one row per pruned event,
-- inserted with the body's delete and never changed.
CREATE TABLE webhook_bodies_pruned (
    event_row INTEGER   PRIMARY KEY,
    pruned_at TIMESTAMP NOT NULL
);

INSERT INTO webhook_event_bodies (event_row, received_at, payload)
    SELECT id, received_at, payload FROM webhook_events WHERE pruned_at IS NULL;
INSERT INTO webhook_bodies_pruned (event_row, pruned_at)
    SELECT id, pruned_at FROM webhook_events WHERE pruned_at IS NOT NULL;

DROP INDEX webhook_events_unpruned;
-- SQLite rewrites the table to drop a column.
ALTER TABLE webhook_events DROP COLUMN payload;
ALTER TABLE webhook_events DROP COLUMN pruned_at;
