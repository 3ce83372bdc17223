-- The claim class of a job: claims take the lowest class first, then the earliest run_at, then
-- the lowest id. 1: a manual sync touching the seller's local today or yesterday (a person is
-- waiting); 2: scheduled jobs; 3: backfills (manual syncs of older dates). A retry keeps its class.
ALTER TABLE sync_jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 2
    CONSTRAINT ck_sync_jobs_priority CHECK (priority IN (1, 2, 3));
-- Existing manual records: the seller's zone is not on the record, but a local today or yesterday
-- is never more than two days before the UTC date the record was created on, so this never
-- demotes a sync a person is waiting for (it may promote one of the day before: harmless).
UPDATE sync_jobs
SET priority = CASE WHEN date_to >= date(created_at, '-2 days') THEN 1 ELSE 3 END
WHERE triggered_by = 'MANUAL';
-- The claim: ORDER BY priority, run_at, id LIMIT 1 over QUEUED records reads this index in order
-- and stops at the first due row (no temporary B-tree for the ORDER BY). It replaces the
-- (run_at, id) index of migration 000008, which nothing orders by any more.
CREATE INDEX ix_sync_jobs_claim ON sync_jobs (priority, run_at, id) WHERE status = 'QUEUED';
DROP INDEX IF EXISTS ix_sync_jobs_queued_due;
-- jobs.max_active_per_seller counts a seller's active manual records at every manual sync.
CREATE INDEX ix_sync_jobs_manual_active ON sync_jobs (seller_id)
    WHERE triggered_by = 'MANUAL' AND status IN ('QUEUED', 'RUNNING');
