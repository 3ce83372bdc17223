-- The sweeper deletes raw rows fetched before the retention cut-off, a few thousand at a time:
-- each batch is one range scan of this index instead of a scan of the whole table.
CREATE INDEX ix_ad_stats_raw_fetched_at ON ad_stats_raw (fetched_at);
