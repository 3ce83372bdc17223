ALTER TABLE ad_connections DROP COLUMN account_read_due_at;
