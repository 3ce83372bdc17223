-- SQLite twin of migrations/postgres: same names; dates and UTC timestamps are stored as text.
-- The stats schema. Table, column and constraint names are a contract: other parts of the platform
-- and outside tools query them. Ids are text (UUID strings from whoever inserts), money is whole
-- cents, ratios are double precision, timestamps are UTC.

CREATE TABLE sellers (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'ACTIVE'
                CONSTRAINT ck_sellers_status CHECK (status IN ('ACTIVE', 'SUSPENDED')),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX ix_sellers_status ON sellers (status);

CREATE TABLE ad_connections (
    id                   TEXT PRIMARY KEY,
    seller_id            TEXT NOT NULL REFERENCES sellers (id),
    provider             TEXT NOT NULL DEFAULT 'META',
    external_account_id  TEXT NOT NULL,
    status               TEXT NOT NULL DEFAULT 'ACTIVE'
                         CONSTRAINT ck_ad_connections_status CHECK (status IN ('ACTIVE', 'REVOKED', 'EXPIRED')),
    created_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX ix_ad_connections_seller_status ON ad_connections (seller_id, status);

CREATE TABLE sellpages (
    id          TEXT PRIMARY KEY,
    seller_id   TEXT NOT NULL REFERENCES sellers (id),
    slug        TEXT NOT NULL,
    title       TEXT NOT NULL,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX ix_sellpages_seller ON sellpages (seller_id);

CREATE TABLE campaigns (
    id                  TEXT PRIMARY KEY,
    seller_id           TEXT NOT NULL REFERENCES sellers (id),
    connection_id       TEXT NOT NULL REFERENCES ad_connections (id),
    sellpage_id         TEXT REFERENCES sellpages (id),
    name                TEXT NOT NULL,
    status              TEXT NOT NULL DEFAULT 'ACTIVE'
                        CONSTRAINT ck_campaigns_status CHECK (status IN ('ACTIVE', 'PAUSED', 'ARCHIVED')),
    daily_budget_cents  INTEGER NOT NULL
                        CONSTRAINT ck_campaigns_budget CHECK (daily_budget_cents >= 0),
    created_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX ix_campaigns_seller_status ON campaigns (seller_id, status);
CREATE INDEX ix_campaigns_connection ON campaigns (connection_id);
CREATE INDEX ix_campaigns_sellpage ON campaigns (sellpage_id);

CREATE TABLE adsets (
    id                  TEXT PRIMARY KEY,
    seller_id           TEXT NOT NULL,
    campaign_id         TEXT NOT NULL REFERENCES campaigns (id),
    name                TEXT NOT NULL,
    status              TEXT NOT NULL DEFAULT 'ACTIVE'
                        CONSTRAINT ck_adsets_status CHECK (status IN ('ACTIVE', 'PAUSED', 'ARCHIVED')),
    daily_budget_cents  INTEGER
                        CONSTRAINT ck_adsets_budget CHECK (daily_budget_cents >= 0),
    created_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX ix_adsets_campaign_status ON adsets (campaign_id, status);
CREATE INDEX ix_adsets_seller ON adsets (seller_id);

CREATE TABLE ads (
    id          TEXT PRIMARY KEY,
    seller_id   TEXT NOT NULL,
    adset_id    TEXT NOT NULL REFERENCES adsets (id),
    name        TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'ACTIVE'
                CONSTRAINT ck_ads_status CHECK (status IN ('ACTIVE', 'PAUSED', 'ARCHIVED')),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX ix_ads_adset_status ON ads (adset_id, status);
CREATE INDEX ix_ads_seller ON ads (seller_id);

-- Append-only: one row per entity, date and sync.
CREATE TABLE ad_stats_raw (
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
CREATE INDEX ix_ad_stats_raw_level_entity_date ON ad_stats_raw (level, entity_id, stat_date);
CREATE INDEX ix_ad_stats_raw_seller_date ON ad_stats_raw (seller_id, stat_date);
-- Lets a sync fold exactly its own batch into the daily table, however many batches the day has.
CREATE INDEX ix_ad_stats_raw_job_batch ON ad_stats_raw (job_id, fetched_at);

CREATE TABLE ad_stats_daily (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    seller_id      TEXT NOT NULL,
    level          TEXT NOT NULL CONSTRAINT ck_ad_stats_daily_level CHECK (level IN ('CAMPAIGN', 'ADSET', 'AD')),
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
    raw_count      INTEGER NOT NULL,
    updated_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE UNIQUE INDEX uq_ad_stats_daily ON ad_stats_daily (level, entity_id, stat_date);
CREATE INDEX ix_ad_stats_daily_seller_date ON ad_stats_daily (seller_id, stat_date);

CREATE TABLE sellpage_stats_daily (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    seller_id       TEXT NOT NULL,
    sellpage_id     TEXT NOT NULL,
    stat_date       TEXT NOT NULL,
    ad_spend_cents  INTEGER NOT NULL,
    impressions     INTEGER NOT NULL,
    clicks          INTEGER NOT NULL,
    content_views   INTEGER NOT NULL,
    add_to_cart     INTEGER NOT NULL,
    checkouts       INTEGER NOT NULL,
    purchases       INTEGER NOT NULL,
    revenue_cents   INTEGER NOT NULL,
    cpm             REAL NOT NULL,
    ctr             REAL NOT NULL,
    roas            REAL NOT NULL,
    campaign_count  INTEGER NOT NULL,
    updated_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE UNIQUE INDEX uq_sellpage_stats_daily ON sellpage_stats_daily (sellpage_id, stat_date);
CREATE INDEX ix_sellpage_stats_daily_seller_date ON sellpage_stats_daily (seller_id, stat_date);
