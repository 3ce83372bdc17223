//! An operator's "run it again" for a FAILED record.

use chrono::NaiveDateTime;
use diesel::result::QueryResult;
use diesel::sql_types::{BigInt, Timestamp};
use diesel_async::RunQueryDsl;

use super::{active, get, FAILED};
use crate::db::models::JobRecord;
use crate::db::DbConn;
use crate::db_run;

/// What asking to run a FAILED record again did.
#[derive(Debug, Clone, PartialEq)]
pub enum Requeue {
    /// The record is QUEUED again with its attempts reset.
    Requeued(JobRecord),
    /// Another record with the same job id is QUEUED or RUNNING: that one will do the work.
    AlreadyActive(JobRecord),
    /// The record is not FAILED (any more); nothing changed.
    NotFailed(JobRecord),
    NotFound,
}

// The NOT EXISTS keeps the partial unique index's promise (one active record per job id) without
// relying on the constraint error; the error still settles a race on PostgreSQL (see below).
const REQUEUE_FAILED: &str = "\
    UPDATE sync_jobs \
    SET status = 'QUEUED', attempts = 0, locked_by = NULL, heartbeat_at = NULL, \
        finished_at = NULL, run_at = $1, updated_at = $1 \
    WHERE id = $2 AND status = 'FAILED' \
      AND NOT EXISTS (SELECT 1 FROM sync_jobs a \
                      WHERE a.job_id = sync_jobs.job_id AND a.status IN ('QUEUED', 'RUNNING')) \
    RETURNING *";

/// Puts a FAILED record back to QUEUED, due now, with a full set of attempts; `last_error` stays
/// until the next run replaces or clears it. The same record runs again rather than a new one so
/// that the failure leaves the FAILED list and the job's history stays one row.
pub async fn requeue_failed(
    conn: &mut DbConn,
    record_id: i64,
    now: NaiveDateTime,
) -> QueryResult<Requeue> {
    use diesel::result::{DatabaseErrorKind, Error};
    // An active record can finish between the UPDATE and the look-ups; then try again.
    for _ in 0..5 {
        let updated: QueryResult<Vec<JobRecord>> = db_run!(conn, {
            diesel::sql_query(REQUEUE_FAILED)
                .bind::<Timestamp, _>(now)
                .bind::<BigInt, _>(record_id)
                .load(conn)
                .await
        });
        match updated {
            Ok(rows) => {
                if let Some(record) = rows.into_iter().next() {
                    return Ok(Requeue::Requeued(record));
                }
            }
            // On PostgreSQL a record with the same job id can become active between the NOT
            // EXISTS and the write; the unique index then refuses it: "already active".
            Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {}
            Err(e) => return Err(e),
        }
        let Some(record) = get(conn, record_id).await? else {
            return Ok(Requeue::NotFound);
        };
        if record.status != FAILED {
            return Ok(Requeue::NotFailed(record));
        }
        if let Some(active) = active(conn, &record.job_id).await? {
            return Ok(Requeue::AlreadyActive(active));
        }
    }
    Err(Error::QueryBuilderError(
        format!("job record {record_id} kept changing while it was being requeued").into(),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_appear_in_bind_order() {
        crate::db::assert_placeholders_in_order(super::REQUEUE_FAILED);
    }
}
