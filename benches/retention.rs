//! What does raw retention cost, before and now? Simulates days of syncs: each simulated day
//! appends its raw rows (dated that day, fetched that day), then runs the sweeper's retention as
//! of the end of that day, and prints the raw table's row count and what the retention took.
//!
//! On PostgreSQL it runs twice on the same rows, side by side:
//! - **before**: batched DELETEs of 5,000 rows by `fetched_at` (the rows in one unpartitioned
//!   heap with a `fetched_at` index: here the DEFAULT partition, indexed as the old table was);
//! - **now**: the sweeper's partition work, each day in its own partition created ahead, and a
//!   day past the retention dropped whole.
//!
//! On SQLite retention is the batched DELETEs (no partitions there).
//!
//!     cargo bench --bench retention                          # embedded SQLite
//!     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench retention
//!     BENCH_SELLERS=200 BENCH_DAYS=45 BENCH_RETENTION_DAYS=35 cargo bench --bench retention
//!
//! Defaults: 1,000 sellers x 12 entities x 12 syncs = 144,000 raw rows a day, 10 days, a 7-day
//! retention: about a million rows in the table once the window is full, 144,000 going a day.

#[path = "support/mod.rs"]
mod support;

use std::time::Instant;

use ads_stats::config::Settings;
use ads_stats::db::catalog::{insert_catalog, Catalog};
use ads_stats::db::models::{NewRawStat, NewSeller};
use ads_stats::db::retention::{self, RAW_BATCHES_PER_SWEEP, RAW_DELETE_BATCH};
use ads_stats::db::{writes, Db, DbConn};
use ads_stats::db_run;
use chrono::{Duration, NaiveDateTime};
use diesel_async::SimpleAsyncConnection;

/// Entities per seller and syncs per day: the rows one seller adds in a day.
const ENTITIES: usize = 12;
const SYNCS_PER_DAY: usize = 12;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    support::on_each_backend("retention", |backend, url| async move {
        run(backend, &url).await
    });
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Batched DELETEs by `fetched_at` through its index.
    Deletes,
    /// Day partitions created ahead, dropped whole.
    Partitions,
}

async fn run(backend: &str, url: &str) {
    let sellers = knob("BENCH_SELLERS", 1000);
    let days = knob("BENCH_DAYS", 10);
    let retention_days = knob("BENCH_RETENTION_DAYS", 7).max(2);
    let settings = Settings::defaults_with(|s| s.database.url = url.to_string()).expect("settings");
    let db = Db::connect(&settings.database).expect("pool");
    db.run_migrations(&settings.database_url())
        .await
        .expect("migrations");
    let mut catalog = Catalog::default();
    for s in 0..sellers {
        catalog.sellers.push(NewSeller {
            id: format!("bench-{s:04}"),
            name: format!("Bench {s}"),
            status: "ACTIVE".into(),
        });
    }
    let mut conn = db.conn().await.expect("conn");
    insert_catalog(&mut conn, &catalog).await.expect("seed");
    let per_day = sellers * ENTITIES * SYNCS_PER_DAY;
    println!(
        "{backend}: {sellers} sellers x {ENTITIES} entities x {SYNCS_PER_DAY} syncs = {per_day} raw rows a day, \
         {days} days, retention {retention_days}d"
    );
    let modes: &[Mode] = if backend == "postgres" {
        &[Mode::Deletes, Mode::Partitions]
    } else {
        &[Mode::Deletes]
    };
    let mut summary = Vec::new();
    for &mode in modes {
        summary.push(simulate(&mut conn, backend, mode, sellers, days, retention_days).await);
    }
    if summary.len() == 2 {
        let (before, now) = (&summary[0], &summary[1]);
        println!(
            "  side by side, over the days that pruned: before {:.0} ms in {} statements; now {:.0} ms in {} statements",
            before.0, before.1, now.0, now.1
        );
    }
}

/// One simulation; returns the retention's total milliseconds and statements over the days that
/// deleted rows.
async fn simulate(
    conn: &mut DbConn,
    backend: &str,
    mode: Mode,
    sellers: usize,
    days: usize,
    retention_days: usize,
) -> (f64, usize) {
    let postgres = backend == "postgres";
    let start: NaiveDateTime = (ads_stats::db::now_utc() - Duration::days(days as i64))
        .date()
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists");
    if postgres {
        // A clean table: no rows, no partition of a simulated day (they are all in the past, so
        // the service's own partitions, today and ahead, stay out of the way).
        let mut sql = String::from("TRUNCATE ad_stats_raw;");
        for day in retention::raw_partition_days(conn)
            .await
            .expect("partitions")
        {
            if day < ads_stats::db::now_utc().date() {
                sql.push_str(&format!(
                    "DROP TABLE {};",
                    retention::raw_partition_name(day)
                ));
            }
        }
        sql.push_str(match mode {
            // The old table's retention index, on the heap the rows now go to.
            Mode::Deletes => {
                "CREATE INDEX IF NOT EXISTS bench_default_fetched_at ON ad_stats_raw_default (fetched_at);"
            }
            Mode::Partitions => "DROP INDEX IF EXISTS bench_default_fetched_at;",
        });
        db_run!(conn, { conn.batch_execute(&sql).await }).expect("clean table");
    }
    let title = match mode {
        Mode::Deletes => format!(
            "batched DELETEs of {RAW_DELETE_BATCH}, at most {RAW_BATCHES_PER_SWEEP} a pass{}",
            if postgres { " (before)" } else { "" }
        ),
        Mode::Partitions => "day partitions dropped whole (now)".to_string(),
    };
    println!("  {backend}, {title}:");
    println!("  day   inserted   deleted  statements  raw rows  prune ms");
    let per_day = sellers * ENTITIES * SYNCS_PER_DAY;
    let (mut total_ms, mut total_statements) = (0.0, 0);
    let mut peak = 0;
    let mut job = 0i64;
    for day in 0..days {
        let midnight = start + Duration::days(day as i64);
        if mode == Mode::Partitions {
            // The sweeper made this day's partition days ago.
            retention::ensure_raw_partitions(conn, midnight.date(), 1)
                .await
                .expect("partition");
        }
        for sync in 0..SYNCS_PER_DAY {
            let fetched_at = midnight + Duration::minutes((sync * 120) as i64);
            job += 1;
            let rows: Vec<NewRawStat> = (0..sellers)
                .flat_map(|s| (0..ENTITIES).map(move |e| raw_row(s, e, job, fetched_at)))
                .collect();
            writes::insert_raw(conn, &rows).await.expect("insert");
        }
        let before_total = retention::raw_rows_total(conn).await.expect("count");
        // The sweeper as of the end of the simulated day: passes until no backlog is left (in
        // the service, one pass per poll interval).
        let end = midnight + Duration::days(1);
        let cut_off = end - Duration::days(retention_days as i64);
        let t = Instant::now();
        let mut statements = 0;
        if mode == Mode::Partitions {
            let work = retention::maintain_raw_partitions(conn, end, cut_off)
                .await
                .expect("partitions");
            statements += work.dropped.len();
        }
        loop {
            let pruned =
                retention::prune_raw(conn, cut_off, RAW_DELETE_BATCH, RAW_BATCHES_PER_SWEEP)
                    .await
                    .expect("prune");
            statements += pruned.batches;
            if !pruned.more {
                break;
            }
        }
        let prune_ms = t.elapsed().as_secs_f64() * 1e3;
        let total = retention::raw_rows_total(conn).await.expect("count");
        let deleted = before_total - total;
        if deleted > 0 {
            total_ms += prune_ms;
            total_statements += statements;
        }
        peak = peak.max(before_total);
        println!(
            "  {:>3}  {per_day:>9}  {deleted:>8}  {statements:>10}  {total:>8}  {prune_ms:>8.1}",
            day + 1
        );
    }
    println!(
        "  peak {peak} raw rows before a prune; {} rows inserted in all",
        per_day * days
    );
    (total_ms, total_statements)
}

fn raw_row(seller: usize, entity: usize, job: i64, fetched_at: NaiveDateTime) -> NewRawStat {
    NewRawStat {
        seller_id: format!("bench-{seller:04}"),
        level: "CAMPAIGN".into(),
        entity_id: format!("bench-{seller:04}-cmp-{entity}"),
        stat_date: fetched_at.date(),
        spend_cents: 10_000,
        impressions: 11_764,
        clicks: 235,
        content_views: 164,
        add_to_cart: 19,
        checkouts: 9,
        purchases: 3,
        revenue_cents: 24_000,
        cpm: 8.5,
        ctr: 2.0,
        roas: 2.4,
        provider: "mock".into(),
        job_record_id: Some(job),
        fetched_at,
    }
}
