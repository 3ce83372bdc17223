//! What the dashboard, `/health` and tools read about the records: counts and listings.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::{FAILED, QUEUED, RUNNING};
use crate::db::models::JobRecord;
use crate::db::schema::sync_jobs::dsl as j;
use crate::db::DbConn;
use crate::db_run;

/// (QUEUED, RUNNING) record counts.
pub async fn active_counts(conn: &mut DbConn) -> QueryResult<(i64, i64)> {
    db_run!(conn, {
        let rows: Vec<(String, i64)> = j::sync_jobs
            .filter(j::status.eq_any([QUEUED, RUNNING]))
            .group_by(j::status)
            .select((j::status, diesel::dsl::count_star()))
            .load(conn)
            .await?;
        let count = |s: &str| rows.iter().find(|(st, _)| st == s).map_or(0, |(_, n)| *n);
        Ok((count(QUEUED), count(RUNNING)))
    })
}

/// Every record, oldest first (tests and tools).
pub async fn all(conn: &mut DbConn) -> QueryResult<Vec<JobRecord>> {
    db_run!(conn, {
        j::sync_jobs
            .order(j::id)
            .select(JobRecord::as_select())
            .load(conn)
            .await
    })
}

/// Counts of the statuses an operator acts on, for the dashboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts {
    pub queued: i64,
    pub running: i64,
    pub failed: i64,
}

/// QUEUED, RUNNING and FAILED record counts in one grouped query. SUCCEEDED is left out on
/// purpose: it is nearly every record (a tick per 5 minutes, `jobs.retention` of them), and
/// counting it would cost a scan that grows with retention; the three counted are few and served
/// by the (status, run_at) index.
pub async fn status_counts(conn: &mut DbConn) -> QueryResult<StatusCounts> {
    db_run!(conn, {
        let rows: Vec<(String, i64)> = j::sync_jobs
            .filter(j::status.eq_any([QUEUED, RUNNING, FAILED]))
            .group_by(j::status)
            .select((j::status, diesel::dsl::count_star()))
            .load(conn)
            .await?;
        let count = |s: &str| rows.iter().find(|(st, _)| st == s).map_or(0, |(_, n)| *n);
        Ok(StatusCounts {
            queued: count(QUEUED),
            running: count(RUNNING),
            failed: count(FAILED),
        })
    })
}

/// The `limit` newest records, newest first (read backwards along the primary key).
pub async fn newest(conn: &mut DbConn, limit: i64) -> QueryResult<Vec<JobRecord>> {
    db_run!(conn, {
        j::sync_jobs
            .order(j::id.desc())
            .select(JobRecord::as_select())
            .limit(limit)
            .load(conn)
            .await
    })
}

/// FAILED records, most recently finished first, at most `limit`.
pub async fn failed(conn: &mut DbConn, limit: i64) -> QueryResult<Vec<JobRecord>> {
    db_run!(conn, {
        j::sync_jobs
            .filter(j::status.eq(FAILED))
            .order((j::finished_at.desc(), j::id.desc()))
            .select(JobRecord::as_select())
            .limit(limit)
            .load(conn)
            .await
    })
}
