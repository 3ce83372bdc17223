//! Raw-row retention: `ad_stats_raw` rows fetched before a cut-off are deleted a batch at a time,
//! each batch its own short statement, so a large backlog never becomes one long delete holding
//! locks (PostgreSQL) or the write lock (SQLite) while syncs wait.
//!
//! The cut-off is on `fetched_at`, when the row was written, not on `stat_date`: the table is then
//! bounded by what was fetched in the retention window whatever days the syncs covered (a
//! backfill or lookback of an old day keeps its rows as long as any other), and a batch being
//! folded right now is never older than the shortest retention allowed (2 days). Daily and
//! sellpage rows are never touched: `raw_count` keeps counting the raw rows ever folded.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Timestamp};
use diesel_async::RunQueryDsl;

use super::schema::ad_stats_raw;
use super::DbConn;
use crate::db_run;

/// Rows one DELETE removes at most: small enough for a statement of a few milliseconds.
pub const RAW_DELETE_BATCH: i64 = 5_000;

/// Batches one sweep deletes at most before it lets the sweeper do its other work; a backlog
/// left over is taken up at the next poll.
pub const RAW_BATCHES_PER_SWEEP: usize = 10;

// PostgreSQL: SKIP LOCKED lets two instances' sweepers share a backlog instead of queueing on
// each other's rows.
const DELETE_BATCH_PG: &str = "DELETE FROM ad_stats_raw WHERE id IN \
    (SELECT id FROM ad_stats_raw WHERE fetched_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)";
const DELETE_BATCH_SQLITE: &str = "DELETE FROM ad_stats_raw WHERE id IN \
    (SELECT id FROM ad_stats_raw WHERE fetched_at < $1 LIMIT $2)";

/// What one [`prune_raw`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub deleted: usize,
    /// DELETE statements run, the last one possibly deleting nothing.
    pub batches: usize,
    /// The last batch was full: rows older than the cut-off may be left.
    pub more: bool,
}

/// Deletes at most `limit` raw rows fetched before `before`, in one statement (autocommit).
pub async fn delete_raw_batch(
    conn: &mut DbConn,
    before: NaiveDateTime,
    limit: i64,
) -> QueryResult<usize> {
    db_run!(conn, postgres {
        diesel::sql_query(DELETE_BATCH_PG)
            .bind::<Timestamp, _>(before)
            .bind::<BigInt, _>(limit)
            .execute(conn)
            .await
    }, sqlite {
        diesel::sql_query(DELETE_BATCH_SQLITE)
            .bind::<Timestamp, _>(before)
            .bind::<BigInt, _>(limit)
            .execute(conn)
            .await
    })
}

/// Deletes raw rows fetched before `before`, `batch` rows per statement, at most `max_batches`
/// statements; stops early once a batch comes back short (nothing old is left).
pub async fn prune_raw(
    conn: &mut DbConn,
    before: NaiveDateTime,
    batch: i64,
    max_batches: usize,
) -> QueryResult<Pruned> {
    let mut pruned = Pruned::default();
    while pruned.batches < max_batches {
        let deleted = delete_raw_batch(conn, before, batch).await?;
        pruned.batches += 1;
        pruned.deleted += deleted;
        pruned.more = i64::try_from(deleted).unwrap_or(i64::MAX) >= batch;
        if !pruned.more {
            break;
        }
    }
    Ok(pruned)
}

/// Raw rows in the table, every seller (benchmarks and tests).
pub async fn raw_rows_total(conn: &mut DbConn) -> QueryResult<i64> {
    db_run!(conn, {
        ad_stats_raw::table.count().get_result::<i64>(conn).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_appear_in_bind_order() {
        crate::db::assert_placeholders_in_order(DELETE_BATCH_PG);
        crate::db::assert_placeholders_in_order(DELETE_BATCH_SQLITE);
    }

    #[test]
    fn each_batch_is_bounded_and_uses_the_fetched_at_cut_off() {
        for sql in [DELETE_BATCH_PG, DELETE_BATCH_SQLITE] {
            assert!(sql.contains("WHERE fetched_at < $1 LIMIT $2"), "{sql}");
        }
    }
}
