//! The write path of the three stats tiers (their reads are in `db/reads.rs`): append raw
//! readings, fold them into daily rows, roll campaigns up to sellpages. Each write here is one
//! set-based statement; callers run them inside one transaction.
//!
//! The SQL uses `$n` placeholders, numbered in order of first appearance in the text: PostgreSQL
//! reads them as positional parameters, SQLite as named ones that take the next free position,
//! so both agree only when `$1` appears first, then `$2`, and so on (checked by a unit test).

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use diesel::sql_types::{Date, Text, Timestamp};
use diesel_async::RunQueryDsl;

use super::models::{DailyStat, NewRawStat, RawStat, SellpageStat};
use super::schema::{ad_stats_daily, ad_stats_raw, sellpage_stats_daily};
use super::{prepared, DbConn};
use crate::db_run;
use crate::domain::Aggregation;

mod grouped;
mod rollup;
pub use grouped::{append_and_fold_grouped, DailyRowsBySellerLevel};
pub use rollup::{
    roll_up_sellpages, roll_up_sellpages_reporting_conflicts, sellpage_currency_conflicts,
};

/// Rows per INSERT: 18 parameters a row stays far below SQLite's 32,766.
const RAW_ROWS_PER_STATEMENT: usize = 1000;

/// Rows per statement on PostgreSQL, where they travel as 18 arrays (no parameter limit). Each
/// pooled connection keeps the buffers of the largest message it ever sent, so this bounds the
/// service's memory: at 10,000 rows a statement, group commits of 50 jobs left some 25 MiB of
/// such buffers across the pool; at 1,000 the tick is as fast (docs/BENCHMARKS.md).
const RAW_ROWS_PER_ARRAY_INSERT: usize = 1_000;

// One fixed statement whatever the number of rows, so it is prepared once per connection; a
// multi-row VALUES list is new text for every row count and is parsed and planned each time.
// The counters travel as int8 and are stored as 4-byte integers: a value past 2^31 fails the
// statement (the job's error) rather than being cut. Each row lands in its day's partition.
const INSERT_RAW_PG: &str = "\
    INSERT INTO ad_stats_raw (seller_id, level, entity_id, stat_date, spend_cents, impressions, \
        clicks, content_views, add_to_cart, checkouts, purchases, revenue_cents, cpm, ctr, roas, \
        provider, job_record_id, fetched_at) \
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::int8[], $6::int8[], \
        $7::int8[], $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::int8[], \
        $13::float8[], $14::float8[], $15::float8[], $16::text[], $17::int8[], $18::timestamp[])";

/// The readings as 18 arrays bound to `sql` ($1 to $18, in [`INSERT_RAW_PG`]'s column order).
fn bind_raw_arrays<'a>(
    sql: &'a str,
    rows: &'a [NewRawStat],
) -> diesel::query_builder::BoxedSqlQuery<'a, diesel::pg::Pg, diesel::query_builder::SqlQuery> {
    use diesel::sql_types::{Array, BigInt, Double, Nullable};
    let text = |f: fn(&NewRawStat) -> &str| rows.iter().map(f).collect::<Vec<_>>();
    let int = |f: fn(&NewRawStat) -> i64| rows.iter().map(f).collect::<Vec<_>>();
    let real = |f: fn(&NewRawStat) -> f64| rows.iter().map(f).collect::<Vec<_>>();
    diesel::sql_query(sql)
        .into_boxed()
        .bind::<Array<Text>, _>(text(|r| &r.seller_id))
        .bind::<Array<Text>, _>(text(|r| &r.level))
        .bind::<Array<Text>, _>(text(|r| &r.entity_id))
        .bind::<Array<Date>, _>(rows.iter().map(|r| r.stat_date).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(int(|r| r.spend_cents))
        .bind::<Array<BigInt>, _>(int(|r| r.impressions))
        .bind::<Array<BigInt>, _>(int(|r| r.clicks))
        .bind::<Array<BigInt>, _>(int(|r| r.content_views))
        .bind::<Array<BigInt>, _>(int(|r| r.add_to_cart))
        .bind::<Array<BigInt>, _>(int(|r| r.checkouts))
        .bind::<Array<BigInt>, _>(int(|r| r.purchases))
        .bind::<Array<BigInt>, _>(int(|r| r.revenue_cents))
        .bind::<Array<Double>, _>(real(|r| r.cpm))
        .bind::<Array<Double>, _>(real(|r| r.ctr))
        .bind::<Array<Double>, _>(real(|r| r.roas))
        .bind::<Array<Text>, _>(text(|r| &r.provider))
        .bind::<Array<Nullable<BigInt>>, _>(
            rows.iter().map(|r| r.job_record_id).collect::<Vec<_>>(),
        )
        .bind::<Array<Timestamp>, _>(rows.iter().map(|r| r.fetched_at).collect::<Vec<_>>())
}

/// Appends readings to `ad_stats_raw`: on PostgreSQL as arrays unnested by one prepared
/// statement, on SQLite in multi-row INSERTs (one per 1,000 rows).
pub async fn insert_raw(conn: &mut DbConn, rows: &[NewRawStat]) -> QueryResult<usize> {
    db_run!(conn, postgres {
        let mut inserted = 0;
        for chunk in rows.chunks(RAW_ROWS_PER_ARRAY_INSERT) {
            inserted += prepared(bind_raw_arrays(INSERT_RAW_PG, chunk))
                .execute(conn)
                .await?;
        }
        Ok(inserted)
    }, sqlite {
        // diesel-async cannot batch-insert on SQLite (diesel_async#277); the sync connection can.
        let rows = rows.to_vec();
        conn.spawn_blocking(move |inner| {
            let mut inserted = 0;
            for chunk in rows.chunks(RAW_ROWS_PER_STATEMENT) {
                inserted += diesel::RunQueryDsl::execute(
                    diesel::insert_into(ad_stats_raw::table).values(chunk),
                    inner,
                )?;
            }
            Ok(inserted)
        })
        .await
    })
}

const METRICS: &str =
    "spend_cents, impressions, clicks, content_views, add_to_cart, checkouts, purchases, revenue_cents";

/// cpm, ctr and roas from totals: `domain::Ratio::ALL` as SQL.
fn ratio_sql(spend: &str, impressions: &str, clicks: &str, revenue: &str) -> [String; 3] {
    use crate::domain::{Ratio, Total};
    let total = |t: Total| {
        match t {
            Total::SpendCents => spend,
            Total::Impressions => impressions,
            Total::Clicks => clicks,
            Total::RevenueCents => revenue,
        }
        .to_string()
    };
    Ratio::ALL.map(|ratio| ratio.sql(total))
}

// One batch: its run's record (none outside the job runtime) and its fetch time. The raw table
// has no index for it (PostgreSQL narrows the scan to the day's partition): the write path
// folds what its INSERT returned ([`append_and_fold`]); this serves tests and tools.
fn fold_daily_sql(aggregation: Aggregation) -> String {
    fold_upsert_sql(
        aggregation,
        "$1",
        "FROM ad_stats_raw WHERE job_record_id IS NOT DISTINCT FROM $2 AND fetched_at = $3",
    )
}

// SQLite: the rows this transaction appended, found by rowid (`BEGIN IMMEDIATE` holds the write
// lock from before the INSERT, so every rowid above the largest one before it is ours).
fn fold_appended_sql(aggregation: Aggregation) -> String {
    fold_upsert_sql(aggregation, "$1", "FROM ad_stats_raw WHERE id > $2")
}

const LAST_RAW_ROWID_SQLITE: &str = "SELECT COALESCE(MAX(id), 0) AS id FROM ad_stats_raw";

#[derive(QueryableByName)]
struct RowId {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
}

/// The fold of the raw rows `source` yields (a `FROM` clause) into `ad_stats_daily`, stamped
/// with the parameter `now`.
fn fold_upsert_sql(aggregation: Aggregation, now: &str, source: &str) -> String {
    let counters = METRICS.split(", ");
    let set = match aggregation {
        Aggregation::Sum => {
            let mut parts: Vec<String> = counters
                .map(|c| format!("{c} = ad_stats_daily.{c} + excluded.{c}"))
                .collect();
            let total = |c: &str| format!("(ad_stats_daily.{c} + excluded.{c})");
            let ratios = ratio_sql(
                &total("spend_cents"),
                &total("impressions"),
                &total("clicks"),
                &total("revenue_cents"),
            );
            for (name, expr) in ["cpm", "ctr", "roas"].into_iter().zip(ratios) {
                parts.push(format!("{name} = {expr}"));
            }
            parts
        }
        Aggregation::Latest => counters
            .chain(["cpm", "ctr", "roas"])
            .map(|c| format!("{c} = excluded.{c}"))
            .collect(),
    };
    // The first sync of a day derives its ratios from the row's totals too, rather than copying
    // the provider's: a provider's rounding (or a wrong value) would otherwise stay in the daily
    // row until a second sync recomputed it, and the two paths would disagree.
    let ratios = ratio_sql("spend_cents", "impressions", "clicks", "revenue_cents").join(", ");
    format!(
        "INSERT INTO ad_stats_daily (seller_id, level, entity_id, stat_date, {METRICS}, cpm, ctr, roas, raw_count, updated_at) \
         SELECT seller_id, level, entity_id, stat_date, {METRICS}, {ratios}, 1, {now} \
         {source} \
         ON CONFLICT (level, entity_id, stat_date) DO UPDATE SET {}, \
         raw_count = ad_stats_daily.raw_count + excluded.raw_count, updated_at = excluded.updated_at",
        set.join(", ")
    )
}

/// Folds exactly one batch of raw rows (those of the run `job_record_id` fetched at
/// `fetched_at`) into `ad_stats_daily`. Under `sum` each daily row gains the batch's numbers, so
/// the cost depends on the batch, never on how many syncs the day already had; under `latest`
/// the batch replaces them.
/// Returns the number of daily rows inserted or updated.
pub async fn fold_into_daily(
    conn: &mut DbConn,
    aggregation: Aggregation,
    job_record_id: Option<i64>,
    fetched_at: NaiveDateTime,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    use diesel::sql_types::{BigInt, Nullable};
    let sql = fold_daily_sql(aggregation);
    db_run!(conn, {
        prepared(
            diesel::sql_query(&sql)
                .bind::<Timestamp, _>(now)
                .bind::<Nullable<BigInt>, _>(job_record_id)
                .bind::<Timestamp, _>(fetched_at),
        )
        .execute(conn)
        .await
    })
}

/// PostgreSQL: the raw INSERT of [`insert_raw`] and the fold of [`fold_into_daily`] as one
/// statement, the fold reading the rows the INSERT returns instead of finding them again.
fn append_and_fold_pg_sql(aggregation: Aggregation) -> String {
    format!(
        "WITH raw AS ({INSERT_RAW_PG} RETURNING seller_id, level, entity_id, stat_date, {METRICS}) {}",
        fold_upsert_sql(aggregation, "$19", "FROM raw")
    )
}

/// Appends one batch of readings (one job's, fetched at one time) to `ad_stats_raw` and folds
/// them into `ad_stats_daily`, as [`insert_raw`] then [`fold_into_daily`] do; on PostgreSQL in
/// one statement per 10,000 rows. Returns the raw rows and daily rows written.
pub async fn append_and_fold(
    conn: &mut DbConn,
    aggregation: Aggregation,
    rows: &[NewRawStat],
    now: NaiveDateTime,
) -> QueryResult<(usize, usize)> {
    let Some(first) = rows.first() else {
        return Ok((0, 0));
    };
    // One batch (one run, one fetch time), as the callers write them.
    debug_assert!(rows
        .iter()
        .all(|r| r.job_record_id == first.job_record_id && r.fetched_at == first.fetched_at));
    if let DbConn::Postgres(pg) = conn {
        let pg: &mut super::PgConn = pg;
        let sql = append_and_fold_pg_sql(aggregation);
        let mut daily = 0;
        for chunk in rows.chunks(RAW_ROWS_PER_ARRAY_INSERT) {
            daily += prepared(bind_raw_arrays(&sql, chunk).bind::<Timestamp, _>(now))
                .execute(pg)
                .await?;
        }
        return Ok((rows.len(), daily));
    }
    // SQLite: run inside the caller's transaction (`DbConn::transaction`, BEGIN IMMEDIATE).
    let last: Vec<RowId> = db_run!(conn, {
        diesel::sql_query(LAST_RAW_ROWID_SQLITE).load(conn).await
    })?;
    let last = last.into_iter().next().map_or(0, |r| r.id);
    let raw = insert_raw(conn, rows).await?;
    let sql = fold_appended_sql(aggregation);
    let daily = db_run!(conn, {
        prepared(
            diesel::sql_query(&sql)
                .bind::<Timestamp, _>(now)
                .bind::<diesel::sql_types::BigInt, _>(last),
        )
        .execute(conn)
        .await
    })?;
    Ok((raw, daily))
}

// The counters are 4-byte integers on PostgreSQL: read back as BIGINT on both backends.
const RAW_ROWS_SQL: &str = "\
    SELECT seller_id, level, entity_id, stat_date, spend_cents, \
        CAST(impressions AS BIGINT) AS impressions, CAST(clicks AS BIGINT) AS clicks, \
        CAST(content_views AS BIGINT) AS content_views, CAST(add_to_cart AS BIGINT) AS add_to_cart, \
        CAST(checkouts AS BIGINT) AS checkouts, CAST(purchases AS BIGINT) AS purchases, \
        revenue_cents, cpm, ctr, roas, provider, job_record_id, fetched_at \
    FROM ad_stats_raw WHERE level = $1 AND entity_id = $2 AND stat_date = $3 \
    ORDER BY fetched_at";

/// Raw rows of one entity and day, oldest first (tests and tools: no index serves it, the
/// table is scanned).
pub async fn raw_rows(
    conn: &mut DbConn,
    level: &str,
    entity_id: &str,
    date: NaiveDate,
) -> QueryResult<Vec<RawStat>> {
    db_run!(conn, {
        diesel::sql_query(RAW_ROWS_SQL)
            .bind::<Text, _>(level)
            .bind::<Text, _>(entity_id)
            .bind::<Date, _>(date)
            .load(conn)
            .await
    })
}

/// The daily row of one entity and day, if any.
pub async fn daily_row(
    conn: &mut DbConn,
    level: &str,
    entity_id: &str,
    date: NaiveDate,
) -> QueryResult<Option<DailyStat>> {
    db_run!(conn, {
        ad_stats_daily::table
            .filter(ad_stats_daily::level.eq(level))
            .filter(ad_stats_daily::entity_id.eq(entity_id))
            .filter(ad_stats_daily::stat_date.eq(date))
            .select(DailyStat::as_select())
            .first(conn)
            .await
            .optional()
    })
}

/// The rolled-up row of one sellpage and day, if any.
pub async fn sellpage_row(
    conn: &mut DbConn,
    sellpage_id: &str,
    date: NaiveDate,
) -> QueryResult<Option<SellpageStat>> {
    db_run!(conn, {
        sellpage_stats_daily::table
            .filter(sellpage_stats_daily::sellpage_id.eq(sellpage_id))
            .filter(sellpage_stats_daily::stat_date.eq(date))
            .select(SellpageStat::as_select())
            .first(conn)
            .await
            .optional()
    })
}

/// Row counts of the three tiers for one seller: (raw, daily, sellpage).
pub async fn tier_counts(conn: &mut DbConn, seller_id: &str) -> QueryResult<(i64, i64, i64)> {
    db_run!(conn, {
        let raw = ad_stats_raw::table
            .filter(ad_stats_raw::seller_id.eq(seller_id))
            .count()
            .get_result::<i64>(conn)
            .await?;
        let daily = ad_stats_daily::table
            .filter(ad_stats_daily::seller_id.eq(seller_id))
            .count()
            .get_result::<i64>(conn)
            .await?;
        let sellpage = sellpage_stats_daily::table
            .filter(sellpage_stats_daily::seller_id.eq(seller_id))
            .count()
            .get_result::<i64>(conn)
            .await?;
        Ok((raw, daily, sellpage))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_appear_in_bind_order() {
        for sql in [
            fold_daily_sql(Aggregation::Sum),
            fold_daily_sql(Aggregation::Latest),
            fold_appended_sql(Aggregation::Sum),
            grouped::append_and_fold_grouped_pg_sql(Aggregation::Sum),
            RAW_ROWS_SQL.to_string(),
        ] {
            crate::db::assert_placeholders_in_order(&sql);
        }
    }

    #[test]
    fn sum_mode_recomputes_ratios_from_totals() {
        let sql = fold_daily_sql(Aggregation::Sum);
        assert!(sql.contains("spend_cents = ad_stats_daily.spend_cents + excluded.spend_cents"));
        assert!(
            sql.contains("cpm = CASE WHEN (ad_stats_daily.impressions + excluded.impressions) = 0")
        );
        assert!(sql
            .contains("roas = CASE WHEN (ad_stats_daily.spend_cents + excluded.spend_cents) = 0"));
    }

    #[test]
    fn first_sync_of_a_day_derives_ratios_from_the_rows_totals() {
        for aggregation in [Aggregation::Sum, Aggregation::Latest] {
            let sql = fold_daily_sql(aggregation);
            let select = &sql[sql.find("SELECT").unwrap()..sql.find("FROM ad_stats_raw").unwrap()];
            assert!(
                select.contains("CASE WHEN impressions = 0 THEN 0.0 ELSE CAST(spend_cents"),
                "{select}"
            );
            assert!(
                select.contains("CASE WHEN spend_cents = 0 THEN 0.0 ELSE CAST(revenue_cents"),
                "{select}"
            );
            assert!(!select.contains(", cpm,"), "copies the raw ratio: {select}");
        }
    }

    #[test]
    fn latest_mode_replaces_the_numbers() {
        let sql = fold_daily_sql(Aggregation::Latest);
        assert!(sql.contains("spend_cents = excluded.spend_cents"));
        // `excluded` holds the ratios the SELECT derived from the latest row's totals.
        assert!(sql.contains("cpm = excluded.cpm"));
        assert!(sql.contains("raw_count = ad_stats_daily.raw_count + excluded.raw_count"));
    }
}
