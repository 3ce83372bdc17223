//! What does a raw row cost on disk, and a daily row? Writes ticks of N sellers of the tick
//! benchmark's catalogue (10 campaigns x 3 ad sets x 3 ads each, the mock's readings, one batch
//! per seller and level, as the service writes them), then prints the bytes per raw row and per
//! daily row with every index, measured by the database itself (PostgreSQL:
//! `pg_total_relation_size` over every partition; SQLite: the `dbstat` table, pages of the table
//! and of its indexes), and what that means a day at 100, 1,000 and 10,000 sellers.
//!
//!     cargo bench --bench raw_size                           # embedded SQLite
//!     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench raw_size
//!     BENCH_SELLERS=1000 BENCH_TICKS=2 cargo bench --bench raw_size
//!
//! Defaults: 1,000 sellers, 2 ticks of the same day (the second adds raw rows and updates the
//! daily rows in place, as the day's later ticks do); under a minute on each backend.

#[path = "support/mod.rs"]
mod support;

use ads_stats::config::{Aggregation, Settings};
use ads_stats::db::catalog::{DeliveringAd, DeliveringAdset, DeliveringCampaign};
use ads_stats::db::models::NewRawStat;
use ads_stats::db::{self, writes, Db, DbConn};
use ads_stats::db_run;
use ads_stats::domain::EntityBudget;
use ads_stats::pipeline::entities::{ad_budgets, adset_budgets, campaign_budgets};
use ads_stats::providers::mock::mock_metrics;
use chrono::{NaiveDate, NaiveDateTime};
use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

/// The tick benchmark's catalogue shape (benches/tick.rs).
const CAMPAIGNS: usize = 10;
const ADSETS: usize = 3;
const ADS: usize = 3;
/// The default cadence, `*/5` minutes: ticks a day.
const TICKS_PER_DAY: u64 = 24 * 60 / 5;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    support::on_each_backend("raw_size", |backend, url| async move {
        run(backend, &url).await
    });
}

/// One raw row as the pipeline builds it.
fn raw(
    seller: &str,
    level: &str,
    entity: EntityBudget,
    date: NaiveDate,
    job_record_id: i64,
    at: NaiveDateTime,
) -> NewRawStat {
    let m = mock_metrics(seller, &entity.entity_id, date, entity.daily_budget_cents);
    NewRawStat {
        seller_id: seller.to_string(),
        level: level.into(),
        entity_id: entity.entity_id,
        stat_date: date,
        spend_cents: m.spend_cents,
        impressions: m.impressions,
        clicks: m.clicks,
        content_views: m.content_views,
        add_to_cart: m.add_to_cart,
        checkouts: m.checkouts,
        purchases: m.purchases,
        revenue_cents: m.revenue_cents,
        cpm: m.cpm,
        ctr: m.ctr,
        roas: m.roas,
        provider: "mock".into(),
        job_record_id: Some(job_record_id),
        fetched_at: at,
    }
}

/// One seller's three batches (campaign, ad set, ad) of one tick, in the tick benchmark's shape.
fn seller_batches(
    i: usize,
    date: NaiveDate,
    first_job: i64,
    at: NaiveDateTime,
) -> Vec<Vec<NewRawStat>> {
    let seller = format!("bs-{i}");
    let campaigns: Vec<DeliveringCampaign> = (1..=CAMPAIGNS)
        .map(|k| DeliveringCampaign {
            id: format!("bm-{i}-{k}"),
            daily_budget_cents: 4000 + 700 * k as i64,
            connection_id: format!("bc-{i}"),
            external_id: None,
        })
        .collect();
    let adsets: Vec<DeliveringAdset> = (1..=CAMPAIGNS)
        .flat_map(|k| {
            (1..=ADSETS).map(move |s| DeliveringAdset {
                id: format!("ba-{i}-{k}-{s}"),
                campaign_id: format!("bm-{i}-{k}"),
                daily_budget_cents: (s == 3).then_some(1500 + 100 * k as i64),
                external_id: None,
            })
        })
        .collect();
    let ads: Vec<DeliveringAd> = adsets
        .iter()
        .flat_map(|set| {
            (1..=ADS).map(move |a| DeliveringAd {
                id: format!("{}-{a}", set.id.replacen("ba-", "bd-", 1)),
                adset_id: set.id.clone(),
                external_id: None,
            })
        })
        .collect();
    [
        ("CAMPAIGN", campaign_budgets(&campaigns)),
        ("ADSET", adset_budgets(&campaigns, &adsets)),
        ("AD", ad_budgets(&campaigns, &adsets, &ads)),
    ]
    .into_iter()
    .zip(first_job..)
    .map(|((level, entities), job)| {
        entities
            .into_iter()
            .map(|e| raw(&seller, level, e, date, job, at))
            .collect()
    })
    .collect()
}

#[derive(QueryableByName)]
struct Size {
    #[diesel(sql_type = Text)]
    part: String,
    #[diesel(sql_type = BigInt)]
    bytes: i64,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

// PostgreSQL: heap (with its TOAST and free-space maps) and indexes of every partition.
const PG_SIZES: &str = "\
    WITH parts AS (SELECT CAST($1 AS regclass) AS relid \
                   UNION SELECT relid FROM pg_partition_tree(CAST($1 AS regclass))) \
    SELECT 'table' AS part, CAST(COALESCE(SUM(pg_table_size(relid)), 0) AS BIGINT) AS bytes FROM parts \
    UNION ALL \
    SELECT 'indexes', CAST(COALESCE(SUM(pg_indexes_size(relid)), 0) AS BIGINT) FROM parts";

// SQLite: the pages of the table and of each of its indexes.
const SQLITE_SIZES: &str = "\
    SELECT CASE WHEN d.name = $1 THEN 'table' ELSE d.name END AS part, \
           CAST(SUM(d.pgsize) AS BIGINT) AS bytes \
    FROM dbstat d WHERE d.name = $1 \
       OR d.name IN (SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = $1) \
    GROUP BY d.name ORDER BY d.name";

/// (part, bytes) of a table and its indexes, and its rows.
async fn sizes(conn: &mut DbConn, table: &str) -> (Vec<(String, i64)>, i64) {
    let parts: Vec<Size> = db_run!(conn, postgres {
        diesel::sql_query(PG_SIZES).bind::<Text, _>(table).load(conn).await
    }, sqlite {
        diesel::sql_query(SQLITE_SIZES).bind::<Text, _>(table).load(conn).await
    })
    .expect("sizes");
    let rows: Vec<Count> = db_run!(conn, {
        diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
            .load(conn)
            .await
    })
    .expect("count");
    (
        parts.into_iter().map(|s| (s.part, s.bytes)).collect(),
        rows[0].n,
    )
}

/// Prints the table's parts and returns its bytes per row, everything included.
async fn per_row(conn: &mut DbConn, backend: &str, table: &str) -> f64 {
    let (parts, rows) = sizes(conn, table).await;
    let total: i64 = parts.iter().map(|(_, b)| b).sum();
    let per = total as f64 / rows.max(1) as f64;
    let detail = parts
        .iter()
        .map(|(p, b)| format!("{p} {:.1}", *b as f64 / rows.max(1) as f64))
        .collect::<Vec<_>>()
        .join(", ");
    println!("  {backend} {table}: {rows} rows, {total} bytes = {per:.1} bytes a row ({detail})");
    per
}

async fn run(backend: &str, url: &str) {
    let sellers = knob("BENCH_SELLERS", 1000);
    let ticks = knob("BENCH_TICKS", 2);
    let settings = Settings::defaults_with(|s| s.database.url = url.to_string()).expect("settings");
    let db = Db::connect(&settings.database).expect("pool");
    db.run_migrations(&settings.database_url())
        .await
        .expect("migrations");
    let mut conn = db.conn().await.expect("conn");
    let date = db::now_utc().date();
    let mut per_seller = 0;
    let mut job = 1;
    for _ in 0..ticks {
        let at = db::now_utc();
        for i in 1..=sellers {
            for batch in seller_batches(i, date, job, at) {
                job += 1;
                per_seller += batch.len();
                conn.transaction(async |conn: &mut DbConn| {
                    writes::append_and_fold(conn, Aggregation::Sum, &batch, at).await
                })
                .await
                .expect("write");
            }
        }
    }
    let per_seller = per_seller / (sellers * ticks).max(1);
    if backend == "postgres" {
        let conn = &mut conn;
        db_run!(conn, { diesel::sql_query("ANALYZE").execute(conn).await }).expect("analyze");
    }
    println!(
        "{backend}: {sellers} sellers x {per_seller} entities (the tick benchmark's catalogue), {ticks} ticks of one day"
    );
    let conn = &mut conn;
    let raw = per_row(conn, backend, "ad_stats_raw").await;
    let daily = per_row(conn, backend, "ad_stats_daily").await;
    println!("  at the default cadence ({TICKS_PER_DAY} ticks a day): a day adds, for");
    println!("    sellers   raw rows/day   raw GB/day   daily rows/day   daily MB/day");
    for n in [100u64, 1_000, 10_000] {
        let raw_rows = n * per_seller as u64 * TICKS_PER_DAY;
        let daily_rows = n * per_seller as u64;
        println!(
            "    {n:>7}   {raw_rows:>12}   {:>10.2}   {daily_rows:>14}   {:>12.1}",
            raw_rows as f64 * raw / 1e9,
            daily_rows as f64 * daily / 1e6
        );
    }
}
