ALTER TABLE sellpage_stats_daily DROP COLUMN currency;
ALTER TABLE ad_connections DROP COLUMN account_read_due_at;
