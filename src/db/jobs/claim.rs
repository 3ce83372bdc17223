//! Claiming: QUEUED → RUNNING for one worker, in claim order (class, then `run_at`, then id),
//! and the due records the sweeper hands the workers again.

use chrono::NaiveDateTime;
use diesel::dsl::now as db_now;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};
use diesel_async::RunQueryDsl;

use super::{RecordedJob, QUEUED, RUNNING};
use crate::db::models::JobRecord;
use crate::db::schema::sync_jobs::dsl as j;
use crate::db::DbConn;
use crate::db_run;

/// Moves a QUEUED record that is due to RUNNING for `worker`, counting the attempt. `None` when the
/// record is no longer QUEUED (another worker took it, or it was already done) or not due yet (a
/// retry waiting out its backoff, delivered again early: it must not burn an attempt).
///
/// Leases are measured on the database's clock (see [`rescue_orphans`](super::rescue_orphans)):
/// on PostgreSQL the heartbeat starts at its `CURRENT_TIMESTAMP`; on SQLite the process clock is
/// the database clock.
pub async fn claim(
    conn: &mut DbConn,
    record_id: i64,
    worker: &str,
) -> QueryResult<Option<JobRecord>> {
    db_run!(conn, postgres {
        crate::db::prepared(
            diesel::update(
                j::sync_jobs
                    .find(record_id)
                    .filter(j::status.eq(QUEUED))
                    .filter(j::run_at.le(db_now)),
            )
            .set((
                j::status.eq(RUNNING),
                j::attempts.eq(j::attempts + 1),
                j::locked_by.eq(worker),
                j::heartbeat_at.eq(db_now.nullable()),
                j::started_at.eq(db_now.nullable()),
                j::updated_at.eq(db_now),
            ))
            .returning(JobRecord::as_returning()),
        )
        .get_result(conn)
        .await
        .optional()
    }, sqlite {
        let now = crate::db::now_utc();
        diesel::update(
            j::sync_jobs
                .find(record_id)
                .filter(j::status.eq(QUEUED))
                .filter(j::run_at.le(now)),
        )
        .set((
            j::status.eq(RUNNING),
            j::attempts.eq(j::attempts + 1),
            j::locked_by.eq(worker),
            j::heartbeat_at.eq(now),
            j::started_at.eq(now),
            j::updated_at.eq(now),
        ))
        .returning(JobRecord::as_returning())
        .get_result(conn)
        .await
        .optional()
    })
}

// SKIP LOCKED: claimers on several instances each take different rows instead of queueing behind
// one another's row locks. The rows are picked in a MATERIALIZED CTE, evaluated exactly once: as
// `WHERE id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)` the planner may run the subquery again
// per row and claim far more than `n` (seen in the outage test: 595 RUNNING at concurrency 5).
// The order is the claim order (class, then run_at, then id): the partial index
// ix_sync_jobs_claim (priority, run_at, id) WHERE status = 'QUEUED' serves it as one Index Scan
// read in order and stopped after `n` due rows, no Sort (EXPLAIN-checked by the fair_queue test).
// The status literal must stay a literal: a bound parameter would not match the index predicate.
const CLAIM_DUE: &str = concat!(
    "WITH picked AS MATERIALIZED ( \
        SELECT id FROM sync_jobs \
        WHERE status = 'QUEUED' AND run_at <= CURRENT_TIMESTAMP \
        ORDER BY priority, run_at, id \
        LIMIT $1 \
        FOR UPDATE SKIP LOCKED) \
    UPDATE sync_jobs \
    SET status = 'RUNNING', attempts = attempts + 1, locked_by = $2, \
        heartbeat_at = CURRENT_TIMESTAMP, started_at = CURRENT_TIMESTAMP, updated_at = CURRENT_TIMESTAMP \
    FROM picked \
    WHERE sync_jobs.id = picked.id AND sync_jobs.status = 'QUEUED' \
    RETURNING sync_jobs.id, ",
    job_columns_after_id!()
);

/// PostgreSQL only: claims up to `limit` due QUEUED records for `worker` in one statement, whoever
/// enqueued them, so any instance with free slots runs any job. Rows another claimer holds are
/// skipped, never waited for. `None` on SQLite, where one process owns the file and the
/// in-process channel delivers every job.
pub async fn claim_due(
    conn: &mut DbConn,
    worker: &str,
    limit: i64,
) -> QueryResult<Option<Vec<JobRecord>>> {
    match conn {
        DbConn::Postgres(conn) => {
            let conn: &mut crate::db::PgConn = conn;
            let mut claimed: Vec<JobRecord> = crate::db::prepared(
                diesel::sql_query(CLAIM_DUE)
                    .bind::<BigInt, _>(limit)
                    .bind::<Text, _>(worker),
            )
            .load(conn)
            .await?;
            // RETURNING gives no order; start them in claim order.
            claimed.sort_by_key(|r| (r.priority, r.run_at, r.id));
            Ok(Some(claimed))
        }
        DbConn::Sqlite(_) => Ok(None),
    }
}

// SQLite: the same order through the same partial index (the status literal again). `$2` is the
// time read inside the write transaction, so `started_at` orders claims as they happened.
const CLAIM_NEXT_SQLITE: &str = concat!(
    "UPDATE sync_jobs \
     SET status = 'RUNNING', attempts = attempts + 1, locked_by = $1, \
         heartbeat_at = $2, started_at = $2, updated_at = $2 \
     WHERE id = (SELECT id FROM sync_jobs \
                 WHERE status = 'QUEUED' AND run_at <= $2 \
                 ORDER BY priority, run_at, id \
                 LIMIT 1) \
       AND status = 'QUEUED' \
     RETURNING id, ",
    job_columns_after_id!()
);

/// Claims the next due QUEUED record for `worker`, whichever it is: the lowest class first (see
/// the jobs module's `Priority`), then the earliest `run_at`, then the lowest id. `None` when no
/// record is due. Workers claim this way rather than by the id they were handed, so a backfill
/// queued first never runs ahead of a scheduled job or of a sync a person is waiting for.
pub async fn claim_next(conn: &mut DbConn, worker: &str) -> QueryResult<Option<JobRecord>> {
    if let DbConn::Postgres(_) = conn {
        let claimed = claim_due(conn, worker, 1).await?.unwrap_or_default();
        return Ok(claimed.into_iter().next());
    }
    // The time is read after BEGIN IMMEDIATE took the write lock: claims waiting for the lock
    // then get times in the order they claim.
    conn.transaction(async |conn: &mut DbConn| {
        let now = crate::db::now_utc();
        let claimed: Vec<JobRecord> = db_run!(conn, {
            diesel::sql_query(CLAIM_NEXT_SQLITE)
                .bind::<Text, _>(worker)
                .bind::<Timestamp, _>(now)
                .load(conn)
                .await
        })?;
        Ok(claimed.into_iter().next())
    })
    .await
}

// The status literal lets both backends read ix_sync_jobs_claim in order (see CLAIM_DUE).
const DUE: &str = "\
    SELECT id, job_id FROM sync_jobs \
    WHERE status = 'QUEUED' AND run_at <= $1 \
    ORDER BY priority, run_at, id \
    LIMIT $2";

/// QUEUED records whose time has come, in claim order (class, then `run_at`, then id).
pub async fn due(conn: &mut DbConn, now: NaiveDateTime, limit: i64) -> QueryResult<Vec<i64>> {
    let rows: Vec<RecordedJob> = db_run!(conn, {
        diesel::sql_query(DUE)
            .bind::<Timestamp, _>(now)
            .bind::<BigInt, _>(limit)
            .load(conn)
            .await
    })?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_appear_in_bind_order() {
        crate::db::assert_placeholders_in_order(super::CLAIM_DUE);
        crate::db::assert_placeholders_in_order(super::CLAIM_NEXT_SQLITE);
        crate::db::assert_placeholders_in_order(super::DUE);
    }
}
