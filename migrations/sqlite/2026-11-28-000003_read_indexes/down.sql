CREATE INDEX ix_sellpage_stats_daily_seller_date ON sellpage_stats_daily (seller_id, stat_date);
DROP INDEX ix_sellpage_stats_daily_seller_date_page;
CREATE INDEX ix_ad_stats_daily_seller_date ON ad_stats_daily (seller_id, stat_date);
DROP INDEX ix_ad_stats_daily_seller_level_date_entity;
