//! Finishing a leased run: SUCCEEDED, a failed attempt (retry or FAILED), handed back or
//! deferred without counting the attempt; and pruning records that finished long ago.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::{Lease, RowsWritten, CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED};
use crate::db::schema::sync_jobs::dsl as j;
use crate::db::DbConn;
use crate::db_run;

/// For a queued job's write transaction on PostgreSQL: its COMMIT returns without waiting for
/// the WAL flush (`SET LOCAL synchronous_commit = off`, this transaction only).
///
/// Why that keeps exactly-once: the claim that made the record RUNNING committed durably before
/// (an ordinary commit), and the stats and the SUCCEEDED mark are one transaction, so a server
/// crash can lose only the whole of it. The record is then back to RUNNING under this instance,
/// which no longer beats its heartbeat (the job left its running set), so the sweeper takes it
/// back after `jobs.rescue_after` and runs it again: counted once, as after any crash between
/// claim and commit. What a crash can undo is a SUCCEEDED a reader already saw. Enqueues, claims
/// and failure marks keep durable commits: an accepted job is never lost. SQLite: no-op.
pub async fn commit_without_waiting_for_flush(conn: &mut DbConn) -> QueryResult<()> {
    use diesel_async::SimpleAsyncConnection;
    match conn {
        DbConn::Postgres(c) => c.batch_execute("SET LOCAL synchronous_commit = off").await,
        DbConn::Sqlite(_) => Ok(()),
    }
}

/// Marks the leased run SUCCEEDED with its row counts. `false` when the lease was lost (the record
/// was rescued or released meanwhile): the caller must then roll back the run's writes.
pub async fn mark_succeeded(
    conn: &mut DbConn,
    lease: &Lease,
    rows: RowsWritten,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    // diesel never caches an UPDATE (a changeset of options can change its text); this one's
    // text is fixed, and every job runs it.
    let updated = db_run!(conn, {
        crate::db::prepared(diesel::update(leased!(lease)).set((
            // `locked_by` stays: the record shows which instance ran it.
            j::status.eq(SUCCEEDED),
            j::last_error.eq(None::<String>),
            j::entities.eq(rows.entities),
            j::raw_rows.eq(rows.raw),
            j::daily_rows.eq(rows.daily),
            j::sellpage_rows.eq(rows.sellpage),
            j::finished_at.eq(now),
            j::updated_at.eq(now),
        )))
        .execute(conn)
        .await
    })?;
    Ok(updated == 1)
}

// The SUCCEEDED marks of a group commit in one statement: each lease's record, as `leased!`
// guards it, gets its own counts. Returns the ids it marked.
const MARK_MANY_SUCCEEDED_PG: &str = "\
    UPDATE sync_jobs AS j SET status = 'SUCCEEDED', last_error = NULL, entities = u.entities, \
        raw_rows = u.raw_rows, daily_rows = u.daily_rows, sellpage_rows = u.sellpage_rows, \
        finished_at = $1, updated_at = $1 \
    FROM unnest($2::int8[], $3::text[], $4::int4[], $5::int8[], $6::int8[], $7::int8[], \
        $8::int8[]) AS u(id, worker, attempts, entities, raw_rows, daily_rows, sellpage_rows) \
    WHERE j.id = u.id AND j.status = 'RUNNING' AND j.locked_by = u.worker \
        AND j.attempts = u.attempts \
    RETURNING j.id";

#[derive(QueryableByName)]
struct MarkedId {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
}

/// [`mark_succeeded`] for the jobs of a group commit: on PostgreSQL one statement for all, on
/// SQLite one UPDATE each. Answers, in order, whether each lease still held (`false`: the
/// caller must roll back, as for one job).
pub async fn mark_many_succeeded(
    conn: &mut DbConn,
    marks: &[(&Lease, RowsWritten)],
    now: NaiveDateTime,
) -> QueryResult<Vec<bool>> {
    use diesel::sql_types::{Array, BigInt, Integer, Text, Timestamp};
    if let DbConn::Postgres(pg) = conn {
        let pg: &mut crate::db::PgConn = pg;
        let ids: Vec<i64> = marks.iter().map(|(l, _)| l.record_id).collect();
        let marked: Vec<MarkedId> = crate::db::prepared(
            diesel::sql_query(MARK_MANY_SUCCEEDED_PG)
                .bind::<Timestamp, _>(now)
                .bind::<Array<BigInt>, _>(&ids)
                .bind::<Array<Text>, _>(
                    marks
                        .iter()
                        .map(|(l, _)| l.worker.as_str())
                        .collect::<Vec<_>>(),
                )
                .bind::<Array<Integer>, _>(marks.iter().map(|(l, _)| l.attempt).collect::<Vec<_>>())
                .bind::<Array<BigInt>, _>(marks.iter().map(|(_, r)| r.entities).collect::<Vec<_>>())
                .bind::<Array<BigInt>, _>(marks.iter().map(|(_, r)| r.raw).collect::<Vec<_>>())
                .bind::<Array<BigInt>, _>(marks.iter().map(|(_, r)| r.daily).collect::<Vec<_>>())
                .bind::<Array<BigInt>, _>(
                    marks.iter().map(|(_, r)| r.sellpage).collect::<Vec<_>>(),
                ),
        )
        .load(pg)
        .await?;
        let marked: std::collections::HashSet<i64> = marked.into_iter().map(|m| m.id).collect();
        return Ok(ids.iter().map(|id| marked.contains(id)).collect());
    }
    let mut held = Vec::with_capacity(marks.len());
    for (lease, rows) in marks {
        held.push(mark_succeeded(conn, lease, *rows, now).await?);
    }
    Ok(held)
}

/// Records a failed attempt: back to QUEUED until `retry_at` when given, otherwise FAILED for good.
pub async fn mark_attempt_failed(
    conn: &mut DbConn,
    lease: &Lease,
    error: &str,
    retry_at: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let updated = db_run!(conn, {
        match retry_at {
            Some(retry_at) => {
                diesel::update(leased!(lease))
                    .set((
                        j::status.eq(QUEUED),
                        j::last_error.eq(error),
                        j::locked_by.eq(None::<String>),
                        j::run_at.eq(retry_at),
                        j::updated_at.eq(now),
                    ))
                    .execute(conn)
                    .await
            }
            None => {
                diesel::update(leased!(lease))
                    .set((
                        // `locked_by` stays: the instance that ran the last attempt.
                        j::status.eq(FAILED),
                        j::last_error.eq(error),
                        j::finished_at.eq(now),
                        j::updated_at.eq(now),
                    ))
                    .execute(conn)
                    .await
            }
        }
    })?;
    Ok(updated == 1)
}

/// Hands a leased run back as QUEUED without counting the attempt (shutdown before it finished).
pub async fn release(conn: &mut DbConn, lease: &Lease, now: NaiveDateTime) -> QueryResult<bool> {
    let updated = db_run!(conn, {
        diesel::update(leased!(lease))
            .set((
                j::status.eq(QUEUED),
                j::attempts.eq(j::attempts - 1),
                j::locked_by.eq(None::<String>),
                j::run_at.eq(now),
                j::updated_at.eq(now),
            ))
            .execute(conn)
            .await
    })?;
    Ok(updated == 1)
}

/// Puts a leased run back as QUEUED until `run_at` without counting the attempt: it asked the
/// provider nothing (its ad account is paused), so it must not use up its attempts while it waits.
pub async fn defer(
    conn: &mut DbConn,
    lease: &Lease,
    note: &str,
    run_at: NaiveDateTime,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let updated = db_run!(conn, {
        diesel::update(leased!(lease))
            .set((
                j::status.eq(QUEUED),
                j::attempts.eq(j::attempts - 1),
                j::last_error.eq(note),
                j::locked_by.eq(None::<String>),
                j::run_at.eq(run_at),
                j::updated_at.eq(now),
            ))
            .execute(conn)
            .await
    })?;
    Ok(updated == 1)
}

/// Deletes finished records that finished before `before`.
pub async fn prune(conn: &mut DbConn, before: NaiveDateTime) -> QueryResult<usize> {
    db_run!(conn, {
        diesel::delete(
            j::sync_jobs
                .filter(j::status.eq_any([SUCCEEDED, FAILED, CANCELLED]))
                .filter(j::finished_at.lt(before)),
        )
        .execute(conn)
        .await
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_group_mark_binds_its_placeholders_in_order() {
        crate::db::assert_placeholders_in_order(super::MARK_MANY_SUCCEEDED_PG);
    }
}
