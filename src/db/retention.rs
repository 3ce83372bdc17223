//! Raw-row retention and, on PostgreSQL, the raw table's daily partitions.
//!
//! PostgreSQL: `ad_stats_raw` is partitioned by UTC day of `fetched_at` (migration 000014). The
//! service creates each day's partition [`RAW_PARTITION_DAYS_AHEAD`] days ahead, at start-up and
//! at every retention pass ([`maintain_raw_partitions`]), and retention drops the partitions of
//! days that ended before the cut-off: one `DROP TABLE` per day, whatever its rows, and no dead
//! rows to vacuum. A day is dropped once all of it is past the cut-off, so rows stay up to a day
//! longer than `stats.raw_retention`. The DEFAULT partition catches a row of a day without a
//! partition (an old `fetched_at`, a clock far ahead) instead of failing its sync: creating the
//! day's partition moves such rows into it, and old ones are deleted from it in batches.
//!
//! SQLite, and the DEFAULT partition: rows fetched before the cut-off are deleted a batch at a
//! time, each batch its own short statement, so a large backlog never becomes one long delete
//! holding locks (PostgreSQL) or the write lock (SQLite) while syncs wait.
//!
//! The cut-off is on `fetched_at`, when the row was written, not on `stat_date`: the table is then
//! bounded by what was fetched in the retention window whatever days the syncs covered (a
//! backfill or lookback of an old day keeps its rows as long as any other), and a batch being
//! folded right now is never older than the shortest retention allowed (2 days). Daily and
//! sellpage rows are never touched: `raw_count` keeps counting the raw rows ever folded.

use chrono::{Duration, NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Integer, Text, Timestamp};
use diesel_async::RunQueryDsl;

use super::schema::ad_stats_raw;
use super::DbConn;
use crate::db_run;

/// Rows one DELETE removes at most: small enough for a statement of a few milliseconds.
pub const RAW_DELETE_BATCH: i64 = 5_000;

/// Batches one sweep deletes at most before it lets the sweeper do its other work; a backlog
/// left over is taken up at the next poll.
pub const RAW_BATCHES_PER_SWEEP: usize = 10;

// PostgreSQL: only the DEFAULT partition is deleted from (the days' partitions are dropped
// whole); SKIP LOCKED lets two instances' sweepers share a backlog instead of queueing on each
// other's rows. The rows have no id: a batch is a set of row addresses.
const DELETE_BATCH_PG: &str = "DELETE FROM ad_stats_raw_default WHERE ctid = ANY(ARRAY( \
    SELECT ctid FROM ad_stats_raw_default WHERE fetched_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED))";
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

/// Deletes at most `limit` raw rows fetched before `before`, in one statement (autocommit); on
/// PostgreSQL from the DEFAULT partition only (see [`drop_raw_partitions`] for the days').
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

/// Days a partition is created ahead of today: syncs never wait for one, and a service stopped
/// for less than this finds its days ready when it starts again.
pub const RAW_PARTITION_DAYS_AHEAD: u32 = 3;

/// Lock space of the partition work (with the schema's hash as the second key): instances of
/// one database take turns, other schemas on the server (tests) do not wait.
const PARTITION_LOCK_SPACE: i32 = 0x7261_7770;

/// How long a partition statement waits for its lock before giving up until the next pass:
/// a DROP waits for the syncs writing to the table, and syncs queued behind a waiting DROP
/// would wait too.
const PARTITION_LOCK_TIMEOUT: &str = "5s";

/// What one [`maintain_raw_partitions`] did (PostgreSQL; nothing on SQLite).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionWork {
    /// Days whose partition was created.
    pub created: Vec<NaiveDate>,
    /// Days whose partition was dropped, their rows past the retention.
    pub dropped: Vec<NaiveDate>,
}

/// The partition of one UTC day: `ad_stats_raw_pYYYYMMDD`.
pub fn raw_partition_name(day: NaiveDate) -> String {
    format!("ad_stats_raw_p{}", day.format("%Y%m%d"))
}

fn partition_day(name: &str) -> Option<NaiveDate> {
    let digits = name.strip_prefix("ad_stats_raw_p")?;
    NaiveDate::parse_from_str(digits, "%Y%m%d").ok()
}

fn utc_midnight(day: NaiveDate) -> String {
    format!("{} 00:00:00+00", day.format("%Y-%m-%d"))
}

#[derive(QueryableByName)]
struct PartitionName {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Missing {
    #[diesel(sql_type = Bool)]
    missing: bool,
}

const LIST_PARTITIONS_PG: &str = "SELECT CAST(c.relname AS TEXT) AS name \
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
    WHERE i.inhparent = CAST('ad_stats_raw' AS regclass) ORDER BY 1";

/// The days that have a partition, oldest first (PostgreSQL; none on SQLite).
pub async fn raw_partition_days(conn: &mut DbConn) -> QueryResult<Vec<NaiveDate>> {
    let DbConn::Postgres(pg) = conn else {
        return Ok(Vec::new());
    };
    let pg: &mut super::PgConn = pg;
    let names: Vec<PartitionName> = diesel::sql_query(LIST_PARTITIONS_PG).load(pg).await?;
    Ok(names
        .iter()
        .filter_map(|n| partition_day(&n.name))
        .collect())
}

/// The transaction's lock and lock timeout for partition work.
async fn partition_lock(conn: &mut DbConn) -> QueryResult<()> {
    let DbConn::Postgres(pg) = conn else {
        return Ok(());
    };
    let pg: &mut super::PgConn = pg;
    diesel::sql_query(format!(
        "SET LOCAL lock_timeout = '{PARTITION_LOCK_TIMEOUT}'"
    ))
    .execute(pg)
    .await?;
    diesel::sql_query("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))")
        .bind::<Integer, _>(PARTITION_LOCK_SPACE)
        .execute(pg)
        .await?;
    Ok(())
}

/// Creates the partition of `day` unless it exists, moving into it the rows of that day the
/// DEFAULT partition caught meanwhile, in one transaction. True when it created it.
async fn create_partition(conn: &mut DbConn, day: NaiveDate) -> QueryResult<bool> {
    let name = raw_partition_name(day);
    let (from, to) = (utc_midnight(day), utc_midnight(day + Duration::days(1)));
    conn.transaction(async |conn: &mut DbConn| {
        partition_lock(conn).await?;
        let DbConn::Postgres(pg) = conn else {
            return Ok(false);
        };
        let pg: &mut super::PgConn = pg;
        let missing: Vec<Missing> =
            diesel::sql_query("SELECT to_regclass($1) IS NULL AS missing")
                .bind::<Text, _>(&name)
                .load(pg)
                .await?;
        if !missing.into_iter().next().is_some_and(|m| m.missing) {
            return Ok(false);
        }
        // Created apart and attached, rather than `PARTITION OF`: a day's rows already in the
        // DEFAULT partition would make `PARTITION OF` fail; here they move first. The names
        // and bounds come from a date, never from input.
        let statements = [
            format!("CREATE TABLE {name} (LIKE ad_stats_raw INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"),
            format!(
                "WITH moved AS (DELETE FROM ad_stats_raw_default \
                 WHERE fetched_at >= '{from}' AND fetched_at < '{to}' RETURNING *) \
                 INSERT INTO {name} SELECT * FROM moved"
            ),
            format!("ALTER TABLE ad_stats_raw ATTACH PARTITION {name} FOR VALUES FROM ('{from}') TO ('{to}')"),
        ];
        for sql in statements {
            diesel::sql_query(sql).execute(pg).await?;
        }
        Ok(true)
    })
    .await
}

/// Makes sure the partitions of `first` and the `days - 1` days after it exist (PostgreSQL; a
/// no-op on SQLite). Returns the days it created.
pub async fn ensure_raw_partitions(
    conn: &mut DbConn,
    first: NaiveDate,
    days: u32,
) -> QueryResult<Vec<NaiveDate>> {
    if !matches!(conn, DbConn::Postgres(_)) {
        return Ok(Vec::new());
    }
    let existing = raw_partition_days(conn).await?;
    let mut created = Vec::new();
    for day in first.iter_days().take(days as usize) {
        if !existing.contains(&day) && create_partition(conn, day).await? {
            created.push(day);
        }
    }
    Ok(created)
}

/// Drops the partitions of the days that ended at or before `before`: every row in them was
/// fetched before it (PostgreSQL; a no-op on SQLite). Returns the days dropped.
pub async fn drop_raw_partitions(
    conn: &mut DbConn,
    before: NaiveDateTime,
) -> QueryResult<Vec<NaiveDate>> {
    let mut dropped = Vec::new();
    for day in raw_partition_days(conn).await? {
        let ends = (day + Duration::days(1)).and_time(chrono::NaiveTime::MIN);
        if ends > before {
            break;
        }
        let name = raw_partition_name(day);
        conn.transaction(async |conn: &mut DbConn| {
            partition_lock(conn).await?;
            let DbConn::Postgres(pg) = conn else {
                return Ok::<_, diesel::result::Error>(());
            };
            let pg: &mut super::PgConn = pg;
            diesel::sql_query(format!("DROP TABLE IF EXISTS {name}"))
                .execute(pg)
                .await?;
            Ok(())
        })
        .await?;
        dropped.push(day);
    }
    Ok(dropped)
}

/// The partition work of one retention pass, as of `now`: today's partition and the next
/// [`RAW_PARTITION_DAYS_AHEAD`] days' exist, and the days that ended before `before` are
/// dropped (PostgreSQL; nothing on SQLite, where [`prune_raw`] does it all).
pub async fn maintain_raw_partitions(
    conn: &mut DbConn,
    now: NaiveDateTime,
    before: NaiveDateTime,
) -> QueryResult<PartitionWork> {
    let created = ensure_raw_partitions(conn, now.date(), RAW_PARTITION_DAYS_AHEAD + 1).await?;
    let dropped = drop_raw_partitions(conn, before).await?;
    Ok(PartitionWork { created, dropped })
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
        // PostgreSQL deletes rows only from the DEFAULT partition; the days are dropped whole.
        assert!(DELETE_BATCH_PG.starts_with("DELETE FROM ad_stats_raw_default "));
    }

    #[test]
    fn partition_names_carry_their_utc_day() {
        let day = NaiveDate::from_ymd_opt(2026, 12, 6).unwrap();
        assert_eq!(raw_partition_name(day), "ad_stats_raw_p20261206");
        assert_eq!(partition_day(&raw_partition_name(day)), Some(day));
        assert_eq!(partition_day("ad_stats_raw_default"), None);
        assert_eq!(utc_midnight(day), "2026-12-06 00:00:00+00");
    }
}
