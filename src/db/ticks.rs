//! Scheduler ticks in `scheduler_ticks`, one row per cron mark: which instance ticks a mark, and
//! the history of ticks. The primary key on the mark decides between instances; no lock is held.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};
use diesel_async::RunQueryDsl;

use super::schema::scheduler_ticks::dsl as t;
use super::DbConn;
use crate::db_run;

/// One tick of a cron mark.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = super::schema::scheduler_ticks)]
pub struct SchedulerTick {
    pub mark: NaiveDateTime,
    pub instance: String,
    pub started_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
    pub heartbeat_at: NaiveDateTime,
    pub sellers: Option<i64>,
    pub enqueued: Option<i64>,
    pub deduplicated: Option<i64>,
}

#[derive(QueryableByName)]
struct Mark {
    #[diesel(sql_type = Timestamp)]
    mark: NaiveDateTime,
}

const CLAIM_PG: &str = "\
    INSERT INTO scheduler_ticks (mark, instance, started_at, heartbeat_at) \
    VALUES ($1, $2, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP) \
    ON CONFLICT (mark) DO NOTHING";
const CLAIM_SQLITE: &str = "\
    INSERT INTO scheduler_ticks (mark, instance, started_at, heartbeat_at) VALUES ($1, $2, $3, $3) \
    ON CONFLICT (mark) DO NOTHING";

/// Records that `instance` ticks `mark`; `false` when another instance already does (or did).
pub async fn claim(conn: &mut DbConn, mark: NaiveDateTime, instance: &str) -> QueryResult<bool> {
    let inserted = db_run!(conn, postgres {
        diesel::sql_query(CLAIM_PG)
            .bind::<Timestamp, _>(mark)
            .bind::<Text, _>(instance)
            .execute(conn)
            .await
    }, sqlite {
        diesel::sql_query(CLAIM_SQLITE)
            .bind::<Timestamp, _>(mark)
            .bind::<Text, _>(instance)
            .bind::<Timestamp, _>(super::now_utc())
            .execute(conn)
            .await
    })?;
    Ok(inserted == 1)
}

// The row lock settles a race between two instances taking over: the second re-reads the row
// after the first commits, finds it freshly started, and leaves it.
const TAKE_OVER_PG: &str = "\
    UPDATE scheduler_ticks \
    SET instance = $1, started_at = CURRENT_TIMESTAMP, heartbeat_at = CURRENT_TIMESTAMP \
    WHERE finished_at IS NULL AND heartbeat_at < CURRENT_TIMESTAMP - $2 * INTERVAL '1 millisecond' \
    RETURNING mark";
const TAKE_OVER_SQLITE: &str = "\
    UPDATE scheduler_ticks SET instance = $1, started_at = $2, heartbeat_at = $2 \
    WHERE finished_at IS NULL AND heartbeat_at < $3 \
    RETURNING mark";

/// Takes over unfinished ticks whose instance has not beaten their heartbeat for `rescue_after`
/// (by the database's clock on PostgreSQL): their instance died. Returns their marks, to tick again.
pub async fn take_over_abandoned(
    conn: &mut DbConn,
    instance: &str,
    rescue_after: Duration,
) -> QueryResult<Vec<NaiveDateTime>> {
    let after_ms = i64::try_from(rescue_after.as_millis()).unwrap_or(i64::MAX);
    let marks: Vec<Mark> = db_run!(conn, postgres {
        diesel::sql_query(TAKE_OVER_PG)
            .bind::<Text, _>(instance)
            .bind::<BigInt, _>(after_ms)
            .load(conn)
            .await
    }, sqlite {
        let now = super::now_utc();
        diesel::sql_query(TAKE_OVER_SQLITE)
            .bind::<Text, _>(instance)
            .bind::<Timestamp, _>(now)
            .bind::<Timestamp, _>(now - chrono::Duration::milliseconds(after_ms))
            .load(conn)
            .await
    })?;
    let mut marks: Vec<NaiveDateTime> = marks.into_iter().map(|m| m.mark).collect();
    marks.sort();
    Ok(marks)
}

/// Refreshes the heartbeat of `instance`'s unfinished tick of `mark` (database clock on
/// PostgreSQL); `false` when the tick is no longer its own.
pub async fn beat(conn: &mut DbConn, mark: NaiveDateTime, instance: &str) -> QueryResult<bool> {
    let updated = db_run!(conn, postgres {
        diesel::update(
            t::scheduler_ticks
                .find(mark)
                .filter(t::instance.eq(instance))
                .filter(t::finished_at.is_null()),
        )
        .set(t::heartbeat_at.eq(diesel::dsl::now))
        .execute(conn)
        .await
    }, sqlite {
        diesel::update(
            t::scheduler_ticks
                .find(mark)
                .filter(t::instance.eq(instance))
                .filter(t::finished_at.is_null()),
        )
        .set(t::heartbeat_at.eq(super::now_utc()))
        .execute(conn)
        .await
    })?;
    Ok(updated == 1)
}

/// Records the outcome of `instance`'s tick of `mark`; `false` when the tick is no longer its
/// own (another instance took it over, thinking it dead) or was already finished.
pub async fn finish(
    conn: &mut DbConn,
    mark: NaiveDateTime,
    instance: &str,
    sellers: i64,
    enqueued: i64,
    deduplicated: i64,
) -> QueryResult<bool> {
    let now = super::now_utc();
    let updated = db_run!(conn, {
        diesel::update(
            t::scheduler_ticks
                .find(mark)
                .filter(t::instance.eq(instance))
                .filter(t::finished_at.is_null()),
        )
        .set((
            t::finished_at.eq(now),
            t::sellers.eq(sellers),
            t::enqueued.eq(enqueued),
            t::deduplicated.eq(deduplicated),
        ))
        .execute(conn)
        .await
    })?;
    Ok(updated == 1)
}

/// The tick of the latest cron mark any instance claimed, finished or not.
pub async fn latest(conn: &mut DbConn) -> QueryResult<Option<SchedulerTick>> {
    db_run!(conn, {
        t::scheduler_ticks
            .order(t::mark.desc())
            .select(SchedulerTick::as_select())
            .first(conn)
            .await
            .optional()
    })
}

/// Every tick, oldest mark first (tests and tools).
pub async fn all(conn: &mut DbConn) -> QueryResult<Vec<SchedulerTick>> {
    db_run!(conn, {
        t::scheduler_ticks
            .order(t::mark)
            .select(SchedulerTick::as_select())
            .load(conn)
            .await
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_appear_in_bind_order() {
        for sql in [
            super::CLAIM_PG,
            super::CLAIM_SQLITE,
            super::TAKE_OVER_PG,
            super::TAKE_OVER_SQLITE,
        ] {
            crate::db::assert_placeholders_in_order(sql);
        }
    }
}
