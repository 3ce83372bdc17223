//! The group commit's write of several jobs' raw rows and their fold (see
//! [`append_and_fold_grouped`]), beside the one-job write in the parent module.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{Text, Timestamp};
use diesel_async::RunQueryDsl;

use super::{
    bind_raw_arrays, fold_appended_sql, fold_upsert_sql, insert_raw, Aggregation, RowId,
    INSERT_RAW_PG, LAST_RAW_ROWID_SQLITE, METRICS, RAW_ROWS_PER_ARRAY_INSERT,
};
use crate::db::models::NewRawStat;
use crate::db::{prepared, DbConn};
use crate::db_run;

/// PostgreSQL: [`append_and_fold_pg_sql`] for rows of several jobs, answering how many daily
/// rows each (seller, level) got: the fold RETURNs its rows and the statement counts them.
pub(super) fn append_and_fold_grouped_pg_sql(aggregation: Aggregation) -> String {
    format!(
        "WITH raw AS ({INSERT_RAW_PG} RETURNING seller_id, level, entity_id, stat_date, {METRICS}), \
         folded AS ({} RETURNING seller_id, level) \
         SELECT seller_id, level, COUNT(*) AS n FROM folded GROUP BY seller_id, level",
        fold_upsert_sql(aggregation, "$19", "FROM raw")
    )
}

#[derive(QueryableByName)]
struct FoldedCount {
    #[diesel(sql_type = Text)]
    seller_id: String,
    #[diesel(sql_type = Text)]
    level: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct FoldedKey {
    #[diesel(sql_type = Text)]
    seller_id: String,
    #[diesel(sql_type = Text)]
    level: String,
}

/// Daily rows written, by (seller id, level).
pub type DailyRowsBySellerLevel = std::collections::HashMap<(String, String), usize>;

/// Appends the readings of several jobs (each row carries its own `job_record_id`) and folds them
/// into `ad_stats_daily` in one statement per 10,000 rows (SQLite: one INSERT per 1,000 rows and
/// one fold), for a group commit. Returns the daily rows written per (seller id, level), so each
/// job learns its own count. The caller must not mix two jobs of the same seller and level: an
/// upsert cannot touch one daily row twice in a statement (PostgreSQL refuses it) and the counts
/// would merge.
pub async fn append_and_fold_grouped(
    conn: &mut DbConn,
    aggregation: Aggregation,
    rows: &[NewRawStat],
    now: NaiveDateTime,
) -> QueryResult<DailyRowsBySellerLevel> {
    let mut counts = DailyRowsBySellerLevel::new();
    if rows.is_empty() {
        return Ok(counts);
    }
    if let DbConn::Postgres(pg) = conn {
        let pg: &mut crate::db::PgConn = pg;
        let sql = append_and_fold_grouped_pg_sql(aggregation);
        for chunk in rows.chunks(RAW_ROWS_PER_ARRAY_INSERT) {
            let folded: Vec<FoldedCount> =
                prepared(bind_raw_arrays(&sql, chunk).bind::<Timestamp, _>(now))
                    .load(pg)
                    .await?;
            for f in folded {
                *counts.entry((f.seller_id, f.level)).or_default() += f.n as usize;
            }
        }
        return Ok(counts);
    }
    // SQLite (no INSERT inside WITH): as in `append_and_fold`, the rows above the last rowid are
    // this transaction's; the fold returns one line per daily row written.
    let last: Vec<RowId> = db_run!(conn, {
        diesel::sql_query(LAST_RAW_ROWID_SQLITE).load(conn).await
    })?;
    let last = last.into_iter().next().map_or(0, |r| r.id);
    insert_raw(conn, rows).await?;
    let sql = format!(
        "{} RETURNING seller_id, level",
        fold_appended_sql(aggregation)
    );
    let folded: Vec<FoldedKey> = db_run!(conn, {
        prepared(
            diesel::sql_query(&sql)
                .bind::<Timestamp, _>(now)
                .bind::<diesel::sql_types::BigInt, _>(last),
        )
        .load(conn)
        .await
    })?;
    for f in folded {
        *counts.entry((f.seller_id, f.level)).or_default() += 1;
    }
    Ok(counts)
}
