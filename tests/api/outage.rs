//! Database outages: PostgreSQL cut in the middle of a tick, then healed.

use std::time::{Duration, Instant};

use ads_stats::db::catalog::insert_catalog;
use ads_stats::db::models::JobRecord;
use ads_stats::db::Db;
use chrono::{Datelike, Timelike, Utc};

use crate::helpers::{
    assert_books_balance, generated_catalog, migrated_db, panics_in, wait_until_idle, Backend,
    CuttableProxy, ServiceProcess, TestDb,
};

/// Sellers in the tick: 600 jobs, enough that the cut lands while most still wait.
const SELLERS: usize = 200;
const OUTAGE: Duration = Duration::from_secs(10);

/// The network between the service and PostgreSQL fails for 10 s while a tick's jobs run, then
/// comes back on the same address. The service reports the outage on `/health` at once, does
/// not panic, loses no job and writes nothing by halves; once PostgreSQL is back every job the
/// tick recorded completes, each counted exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cut_mid_tick_then_healed_every_job_succeeds_once() {
    let started = Instant::now();
    let test_db = TestDb::new(Backend::Postgres).await;
    let db = migrated_db(&test_db).await;
    let catalog = generated_catalog("outage", SELLERS);
    insert_catalog(&mut db.conn().await.unwrap(), &catalog)
        .await
        .unwrap();
    let mut proxy = CuttableProxy::in_front_of(&test_db.url).await;
    let proxied = proxy.reroute(&test_db.url);

    // One tick, a few seconds from now (cron with seconds first and a year: it fires once).
    let tick_at = Utc::now() + chrono::Duration::seconds(4);
    let cron = format!(
        "{} {} {} {} {} * {}",
        tick_at.second(),
        tick_at.minute(),
        tick_at.hour(),
        tick_at.day(),
        tick_at.month(),
        tick_at.year()
    );
    let service = ServiceProcess::start(&[
        ("DATABASE_URL", proxied.as_str()),
        ("ADS_STATS_SCHEDULER__CRON", cron.as_str()),
        ("ADS_STATS_JOBS__POLL_INTERVAL", "100ms"),
        ("ADS_STATS_JOBS__BACKOFF", "200ms"),
        // Longer than the outage: jobs cut off mid-attempt must come back through an ordinary
        // failed attempt and a retry with backoff, not through the sweeper's rescue.
        ("ADS_STATS_JOBS__RESCUE_AFTER", "30s"),
    ])
    .await;
    assert!(
        Utc::now() < tick_at,
        "the service took over 4 s to start and missed its one tick"
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let health = || async {
        client
            .get(service.url("/health"))
            .send()
            .await
            .expect("/health answers")
    };
    assert_eq!(health().await.status(), 200);

    // Cut while the tick's work is under way: a tenth of its jobs done, three running. The tick
    // recorded all its jobs in one transaction before any ran, so every one must complete.
    let progress = wait_for_progress(&db, Duration::from_secs(30), |p| {
        p.succeeded >= SELLERS as i64 * 3 / 10 && p.running >= 3
    })
    .await;
    proxy.cut().await;
    let cut_at = Instant::now();
    let recorded_at_cut = job_records(&db).await.len();
    assert!(
        (progress.succeeded as usize) < SELLERS * 3,
        "the tick was over before the cut ({progress:?}); give it more sellers"
    );

    // The probe tells the load balancer at once, and keeps telling it.
    loop {
        let response = health().await;
        if response.status() == 503 {
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["status"], "unavailable", "{body}");
            break;
        }
        assert_eq!(response.status(), 200, "only 200 or 503 from /health");
        assert!(
            cut_at.elapsed() < Duration::from_secs(3),
            "/health still said 200 {:?} after the cut",
            cut_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let noticed = cut_at.elapsed();
    assert!(
        noticed < Duration::from_secs(3),
        "503 came {noticed:?} after the cut"
    );
    tokio::time::sleep(OUTAGE.saturating_sub(cut_at.elapsed()) / 2).await;
    assert_eq!(health().await.status(), 503, "still down in the middle");
    tokio::time::sleep(OUTAGE.saturating_sub(cut_at.elapsed())).await;

    // Jobs still RUNNING now were cut off mid-attempt (a commit already on its way at the cut may
    // have landed: those are SUCCEEDED by now, counted once, and not among these).
    let stranded: Vec<i64> = job_records(&db)
        .await
        .iter()
        .filter(|j| j.status == ads_stats::db::jobs::RUNNING)
        .map(|j| j.id)
        .collect();
    assert!(
        !stranded.is_empty(),
        "the cut was meant to land while jobs run ({progress:?} just before it)"
    );
    proxy.heal().await;
    let healed_at = Instant::now();
    loop {
        let response = health().await;
        if response.status() == 200 {
            break;
        }
        let body = response.text().await.unwrap_or_default();
        assert!(
            healed_at.elapsed() < Duration::from_secs(10),
            "/health never recovered after the heal: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = healed_at.elapsed();
    // Up to `jobs.rescue_after` (30 s) for a job stranded by a lost claim answer, plus the run.
    wait_until_idle(&db, Duration::from_secs(60)).await;
    let drained = healed_at.elapsed();
    let (status, log) = service.terminate().await;
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        panics_in(&log).is_empty(),
        "the service panicked: {:?}",
        panics_in(&log)
    );

    // Cut-off attempts are recorded as failed and retried with backoff once the database is
    // back. (A claim whose commit landed but whose answer was lost at the cut can only be taken
    // back by the sweeper after `jobs.rescue_after`; that is allowed.)
    assert!(
        log.contains("job attempt failed; will retry"),
        "cut-off attempts were recorded as failed and retried: {log}"
    );

    let books = assert_books_balance(&db, &catalog).await;
    assert!(
        books.jobs >= recorded_at_cut,
        "no job recorded before the cut is lost: {recorded_at_cut} then, {books:?} now"
    );
    let records = job_records(&db).await;
    for id in &stranded {
        let job = records.iter().find(|j| j.id == *id).expect("record kept");
        assert!(
            job.attempts >= 2,
            "job {id} was running at the cut, so that attempt failed and it ran again: {job:?}"
        );
    }
    println!(
        "outage: cut with {recorded_at_cut} jobs recorded ({progress:?}), {} stranded; 503 \
         after {noticed:?}; healthy {recovered:?} after the heal, idle {drained:?} after it; \
         {:.1?} in all; {books}",
        stranded.len(),
        started.elapsed(),
    );
}

async fn job_records(db: &Db) -> Vec<JobRecord> {
    let mut conn = db.conn().await.unwrap();
    ads_stats::db::jobs::all(&mut conn).await.unwrap()
}

/// Job records by status.
#[derive(Debug, Clone, Copy)]
struct Progress {
    running: i64,
    succeeded: i64,
}

/// Polls the job records until `done` holds for their progress; fails after `limit`.
async fn wait_for_progress(db: &Db, limit: Duration, done: impl Fn(Progress) -> bool) -> Progress {
    let started = Instant::now();
    loop {
        let jobs = job_records(db).await;
        let with = |status: &str| jobs.iter().filter(|j| j.status == status).count() as i64;
        let progress = Progress {
            running: with(ads_stats::db::jobs::RUNNING),
            succeeded: with(ads_stats::db::jobs::SUCCEEDED),
        };
        if done(progress) {
            return progress;
        }
        assert!(
            started.elapsed() < limit,
            "the tick never got going: {progress:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
