ALTER TABLE ad_connections DROP COLUMN lookback_queued_on;
ALTER TABLE ad_connections DROP COLUMN paused_until;
ALTER TABLE ad_connections DROP COLUMN timezone;
ALTER TABLE ad_connections DROP COLUMN access_token_enc;
ALTER TABLE ads DROP COLUMN external_id;
ALTER TABLE adsets DROP COLUMN external_id;
ALTER TABLE campaigns DROP COLUMN external_id;
