-- The provider's long-running report for this job (Meta: the async report run of each ad account,
-- as the provider writes it), kept while an attempt waits on it so a retried attempt polls the
-- same run instead of starting another. NULL: none started.
ALTER TABLE sync_jobs ADD COLUMN report_run_id TEXT;
