-- One row per cron mark: the instance whose INSERT of the mark wins ticks it. Also the tick history.
-- SQLite runs one process, so it always wins; the table keeps both backends alike.
CREATE TABLE scheduler_ticks (
    mark          TEXT PRIMARY KEY NOT NULL,
    instance      TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    -- Refreshed while the instance ticks: a slow tick by a live instance is not taken over.
    heartbeat_at  TEXT NOT NULL,
    sellers       INTEGER,
    enqueued      INTEGER,
    deduplicated  INTEGER
);
CREATE INDEX ix_scheduler_ticks_unfinished ON scheduler_ticks (heartbeat_at) WHERE finished_at IS NULL;
