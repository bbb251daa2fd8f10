-- The raw bodies of events in a table of their own, and the pruner's mark
-- beside them: the events table is then never rewritten by the pruner.
-- Keep in step with migrations/sqlite.
--
-- Until now every event row was written three times: inserted, given its
-- outcome, and emptied by the pruner once the retention had passed, with
-- every version carrying the 1.5 KB body until the last. In an hour at
-- 1,000 webhooks a second (docs/performance.md, "The hour again, with
-- migration 7") each autovacuum of the events table read nearly all of it,
-- 1.3 s at the first minute and 23 s at the last, and the table grew 1.6
-- times as fast as the rows it keeps. Here a body is inserted once and
-- deleted once, as the outbox's rows are (that table stayed flat in the
-- same hour), and the event row, small now, is written when it arrives
-- and when it is decided, then never again: old pages stay all-visible
-- and a vacuum reads the recent ones.

-- One row per event whose body is kept. `received_at` is the first
-- delivery's: the pruner's scan starts there, since an event is last
-- processed no earlier than it first arrived. No foreign key to
-- `webhook_events`: its check would look up and lock the event row for
-- every body inserted, and the store inserts both in one transaction and
-- never deletes an event.
CREATE TABLE webhook_event_bodies (
    event_row   BIGINT    PRIMARY KEY,
    received_at TIMESTAMP NOT NULL,
    payload     BYTEA     NOT NULL
);
CREATE INDEX webhook_event_bodies_received ON webhook_event_bodies (received_at, event_row);

-- When the pruner removed an event's body: one row per pruned event,
-- inserted with the body's delete and never changed.
CREATE TABLE webhook_bodies_pruned (
    event_row BIGINT    PRIMARY KEY,
    pruned_at TIMESTAMP NOT NULL
);

INSERT INTO webhook_event_bodies (event_row, received_at, payload)
    SELECT id, received_at, payload FROM webhook_events WHERE pruned_at IS NULL;
INSERT INTO webhook_bodies_pruned (event_row, pruned_at)
    SELECT id, pruned_at FROM webhook_events WHERE pruned_at IS NOT NULL;

DROP INDEX webhook_events_unpruned;
-- A dropped column's bytes stay in the rows already written until they are
-- rewritten (see docs/operations.md for reclaiming them at once).
ALTER TABLE webhook_events DROP COLUMN payload, DROP COLUMN pruned_at;
