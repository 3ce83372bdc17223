//! What a manual sync may add to the queue: the per-seller count behind
//! `jobs.max_active_per_seller`, the lock that makes its check-and-insert race-free, and the raise
//! of a queued job's class when a person asks for it.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};
use diesel_async::RunQueryDsl;

use super::jobs::{QUEUED, RUNNING};
use super::schema::sync_jobs::dsl as j;
use super::DbConn;
use crate::db_run;

/// The first key of the transaction-scoped advisory lock a seller's manual enqueues take
/// ("jobs" in ASCII). Two-key locks never collide with the one-key migration lock.
const SELLER_LOCK_SPACE: i32 = 0x6a6f_6273;

/// Inside a transaction: waits until no other transaction is admitting manual jobs for `seller`,
/// so that counting the seller's active jobs and recording new ones happen as one step.
/// PostgreSQL: an advisory lock keyed by the seller, released at commit or rollback (a pooled
/// connection keeps nothing). SQLite: nothing to do, the enqueue transaction's
/// `BEGIN IMMEDIATE` already holds the database's single write lock.
pub async fn lock_seller(conn: &mut DbConn, seller: &str) -> QueryResult<()> {
    if let DbConn::Postgres(pg) = conn {
        let pg: &mut super::PgConn = pg;
        // Sellers whose names hash alike share a lock: they only wait for each other a moment.
        diesel::sql_query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind::<Integer, _>(SELLER_LOCK_SPACE)
            .bind::<Text, _>(seller)
            .execute(pg)
            .await?;
    }
    Ok(())
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

// Literals, not parameters, for the trigger and statuses: only then do both backends match the
// partial index ix_sync_jobs_manual_active and count from it alone.
const ACTIVE_MANUAL: &str = "\
    SELECT COUNT(*) AS n FROM sync_jobs \
    WHERE seller_id = $1 AND triggered_by = 'MANUAL' AND status IN ('QUEUED', 'RUNNING')";

/// The seller's job records that manual syncs created and that are QUEUED or RUNNING.
pub async fn active_manual_count(conn: &mut DbConn, seller: &str) -> QueryResult<i64> {
    let count: Count = db_run!(conn, {
        diesel::sql_query(ACTIVE_MANUAL)
            .bind::<Text, _>(seller)
            .get_result(conn)
            .await
    })?;
    Ok(count.n)
}

/// Which of `job_ids` are QUEUED or RUNNING now (an enqueue of them would add nothing).
pub async fn active_job_ids(conn: &mut DbConn, job_ids: &[&str]) -> QueryResult<Vec<String>> {
    db_run!(conn, {
        j::sync_jobs
            .filter(j::job_id.eq_any(job_ids))
            .filter(j::status.eq_any([QUEUED, RUNNING]))
            .select(j::job_id)
            .load(conn)
            .await
    })
}

/// Gives the QUEUED records among `job_ids` the class `priority` when theirs comes later: a
/// person now waits for a job the scheduler (or a backfill) had queued. Returns how many changed.
pub async fn raise_priority(
    conn: &mut DbConn,
    job_ids: &[&str],
    priority: i16,
) -> QueryResult<usize> {
    db_run!(conn, {
        diesel::update(
            j::sync_jobs
                .filter(j::job_id.eq_any(job_ids))
                .filter(j::status.eq(QUEUED))
                .filter(j::priority.gt(priority)),
        )
        .set(j::priority.eq(priority))
        .execute(conn)
        .await
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_appear_in_bind_order() {
        crate::db::assert_placeholders_in_order(super::ACTIVE_MANUAL);
    }
}
