-- Claims and the sweeper take the oldest due QUEUED jobs (ORDER BY run_at, id). Without this the
-- database sorts every QUEUED record for each claim: a tick of 30,000 jobs made each claim read
-- all of them. Only QUEUED records are in it, so it stays as small as the backlog.
CREATE INDEX IF NOT EXISTS ix_sync_jobs_queued_due ON sync_jobs (run_at, id) WHERE status = 'QUEUED';
