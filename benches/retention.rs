//! Does the raw table stay bounded? Simulates a month of syncs: each simulated day appends its raw
//! rows (dated that day, fetched that day), then runs the sweeper's retention passes as of the
//! end of that day, and prints the raw table's row count. Once the retention window is full the
//! count stops growing: each day deletes about what it adds, in batches of 5,000.
//!
//!     cargo bench --bench retention                          # embedded SQLite
//!     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench retention
//!     BENCH_SELLERS=200 BENCH_DAYS=45 BENCH_RETENTION_DAYS=35 cargo bench --bench retention
//!
//! Defaults (20 sellers, 30 days, 7-day retention so the bound shows within the month) take a
//! few seconds.

#[path = "support/mod.rs"]
mod support;

use std::time::Instant;

use ads_stats::config::Settings;
use ads_stats::db::catalog::{insert_catalog, Catalog};
use ads_stats::db::models::{NewRawStat, NewSeller};
use ads_stats::db::retention::{self, RAW_BATCHES_PER_SWEEP, RAW_DELETE_BATCH};
use ads_stats::db::{stats, Db};
use chrono::{Duration, NaiveDateTime};

/// Entities per seller and syncs per day: the rows one seller adds in a day.
const ENTITIES: usize = 10;
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

async fn run(backend: &str, url: &str) {
    let sellers = knob("BENCH_SELLERS", 20);
    let days = knob("BENCH_DAYS", 30);
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

    let start: NaiveDateTime = (ads_stats::db::now_utc() - Duration::days(days as i64))
        .date()
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists");
    let per_day = sellers * ENTITIES * SYNCS_PER_DAY;
    println!(
        "{backend}: {sellers} sellers x {ENTITIES} entities x {SYNCS_PER_DAY} syncs = {per_day} raw rows a day, \
         {days} days, retention {retention_days}d, batches of {RAW_DELETE_BATCH}, at most {RAW_BATCHES_PER_SWEEP} a pass"
    );
    println!("  day   inserted   deleted  passes  statements  raw rows  prune ms");
    let started = Instant::now();
    let mut peak = 0;
    for day in 0..days {
        let midnight = start + Duration::days(day as i64);
        for sync in 0..SYNCS_PER_DAY {
            let fetched_at = midnight + Duration::minutes((sync * 120) as i64);
            let rows: Vec<NewRawStat> = (0..sellers)
                .flat_map(|s| {
                    (0..ENTITIES).map(move |e| {
                        raw_row(
                            s,
                            e,
                            ((day * SYNCS_PER_DAY + sync) * sellers + s) as i64,
                            fetched_at,
                        )
                    })
                })
                .collect();
            stats::insert_raw(&mut conn, &rows).await.expect("insert");
        }
        // The sweeper as of the end of the simulated day: passes until no backlog is left (in
        // the service, one pass per poll interval).
        let cut_off = midnight + Duration::days(1) - Duration::days(retention_days as i64);
        let t = Instant::now();
        let (mut deleted, mut passes, mut statements) = (0, 0, 0);
        loop {
            let pruned =
                retention::prune_raw(&mut conn, cut_off, RAW_DELETE_BATCH, RAW_BATCHES_PER_SWEEP)
                    .await
                    .expect("prune");
            deleted += pruned.deleted;
            passes += 1;
            statements += pruned.batches;
            if !pruned.more {
                break;
            }
        }
        let prune_ms = t.elapsed().as_secs_f64() * 1e3;
        let total = retention::raw_rows_total(&mut conn).await.expect("count");
        peak = peak.max(total);
        println!(
            "  {:>3}  {per_day:>9}  {deleted:>8}  {passes:>6}  {statements:>10}  {total:>8}  {prune_ms:>8.1}",
            day + 1
        );
    }
    let bound = per_day * retention_days;
    println!(
        "  peak {peak} raw rows (bound: {retention_days} days x {per_day} = {bound}); {} rows inserted in all; {:.1}s",
        per_day * days,
        started.elapsed().as_secs_f64()
    );
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
