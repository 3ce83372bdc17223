DROP INDEX IF EXISTS ix_sync_jobs_seller_failed;
DROP INDEX IF EXISTS ix_sync_jobs_seller;
-- The older check has no CANCELLED: those records (never run) go.
DELETE FROM sync_jobs WHERE status = 'CANCELLED';
ALTER TABLE sync_jobs DROP CONSTRAINT ck_sync_jobs_status;
ALTER TABLE sync_jobs ADD CONSTRAINT ck_sync_jobs_status
    CHECK (status IN ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED'));
