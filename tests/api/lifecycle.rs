//! Starting and stopping: a stop takes the longer of the HTTP drain and the jobs' grace, not their
//! sum; one process per SQLite file; instances migrating PostgreSQL together all come up; jobs
//! that cannot succeed on retry fail at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ads_stats::app::{Application, StartOptions, StartupError};
use ads_stats::domain::Level;
use ads_stats::jobs::SyncJobId;
use ads_stats::providers::{FetchRequest, MockProvider, ProviderError, ProviderStat, StatProvider};
use chrono::NaiveDate;
use tokio::io::AsyncWriteExt;

use crate::helpers::{
    ads_stats, app, migrated_db, seller_catalog, test_settings, Backend, ServiceProcess, TestDb,
    TestProvider,
};
use crate::on_both_backends;

on_both_backends!(
    a_stop_takes_the_longer_of_drain_and_grace_not_their_sum,
    a_job_the_provider_answers_wrongly_fails_at_once,
    a_batch_of_jobs_is_recorded_in_order_and_active_ones_are_not_repeated,
);

async fn a_batch_of_jobs_is_recorded_in_order_and_active_ones_are_not_repeated(backend: Backend) {
    use ads_stats::jobs::Trigger;
    use ads_stats::pipeline::SyncRequest;
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        // Nothing finishes during the test: every recorded job stays active.
        .with_provider(TestProvider::new(Duration::from_secs(60), 0))
        .spawn()
        .await;
    let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
    let request = |d: u32, level: Level| SyncRequest::one_day("s1", level, day(d));
    let first: Vec<SyncRequest> = (1..=20).map(|d| request(d, Level::Ad)).collect();
    let recorded = app
        .app()
        .queue()
        .enqueue_nowait(&first, Trigger::Schedule)
        .await
        .unwrap();
    assert!(recorded.iter().all(|e| e.created));
    let again = vec![
        request(21, Level::Ad),
        request(3, Level::Ad),
        request(3, Level::Campaign),
        request(17, Level::Ad),
    ];
    let second = app
        .app()
        .queue()
        .enqueue_nowait(&again, Trigger::Schedule)
        .await
        .unwrap();
    let ids: Vec<String> = second.iter().map(|e| e.record.job_id.clone()).collect();
    let asked: Vec<String> = again.iter().map(SyncRequest::job_id).collect();
    assert_eq!(ids, asked, "answered in the order asked");
    let created: Vec<bool> = second.iter().map(|e| e.created).collect();
    assert_eq!(created, vec![true, false, true, false]);
    assert_eq!(
        second[1].record.id, recorded[2].record.id,
        "the active record itself"
    );
    assert_eq!(second[3].record.id, recorded[16].record.id);
    assert_eq!(app.jobs().await.len(), 22);
    app.shutdown().await;
}

async fn a_stop_takes_the_longer_of_drain_and_grace_not_their_sum(backend: Backend) {
    let drain = Duration::from_secs(3);
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .with_provider(TestProvider::new(Duration::from_secs(60), 0))
        .with_settings(move |s| {
            s.server.shutdown_timeout = drain;
            s.server.body_timeout = Duration::from_secs(60);
            s.jobs.shutdown_grace = drain;
        })
        .spawn()
        .await;
    assert_eq!(
        app.post_sync(Some(&app.token("s1")), None).await.status(),
        202
    );
    app.wait_for_jobs(Duration::from_secs(10), |jobs| {
        jobs.iter().any(|j| j.status == "RUNNING")
    })
    .await;
    // A request whose body never finishes keeps the HTTP drain busy for its whole timeout.
    let address = app.address.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /api/ads-manager/sync HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        app.token("s1")
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    let _test_db = app.shutdown().await;
    let took = started.elapsed();
    // Both waits ran in full (the job outlives its grace, the request its timeout), side by side.
    assert!(took >= drain - Duration::from_millis(200), "{took:?}");
    assert!(
        took < drain * 2 - Duration::from_millis(500),
        "the stop took {took:?}: the drain and the grace ran one after the other"
    );
    drop(slow);
}

/// A provider that answers for an entity nobody asked about: a broken contract it will repeat.
struct WrongEntities;

#[async_trait::async_trait]
impl StatProvider for WrongEntities {
    fn name(&self) -> &'static str {
        "mock"
    }

    async fn fetch(&self, request: &FetchRequest<'_>) -> Result<Vec<ProviderStat>, ProviderError> {
        let mut stats = MockProvider.fetch(request).await?;
        if let Some(first) = stats.first_mut() {
            first.entity_id = "nobody-asked".into();
        }
        Ok(stats)
    }
}

async fn a_job_the_provider_answers_wrongly_fails_at_once(backend: Backend) {
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .with_provider(Arc::new(WrongEntities))
        .with_settings(|s| s.jobs.max_attempts = 5)
        .spawn()
        .await;
    app.enqueue_campaign_sync("s1").await;
    app.wait_until_idle(Duration::from_secs(20)).await;
    let jobs = app.jobs().await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (jobs[0].status.as_str(), jobs[0].attempts),
        ("FAILED", 1),
        "no attempt spent on a retry that cannot succeed: {:?}",
        jobs[0]
    );
    assert_eq!(
        jobs[0].last_error.as_deref(),
        Some("the stats provider answered with unexpected data")
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_per_sqlite_file() {
    let first = app(Backend::Sqlite).spawn().await;
    let settings = first.settings.clone();
    let second =
        Application::start(&settings, Arc::new(MockProvider), StartOptions::default()).await;
    match second {
        Err(StartupError::AlreadyRunning(file)) => {
            assert!(settings.database.url.ends_with(&file), "{file}")
        }
        Err(other) => panic!("refused for the wrong reason: {other}"),
        Ok(_) => panic!("a second application started on the same SQLite file"),
    }
    // Once the first stops, the file is free again.
    let test_db = first.shutdown().await;
    let again = app(Backend::Sqlite).on_database(test_db).spawn().await;
    assert_eq!(again.health().await.status(), 200);
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_binary_on_the_same_sqlite_file_exits_with_one_line() {
    let test_db = TestDb::new(Backend::Sqlite).await;
    let service = ServiceProcess::start(&[
        ("DATABASE_URL", test_db.url.as_str()),
        ("ADS_STATS_SCHEDULER__ENABLED", "false"),
    ])
    .await;
    let out = ads_stats()
        .arg("serve")
        .env("DATABASE_URL", &test_db.url)
        .env("PORT", "0")
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let last = err.trim().lines().last().unwrap_or_default();
    assert!(
        last.contains("in use by another ads-stats process"),
        "{err}"
    );
    assert!(!last.contains("panicked"));
    let (status, log) = service.terminate().await;
    assert_eq!(status.code(), Some(0), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_migrating_postgres_together_all_come_up() {
    let test_db = TestDb::new(Backend::Postgres).await;
    let settings = test_settings(&test_db.url, |_| {});
    let migrate = || async {
        let db = ads_stats::db::Db::connect(&settings.database).unwrap();
        db.run_migrations(&settings.database_url()).await
    };
    let (a, b, c, d) = tokio::join!(migrate(), migrate(), migrate(), migrate());
    let applied: Vec<usize> = [a, b, c, d]
        .into_iter()
        .map(|r| r.expect("every instance comes up"))
        .collect();
    // One of them applied every migration; the others found nothing left to do.
    let total = *applied.iter().max().unwrap();
    assert!(total > 0);
    assert_eq!(
        applied.iter().filter(|n| **n == total).count(),
        1,
        "{applied:?}"
    );
    assert_eq!(applied.iter().sum::<usize>(), total, "{applied:?}");
    let _ = migrated_db(&test_db).await;
}
