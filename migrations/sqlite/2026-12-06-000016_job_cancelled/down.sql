-- The older check has no CANCELLED: those records (never run) go.
DELETE FROM sync_jobs WHERE status = 'CANCELLED';
PRAGMA writable_schema = ON;
UPDATE sqlite_master
SET sql = replace(sql, '''SUCCEEDED'', ''FAILED'', ''CANCELLED'')', '''SUCCEEDED'', ''FAILED'')')
WHERE type = 'table' AND name = 'sync_jobs';
PRAGMA writable_schema = RESET;
-- Dropping the indexes bumps the schema cookie: other connections reload the narrower check.
DROP INDEX IF EXISTS ix_sync_jobs_seller_failed;
DROP INDEX IF EXISTS ix_sync_jobs_seller;
