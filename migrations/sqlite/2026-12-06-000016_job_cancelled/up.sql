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
-- The dashboard's job search by seller (and status) in keyset order, and the connections page's
-- "newest SUCCEEDED / FAILED record of this seller": one index seek each.
CREATE INDEX ix_sync_jobs_seller ON sync_jobs (seller_id, status, id);
