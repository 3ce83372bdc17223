-- Raw rows, smaller and partitioned by day (issue 17, item 3).
--
-- A raw row drops what no query of ours reads: its `id` and every index (a job's fold reads the
-- rows its INSERT returns, the tests' reads are small scans, and retention drops whole days),
-- refers to its job by the record's integer id (`sync_jobs.id`) instead of the text job id, keeps
-- the six funnel counts in 4-byte integers (a count past 2^31 a day for one entity fails the
-- insert loudly; it is never truncated), and orders its columns so no byte goes to padding.
--
-- The table is partitioned by UTC day of `fetched_at`: the service creates each day's partition
-- a few days ahead (`ad_stats_raw_pYYYYMMDD`) and retention drops whole days. The DEFAULT
-- partition is a safety net: a row for a day without a partition (an old `fetched_at`, a clock
-- far ahead) lands there instead of failing the sync; the service moves such rows into the
-- day's partition when it creates it, and retention deletes old ones from it in batches.
--
-- Every existing row is copied. On a large table this migration runs for as long as the copy
-- takes, holding the old table's lock: plan it in a quiet hour.
ALTER TABLE ad_stats_raw RENAME TO ad_stats_raw_unpartitioned;
ALTER TABLE ad_stats_raw_unpartitioned RENAME CONSTRAINT ck_ad_stats_raw_level TO ck_ad_stats_raw_unpartitioned_level;

CREATE TABLE ad_stats_raw (
    fetched_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    job_record_id  BIGINT,
    spend_cents    BIGINT NOT NULL,
    revenue_cents  BIGINT NOT NULL,
    cpm            DOUBLE PRECISION NOT NULL,
    ctr            DOUBLE PRECISION NOT NULL,
    roas           DOUBLE PRECISION NOT NULL,
    impressions    INTEGER NOT NULL,
    clicks         INTEGER NOT NULL,
    content_views  INTEGER NOT NULL,
    add_to_cart    INTEGER NOT NULL,
    checkouts      INTEGER NOT NULL,
    purchases      INTEGER NOT NULL,
    stat_date      DATE NOT NULL,
    level          TEXT NOT NULL CONSTRAINT ck_ad_stats_raw_level CHECK (level IN ('CAMPAIGN', 'ADSET', 'AD')),
    seller_id      TEXT NOT NULL,
    entity_id      TEXT NOT NULL,
    provider       TEXT NOT NULL
) PARTITION BY RANGE (fetched_at);

CREATE TABLE ad_stats_raw_default PARTITION OF ad_stats_raw DEFAULT;

-- A partition for every day that has rows, through three days from now; rows older than 60 days
-- (past the default 35-day retention, or kept by a longer one) go to the DEFAULT partition, where
-- retention deletes them in batches, rather than making hundreds of partitions here.
DO $$
DECLARE
    today date := CAST(now() AT TIME ZONE 'UTC' AS date);
    day date;
BEGIN
    day := GREATEST(
        COALESCE((SELECT CAST(MIN(fetched_at) AT TIME ZONE 'UTC' AS date) FROM ad_stats_raw_unpartitioned), today),
        today - 60);
    WHILE day <= today + 3 LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF ad_stats_raw FOR VALUES FROM (%L) TO (%L)',
            'ad_stats_raw_p' || to_char(day, 'YYYYMMDD'),
            to_char(day, 'YYYY-MM-DD') || ' 00:00:00+00',
            to_char(day + 1, 'YYYY-MM-DD') || ' 00:00:00+00');
        day := day + 1;
    END LOOP;
END $$;

-- A row's job: the latest record of its job id created before the row was fetched (a job id
-- runs again once finished, each run its own record); none when the records are pruned.
INSERT INTO ad_stats_raw (fetched_at, job_record_id, spend_cents, revenue_cents, cpm, ctr, roas,
    impressions, clicks, content_views, add_to_cart, checkouts, purchases, stat_date, level,
    seller_id, entity_id, provider)
SELECT r.fetched_at,
       (SELECT MAX(j.id) FROM sync_jobs j WHERE j.job_id = r.job_id AND j.created_at <= r.fetched_at),
       r.spend_cents, r.revenue_cents, r.cpm, r.ctr, r.roas, r.impressions, r.clicks,
       r.content_views, r.add_to_cart, r.checkouts, r.purchases, r.stat_date, r.level,
       r.seller_id, r.entity_id, r.provider
FROM ad_stats_raw_unpartitioned r;

DROP TABLE ad_stats_raw_unpartitioned;
