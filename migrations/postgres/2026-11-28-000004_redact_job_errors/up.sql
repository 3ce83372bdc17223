-- Job records written before error texts were made safe may hold raw database or provider
-- messages, and sellers read `last_error` through the job status API. Replace them with a fixed
-- text; the details stay in the service log of the day.
UPDATE sync_jobs
SET last_error = 'the sync failed (details are in the service log)'
WHERE last_error IS NOT NULL
  AND last_error NOT LIKE 'the %'
  AND last_error NOT LIKE 'timed out after %';
