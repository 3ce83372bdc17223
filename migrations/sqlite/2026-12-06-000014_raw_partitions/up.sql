-- Raw rows, smaller (issue 17, item 3; SQLite has no partitions: retention keeps deleting in
-- batches). A raw row keeps one index, on `fetched_at`, for the retention's batched deletes; a
-- job's fold finds its rows by rowid (those its INSERT added, in the same transaction), and the
-- tests' reads are small scans. It refers to its job by the record's integer id
-- (`sync_jobs.id`) instead of the text job id. Every existing row is copied, ids kept.
CREATE TABLE ad_stats_raw_new (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    seller_id      TEXT NOT NULL,
    level          TEXT NOT NULL CONSTRAINT ck_ad_stats_raw_level CHECK (level IN ('CAMPAIGN', 'ADSET', 'AD')),
    entity_id      TEXT NOT NULL,
    stat_date      TEXT NOT NULL,
    spend_cents    INTEGER NOT NULL,
    impressions    INTEGER NOT NULL,
    clicks         INTEGER NOT NULL,
    content_views  INTEGER NOT NULL,
    add_to_cart    INTEGER NOT NULL,
    checkouts      INTEGER NOT NULL,
    purchases      INTEGER NOT NULL,
    revenue_cents  INTEGER NOT NULL,
    cpm            REAL NOT NULL,
    ctr            REAL NOT NULL,
    roas           REAL NOT NULL,
    provider       TEXT NOT NULL,
    job_record_id  INTEGER,
    fetched_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);

-- A row's job: the latest record of its job id created before the row was fetched (a job id
-- runs again once finished, each run its own record); none when the records are pruned.
INSERT INTO ad_stats_raw_new (id, seller_id, level, entity_id, stat_date, spend_cents, impressions,
    clicks, content_views, add_to_cart, checkouts, purchases, revenue_cents, cpm, ctr, roas,
    provider, job_record_id, fetched_at)
SELECT r.id, r.seller_id, r.level, r.entity_id, r.stat_date, r.spend_cents, r.impressions,
       r.clicks, r.content_views, r.add_to_cart, r.checkouts, r.purchases, r.revenue_cents,
       r.cpm, r.ctr, r.roas, r.provider,
       (SELECT MAX(j.id) FROM sync_jobs j WHERE j.job_id = r.job_id AND j.created_at <= r.fetched_at),
       r.fetched_at
FROM ad_stats_raw r;

DROP TABLE ad_stats_raw;
ALTER TABLE ad_stats_raw_new RENAME TO ad_stats_raw;
CREATE INDEX ix_ad_stats_raw_fetched_at ON ad_stats_raw (fetched_at);
