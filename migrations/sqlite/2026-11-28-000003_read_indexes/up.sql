-- The stats read API pages a seller's rows in (date, entity) order for one level, and sums them
-- per entity: both are range scans of this index. It also serves the sellpage rollup (seller,
-- CAMPAIGN, dates), so the narrower (seller_id, stat_date) index it replaces is not needed.
CREATE INDEX ix_ad_stats_daily_seller_level_date_entity
    ON ad_stats_daily (seller_id, level, stat_date, entity_id);
DROP INDEX ix_ad_stats_daily_seller_date;

-- Sellpage rows are paged in (date, sellpage) order per seller.
CREATE INDEX ix_sellpage_stats_daily_seller_date_page
    ON sellpage_stats_daily (seller_id, stat_date, sellpage_id);
DROP INDEX ix_sellpage_stats_daily_seller_date;
