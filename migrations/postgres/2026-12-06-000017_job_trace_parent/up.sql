-- The W3C `traceparent` of the request that created this job (a manual sync, when traces are
-- exported: `telemetry.otlp_endpoint`), so the job's span continues that trace wherever and
-- whenever it runs. NULL: the job starts its own trace (scheduled jobs, traces off). Internal:
-- no API answer shows it.
ALTER TABLE sync_jobs ADD COLUMN trace_parent TEXT;
