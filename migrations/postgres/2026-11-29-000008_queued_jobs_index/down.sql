DROP INDEX IF EXISTS ix_sync_jobs_queued_due;
