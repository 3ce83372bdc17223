DROP INDEX IF EXISTS ix_sync_jobs_manual_active;
CREATE INDEX IF NOT EXISTS ix_sync_jobs_queued_due ON sync_jobs (run_at, id) WHERE status = 'QUEUED';
DROP INDEX IF EXISTS ix_sync_jobs_claim;
ALTER TABLE sync_jobs DROP COLUMN priority;
