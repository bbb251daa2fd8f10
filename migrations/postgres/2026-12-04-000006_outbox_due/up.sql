-- The dispatcher's indexes, chosen so that no statistics can make a claim
-- read the whole backlog. Keep in step with migrations/sqlite.
--
-- A claim reads the due pending rows oldest first and, for each, looks up
-- its order's first pending row. PostgreSQL's statistics of an outbox that
-- keeps up say pending rows are rare, and whenever a burst outgrew them the
-- planner served that lookup from an index of pending rows (the old index
-- on (status, next_attempt_at) by its status, or the partial index of
-- pending rows per order scanned whole), filtering on the order: every
-- candidate read every pending row, and in an hour-long soak one claim ran
-- for minutes while the backlog grew.
--
-- Now the due scan has an index of pending rows only, in the claim's
-- order, and the lookup has an index of every row by order, which it
-- reaches by the order (it tests the status in a form no partial index
-- on pending rows can serve). An order has a handful of rows.
DROP INDEX outbox_status_next_attempt;
DROP INDEX outbox_pending_order;
CREATE INDEX outbox_pending_due ON outbox (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX outbox_order ON outbox (order_id, id);

-- The console's count of dead notifications, without reading the outbox.
CREATE INDEX outbox_dead ON outbox (id) WHERE status = 'dead';
