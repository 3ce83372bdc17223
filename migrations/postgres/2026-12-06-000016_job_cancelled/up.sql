-- CANCELLED: a QUEUED job an operator cancelled from the dashboard; terminal, never run. The
-- partial unique index uq_sync_jobs_active (job_id) WHERE status IN ('QUEUED', 'RUNNING') already
-- leaves it out, so the same job id can be queued again; only the status check needs widening.
ALTER TABLE sync_jobs DROP CONSTRAINT ck_sync_jobs_status;
ALTER TABLE sync_jobs ADD CONSTRAINT ck_sync_jobs_status
    CHECK (status IN ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'));
-- The dashboard's job search by seller, read in keyset (id) order with the status in the index,
-- and the connections page's "newest SUCCEEDED record of this seller" (near the top of it). Not
-- (seller_id, status, id): the planner would then take it over ix_sync_jobs_manual_active for
-- the admission count of every manual sync, which must read the partial index alone.
CREATE INDEX ix_sync_jobs_seller ON sync_jobs (seller_id, id, status);
-- The connections page's "newest FAILED record of this seller": a seek, however long ago the
-- seller last failed. FAILED records are few, so this costs little to keep.
CREATE INDEX ix_sync_jobs_seller_failed ON sync_jobs (seller_id, id) WHERE status = 'FAILED';
