//! What an operator does to one job record from the dashboard, beside what the runtime does:
//! cancel a QUEUED record. (Retry of a FAILED record is [`super::jobs::requeue_failed`], which the
//! queue calls so it can hand the record to a worker.)
//!
//! Cancelling is one guarded UPDATE: a worker's claim is also a guarded UPDATE from QUEUED, so of
//! a claim and a cancel racing for the same record exactly one changes it; a record claimed
//! between the page and the click is left RUNNING.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::jobs::{get, CANCELLED, QUEUED};
use super::models::JobRecord;
use super::schema::sync_jobs::dsl as j;
use super::DbConn;
use crate::db_run;

/// What asking to cancel a record did.
#[derive(Debug, Clone, PartialEq)]
pub enum Cancel {
    /// The record is CANCELLED: it will never run. Its job id is free to be queued again.
    Cancelled(JobRecord),
    /// The record was not QUEUED (a worker claimed it, or it had finished); nothing changed.
    NotQueued(JobRecord),
    NotFound,
}

/// Moves a QUEUED record to CANCELLED, finished `now`. `last_error` stays: a retry waiting out
/// its backoff keeps the reason of its last failure on the record.
pub async fn cancel_queued(
    conn: &mut DbConn,
    record_id: i64,
    now: NaiveDateTime,
) -> QueryResult<Cancel> {
    let cancelled: Option<JobRecord> = db_run!(conn, {
        diesel::update(j::sync_jobs.find(record_id).filter(j::status.eq(QUEUED)))
            .set((
                j::status.eq(CANCELLED),
                j::locked_by.eq(None::<String>),
                j::finished_at.eq(now),
                j::updated_at.eq(now),
            ))
            .returning(JobRecord::as_returning())
            .get_result(conn)
            .await
            .optional()
    })?;
    if let Some(record) = cancelled {
        return Ok(Cancel::Cancelled(record));
    }
    Ok(match get(conn, record_id).await? {
        Some(record) => Cancel::NotQueued(record),
        None => Cancel::NotFound,
    })
}
