-- Durable record of every sync job: the row is the truth, the in-process channel only carries ids.
CREATE TABLE sync_jobs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    -- sync__{sellerId}__{dateFrom}__{dateTo}__{level}; repeats across runs, unique while active.
    job_id         TEXT NOT NULL,
    seller_id      TEXT NOT NULL,
    level          TEXT NOT NULL CONSTRAINT ck_sync_jobs_level CHECK (level IN ('CAMPAIGN', 'ADSET', 'AD')),
    date_from      TEXT NOT NULL,
    date_to        TEXT NOT NULL,
    triggered_by   TEXT NOT NULL CONSTRAINT ck_sync_jobs_trigger CHECK (triggered_by IN ('SCHEDULE', 'MANUAL')),
    status         TEXT NOT NULL DEFAULT 'QUEUED'
                   CONSTRAINT ck_sync_jobs_status CHECK (status IN ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED')),
    attempts       INTEGER NOT NULL DEFAULT 0,
    max_attempts   INTEGER NOT NULL,
    last_error     TEXT,
    -- Not before this time (retry backoff).
    run_at         TEXT NOT NULL,
    -- The process running it, and when that process last showed it was alive.
    locked_by      TEXT,
    heartbeat_at   TEXT,
    entities       INTEGER,
    raw_rows       INTEGER,
    daily_rows     INTEGER,
    sellpage_rows  INTEGER,
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    started_at     TEXT,
    finished_at    TEXT,
    updated_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
-- At most one active job per job id, however many enqueues race.
CREATE UNIQUE INDEX uq_sync_jobs_active ON sync_jobs (job_id) WHERE status IN ('QUEUED', 'RUNNING');
CREATE INDEX ix_sync_jobs_status_run_at ON sync_jobs (status, run_at);
CREATE INDEX ix_sync_jobs_job_id ON sync_jobs (job_id, id);
CREATE INDEX ix_sync_jobs_finished_at ON sync_jobs (finished_at);
