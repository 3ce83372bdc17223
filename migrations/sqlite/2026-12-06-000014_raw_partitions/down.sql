-- Back to the text job id and the four indexes of before.
CREATE TABLE ad_stats_raw_old (
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
    job_id         TEXT,
    fetched_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
INSERT INTO ad_stats_raw_old (id, seller_id, level, entity_id, stat_date, spend_cents, impressions,
    clicks, content_views, add_to_cart, checkouts, purchases, revenue_cents, cpm, ctr, roas,
    provider, job_id, fetched_at)
SELECT r.id, r.seller_id, r.level, r.entity_id, r.stat_date, r.spend_cents, r.impressions,
       r.clicks, r.content_views, r.add_to_cart, r.checkouts, r.purchases, r.revenue_cents,
       r.cpm, r.ctr, r.roas, r.provider, j.job_id, r.fetched_at
FROM ad_stats_raw r LEFT JOIN sync_jobs j ON j.id = r.job_record_id;
DROP TABLE ad_stats_raw;
ALTER TABLE ad_stats_raw_old RENAME TO ad_stats_raw;
CREATE INDEX ix_ad_stats_raw_level_entity_date ON ad_stats_raw (level, entity_id, stat_date);
CREATE INDEX ix_ad_stats_raw_seller_date ON ad_stats_raw (seller_id, stat_date);
CREATE INDEX ix_ad_stats_raw_job_batch ON ad_stats_raw (job_id, fetched_at);
CREATE INDEX ix_ad_stats_raw_fetched_at ON ad_stats_raw (fetched_at);
