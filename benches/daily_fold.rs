//! Does the 288th sync of a day cost what the first did? Runs a day's worth of 5-minute syncs for a
//! seller with many campaigns and prints how long the writes took early and late in the day.
//!
//!     cargo bench --bench daily_fold                       # embedded SQLite
//!     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench daily_fold
//!
//! On PostgreSQL it works in a schema of its own and drops it afterwards.

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ads_stats::config::{Aggregation, Settings};
use ads_stats::db::catalog::{insert_catalog, Catalog};
use ads_stats::db::models::{NewAdConnection, NewCampaign, NewSeller};
use ads_stats::db::{writes, Db, DbConn};
use ads_stats::domain::Level;
use ads_stats::pipeline::{Pipeline, SyncRequest};
use ads_stats::providers::MockProvider;

const CAMPAIGNS: usize = 200;
const SYNCS_PER_DAY: usize = 288;
const WINDOW: usize = 20;

fn main() {
    support::on_each_backend("daily-fold", |backend, url| async move {
        run(backend, &url).await
    });
}

async fn run(backend: &str, url: &str) {
    let settings = Settings::defaults_with(|s| s.database.url = url.to_string()).expect("settings");
    let db = Db::connect(&settings.database).expect("pool");
    db.run_migrations(&settings.database_url())
        .await
        .expect("migrations");
    let mut catalog = Catalog::default();
    catalog.sellers.push(NewSeller {
        id: "bench".into(),
        name: "Bench".into(),
        status: "ACTIVE".into(),
    });
    catalog.connections.push(NewAdConnection {
        id: "bench-conn".into(),
        seller_id: "bench".into(),
        provider: "META".into(),
        external_account_id: "act_bench".into(),
        status: "ACTIVE".into(),
    });
    for i in 0..CAMPAIGNS {
        catalog.campaigns.push(NewCampaign {
            id: format!("bench-cmp-{i:04}"),
            seller_id: "bench".into(),
            connection_id: "bench-conn".into(),
            sellpage_id: None,
            name: format!("Campaign {i}"),
            status: "ACTIVE".into(),
            daily_budget_cents: 10_000 + i as i64,
        });
    }
    insert_catalog(&mut db.conn().await.expect("conn"), &catalog)
        .await
        .expect("seed");

    let pipeline = Pipeline::new(db.clone(), Arc::new(MockProvider), Aggregation::Sum);
    let request = SyncRequest::one_day("bench", Level::Campaign, "2026-11-28".parse().unwrap());
    // Per sync: [raw insert, daily fold, sellpage rollup, commit]. The commit is timed apart
    // because that is where SQLite's `synchronous` setting spends its fsyncs.
    let mut steps: Vec<[Duration; 4]> = Vec::with_capacity(SYNCS_PER_DAY);
    for _ in 0..SYNCS_PER_DAY {
        let fetched = pipeline.fetch(&request).await.expect("fetch");
        let mut conn = db.conn().await.expect("conn");
        let (timings, work_done) = conn
            .transaction(async |c: &mut DbConn| {
                let now = ads_stats::db::now_utc();
                let t0 = Instant::now();
                writes::insert_raw(c, &fetched.rows).await?;
                let t1 = Instant::now();
                // A batch outside the job runtime: no record (`job_record_id` is none).
                writes::fold_into_daily(c, Aggregation::Sum, None, fetched.fetched_at, now).await?;
                let t2 = Instant::now();
                writes::roll_up_sellpages(c, "bench", request.date_from, request.date_to, now)
                    .await?;
                let t3 = Instant::now();
                Ok::<_, diesel::result::Error>(([t1 - t0, t2 - t1, t3 - t2], t3))
            })
            .await
            .expect("write");
        let [raw, fold, rollup] = timings;
        steps.push([raw, fold, rollup, work_done.elapsed()]);
    }
    let mean = |range: std::ops::Range<usize>, step: usize| {
        let n = range.len() as f64;
        steps[range]
            .iter()
            .map(|s| s[step].as_secs_f64())
            .sum::<f64>()
            / n
            * 1e3
    };
    println!("{backend}: {CAMPAIGNS} campaigns, {SYNCS_PER_DAY} syncs of one day (mean ms of the first and last {WINDOW} syncs)");
    for (step, name) in ["raw insert", "daily fold", "sellpage rollup", "commit"]
        .into_iter()
        .enumerate()
    {
        let first = mean(0..WINDOW, step);
        let last = mean(SYNCS_PER_DAY - WINDOW..SYNCS_PER_DAY, step);
        println!(
            "  {name:<16} first {first:>7.2}  last {last:>7.2}  ratio {:>5.2}",
            last / first
        );
    }
}
