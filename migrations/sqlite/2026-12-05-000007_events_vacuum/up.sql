-- PostgreSQL's migration 7 sets the events table's autovacuum threshold.
-- SQLite has no vacuum per table: the pruner rewrites each batch's rows so
-- that their space is reused (see the store's prune module). The migration
-- is here so that both folders hold the same versions; it changes nothing.
SELECT 1;
