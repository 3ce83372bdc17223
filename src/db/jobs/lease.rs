//! Keeping a lease alive and taking back the leases of processes that stopped: the heartbeat
//! and the rescue of orphaned RUNNING records, both on the database's clock.

use diesel::dsl::now as db_now;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;

use super::{FAILED, QUEUED, RUNNING};
use crate::db::schema::sync_jobs::dsl as j;
use crate::db::DbConn;
use crate::db_run;

/// Refreshes the heartbeat of the records `worker` is running, on the database's clock. Only
/// records it still holds: one taken back and claimed by another instance meanwhile is that
/// instance's to vouch for.
pub async fn heartbeat(conn: &mut DbConn, worker: &str, record_ids: &[i64]) -> QueryResult<usize> {
    db_run!(conn, postgres {
        diesel::update(
            j::sync_jobs
                .filter(j::status.eq(RUNNING))
                .filter(j::locked_by.eq(worker))
                .filter(j::id.eq_any(record_ids)),
        )
        .set(j::heartbeat_at.eq(db_now.nullable()))
        .execute(conn)
        .await
    }, sqlite {
        diesel::update(
            j::sync_jobs
                .filter(j::status.eq(RUNNING))
                .filter(j::locked_by.eq(worker))
                .filter(j::id.eq_any(record_ids)),
        )
        .set(j::heartbeat_at.eq(crate::db::now_utc()))
        .execute(conn)
        .await
    })
}

const NOTE_ORPHANED: &str = "the process running this job stopped before it finished";

// One statement: requeued while attempts remain, FAILED otherwise. Compared with the database's
// own clock, so instances whose clocks disagree still agree on which heartbeats are stale.
// A FAILED record keeps `locked_by`: the instance that died running it.
const RESCUE_ORPHANS_PG: &str = "\
    UPDATE sync_jobs \
    SET status = CASE WHEN attempts < max_attempts THEN 'QUEUED' ELSE 'FAILED' END, \
        last_error = $1, \
        locked_by = CASE WHEN attempts < max_attempts THEN NULL ELSE locked_by END, \
        run_at = CASE WHEN attempts < max_attempts THEN CURRENT_TIMESTAMP ELSE run_at END, \
        finished_at = CASE WHEN attempts < max_attempts THEN finished_at ELSE CURRENT_TIMESTAMP END, \
        updated_at = CURRENT_TIMESTAMP \
    WHERE status = 'RUNNING' \
      AND (heartbeat_at IS NULL OR heartbeat_at < CURRENT_TIMESTAMP - $2 * INTERVAL '1 millisecond')";

/// Takes back RUNNING records whose process has not shown life for `rescue_after` (by the
/// database's clock on PostgreSQL; on SQLite the process clock is the database clock): QUEUED
/// again when attempts remain, FAILED otherwise. Returns how many were taken back.
pub async fn rescue_orphans(
    conn: &mut DbConn,
    rescue_after: std::time::Duration,
) -> QueryResult<usize> {
    let after_ms = i64::try_from(rescue_after.as_millis()).unwrap_or(i64::MAX);
    db_run!(conn, postgres {
        diesel::sql_query(RESCUE_ORPHANS_PG)
            .bind::<Text, _>(NOTE_ORPHANED)
            .bind::<BigInt, _>(after_ms)
            .execute(conn)
            .await
    }, sqlite {
        let now = crate::db::now_utc();
        let stale_before = now - chrono::Duration::milliseconds(after_ms);
        let orphaned = j::status.eq(RUNNING).and(
            j::heartbeat_at
                .is_null()
                .or(j::heartbeat_at.lt(stale_before)),
        );
        let requeued = diesel::update(
            j::sync_jobs
                .filter(orphaned)
                .filter(j::attempts.lt(j::max_attempts)),
        )
        .set((
            j::status.eq(QUEUED),
            j::last_error.eq(NOTE_ORPHANED),
            j::locked_by.eq(None::<String>),
            j::run_at.eq(now),
            j::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
        // Only those out of attempts: a record that turned orphaned between the two statements
        // (it cannot in a running service, but a hand edit can) waits for the next sweep.
        let failed = diesel::update(
            j::sync_jobs
                .filter(orphaned)
                .filter(j::attempts.ge(j::max_attempts)),
        )
        .set((
            j::status.eq(FAILED),
            j::last_error.eq(NOTE_ORPHANED),
            j::finished_at.eq(now),
            j::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
        Ok(requeued + failed)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_appear_in_bind_order() {
        crate::db::assert_placeholders_in_order(super::RESCUE_ORPHANS_PG);
    }
}
