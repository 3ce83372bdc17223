//! Job records in `sync_jobs`. Every state change is one guarded UPDATE, so a record can only move
//! along QUEUED → RUNNING → SUCCEEDED | FAILED (or back to QUEUED for a retry) by the process that
//! holds it, or QUEUED → CANCELLED by an operator (`job_actions.rs`).
//!
//! One file per step of the lifecycle: `enqueue`, `claim`, `finish`, `lease` (heartbeat and
//! rescue), `requeue` (the operator's retry) and `listings` (what the dashboard reads). This file
//! holds what they share: the statuses, the lease, and the look-ups by id.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::models::JobRecord;
use super::schema::sync_jobs::dsl as j;
use super::DbConn;
use crate::db_run;

pub const QUEUED: &str = "QUEUED";
pub const RUNNING: &str = "RUNNING";
pub const SUCCEEDED: &str = "SUCCEEDED";
pub const FAILED: &str = "FAILED";
/// Cancelled by an operator while QUEUED: terminal, never run, outside the dedup index.
pub const CANCELLED: &str = "CANCELLED";

/// Rows one successful run wrote, kept on its record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowsWritten {
    pub entities: i64,
    pub raw: i64,
    pub daily: i64,
    pub sellpage: i64,
}

/// Who holds a RUNNING record: the process and the attempt it claimed.
#[derive(Debug, Clone)]
pub struct Lease {
    pub record_id: i64,
    pub worker: String,
    pub attempt: i32,
}

/// The record as long as this lease still holds it.
macro_rules! leased {
    ($lease:expr) => {
        j::sync_jobs
            .find($lease.record_id)
            .filter(j::status.eq(RUNNING))
            .filter(j::locked_by.eq($lease.worker.as_str()))
            .filter(j::attempts.eq($lease.attempt))
    };
}

/// The columns of [`JobRecord`] after `id`, named: a prepared statement returning `*` would fail
/// on every pooled connection once a migration added a column ("cached plan must not change
/// result type").
macro_rules! job_columns_after_id {
    () => {
        "job_id, seller_id, level, date_from, date_to, triggered_by, status, attempts, \
         max_attempts, last_error, run_at, locked_by, heartbeat_at, entities, raw_rows, daily_rows, \
         sellpage_rows, created_at, started_at, finished_at, updated_at, priority, trace_parent, report_run_id"
    };
}

// After the macros: a `macro_rules!` is visible only in modules declared below it.
mod claim;
mod enqueue;
mod finish;
mod lease;
mod listings;
mod requeue;

pub use claim::{claim, claim_due, claim_next, due};
pub use enqueue::{enqueue, enqueue_many, enqueue_many_traced, RecordedJob};
pub use finish::{
    commit_without_waiting_for_flush, defer, mark_attempt_failed, mark_many_succeeded,
    mark_succeeded, prune, release,
};
pub use lease::{heartbeat, rescue_orphans};
pub use listings::{active_counts, all, failed, newest, status_counts, StatusCounts};
pub use requeue::{requeue_failed, Requeue};

/// The QUEUED or RUNNING record with this job id, if any.
pub async fn active(conn: &mut DbConn, job_id: &str) -> QueryResult<Option<JobRecord>> {
    db_run!(conn, {
        j::sync_jobs
            .filter(j::job_id.eq(job_id))
            .filter(j::status.eq_any([QUEUED, RUNNING]))
            .select(JobRecord::as_select())
            .first(conn)
            .await
            .optional()
    })
}

/// The newest record with this job id, if any.
pub async fn latest(conn: &mut DbConn, job_id: &str) -> QueryResult<Option<JobRecord>> {
    db_run!(conn, {
        j::sync_jobs
            .filter(j::job_id.eq(job_id))
            .order(j::id.desc())
            .select(JobRecord::as_select())
            .first(conn)
            .await
            .optional()
    })
}

pub async fn get(conn: &mut DbConn, record_id: i64) -> QueryResult<Option<JobRecord>> {
    db_run!(conn, {
        j::sync_jobs
            .find(record_id)
            .select(JobRecord::as_select())
            .first(conn)
            .await
            .optional()
    })
}
