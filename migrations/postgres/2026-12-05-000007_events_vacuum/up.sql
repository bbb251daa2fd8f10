-- A vacuum of the events table that keeps up with the retention pruner.
-- Keep in step with migrations/sqlite (where it has nothing to do).
--
-- Every event's row is written twice after it is inserted: its outcome,
-- then, once the retention has passed, its emptied body. Each write leaves
-- an old version of the row, whose space new rows reuse only after a
-- vacuum. By default autovacuum waits until a fifth of the table is dead,
-- and the events table only grows (its rows dedupe late re-deliveries
-- forever): the longer it is, the rarer and the longer its vacuums, and
-- new rows go to new pages meanwhile. In an hour-long soak at 1,420
-- webhooks a second the table grew 75 to 95 MiB a minute against about
-- 30 for the rows it keeps. In soaks at 1,000 webhooks a second
-- (docs/performance.md, "The events table's vacuum"), a vacuum once 2 % of
-- the table is dead ran every minute; left throttled by the default cost
-- delay, each run took longer as the table grew (over 40 s after twenty
-- minutes) and the table grew 35 MiB a minute, 51 in the last five minutes,
-- against 20 for its kept rows; unthrottled, 25 a minute until minute 20
-- and 37 in the five after (29 on average). Better, not yet shown flat. A
-- vacuum here reads the pages written since the last one and the indexes,
-- so unthrottled it is short.
ALTER TABLE webhook_events SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);
