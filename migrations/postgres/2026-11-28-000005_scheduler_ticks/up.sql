-- One row per cron mark, cluster-wide: the instance whose INSERT of the mark wins ticks it. Also the
-- tick history. A row left unfinished by an instance that died is taken over by another.
CREATE TABLE scheduler_ticks (
    mark          TIMESTAMPTZ PRIMARY KEY,
    -- The instance ticking it (the last one, when it was taken over).
    instance      TEXT NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ,
    -- Refreshed while the instance ticks: a slow tick by a live instance is not taken over.
    heartbeat_at  TIMESTAMPTZ NOT NULL,
    sellers       BIGINT,
    enqueued      BIGINT,
    deduplicated  BIGINT
);
-- Instances look for abandoned ticks every few seconds; only unfinished ones are of interest.
CREATE INDEX ix_scheduler_ticks_unfinished ON scheduler_ticks (heartbeat_at) WHERE finished_at IS NULL;
