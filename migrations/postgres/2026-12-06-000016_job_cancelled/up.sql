-- CANCELLED: a QUEUED job an operator cancelled from the dashboard; terminal, never run. The
-- partial unique index uq_sync_jobs_active (job_id) WHERE status IN ('QUEUED', 'RUNNING') already
-- leaves it out, so the same job id can be queued again; only the status check needs widening.
ALTER TABLE sync_jobs DROP CONSTRAINT ck_sync_jobs_status;
ALTER TABLE sync_jobs ADD CONSTRAINT ck_sync_jobs_status
    CHECK (status IN ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'));
-- The dashboard's job search by seller (and status) in keyset order, and the connections page's
-- "newest SUCCEEDED / FAILED record of this seller": one index seek each.
CREATE INDEX ix_sync_jobs_seller ON sync_jobs (seller_id, status, id);
