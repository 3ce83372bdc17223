ALTER TABLE sync_jobs DROP COLUMN report_run_id;
