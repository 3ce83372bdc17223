-- The sweeper deletes raw rows fetched before the retention cut-off, a few thousand at a time:
-- each batch is one range scan of this index instead of a scan of the whole table.
-- IF NOT EXISTS: on a large PostgreSQL table an operator may build it beforehand with
-- CREATE INDEX CONCURRENTLY (this migration runs in a transaction, which blocks writes meanwhile).
CREATE INDEX IF NOT EXISTS ix_ad_stats_raw_fetched_at ON ad_stats_raw (fetched_at);
