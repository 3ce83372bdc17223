ALTER TABLE sync_jobs DROP COLUMN trace_parent;
