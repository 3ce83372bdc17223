ALTER TABLE ad_connections DROP COLUMN status_reason;
ALTER TABLE ad_connections DROP COLUMN currency;
