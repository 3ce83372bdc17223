-- CANCELLED: a QUEUED job an operator cancelled from the dashboard; terminal, never run. The
-- partial unique index uq_sync_jobs_active (job_id) WHERE status IN ('QUEUED', 'RUNNING') already
-- leaves it out, so the same job id can be queued again; only the status check needs widening.
--
-- SQLite cannot alter a CHECK constraint. Rather than rebuild the table (which would have to
-- name every column, and so drop any column another migration adds to sync_jobs), this edits the
-- stored CREATE TABLE text, the procedure SQLite documents for loosening a CHECK constraint
-- (https://sqlite.org/lang_altertable.html, "otherwise alter table"): widening the list changes
-- nothing on disk, and every existing row already passes. RESET reloads this connection's schema;
-- the CREATE INDEX below bumps the schema cookie, so every other open connection reloads too.
PRAGMA writable_schema = ON;
UPDATE sqlite_master
SET sql = replace(sql, '''SUCCEEDED'', ''FAILED'')', '''SUCCEEDED'', ''FAILED'', ''CANCELLED'')')
WHERE type = 'table' AND name = 'sync_jobs';
PRAGMA writable_schema = RESET;
-- The dashboard's job search by seller, read in keyset (id) order with the status in the index,
-- and the connections page's "newest SUCCEEDED record of this seller" (near the top of it). Not
-- (seller_id, status, id): the planner would then take it over ix_sync_jobs_manual_active for
-- the admission count of every manual sync, which must read the partial index alone.
CREATE INDEX ix_sync_jobs_seller ON sync_jobs (seller_id, id, status);
-- The connections page's "newest FAILED record of this seller": a seek, however long ago the
-- seller last failed. FAILED records are few, so this costs little to keep.
CREATE INDEX ix_sync_jobs_seller_failed ON sync_jobs (seller_id, id) WHERE status = 'FAILED';
