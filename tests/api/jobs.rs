//! The job runtime: concurrency, dedup under races, retries, timeouts, restart recovery,
//! crash safety and graceful shutdown.

use std::sync::atomic::Ordering;
use std::time::Duration;

use ads_stats::db::models::NewJobRecord;
use ads_stats::db::{self, writes};
use ads_stats::domain::Level;
use ads_stats::jobs::{Priority, SyncJobId, Trigger};
use ads_stats::pipeline::{FaultPoint, SyncRequest};

use crate::helpers::{
    app, merge, migrated_db, seller_catalog, today, Backend, TestDb, TestProvider,
};
use crate::on_both_backends;

on_both_backends!(
    concurrency_never_exceeds_the_limit,
    racing_enqueues_make_one_job,
    a_job_failing_once_is_retried_and_succeeds,
    a_job_failing_always_ends_failed_after_max_attempts,
    a_job_running_too_long_is_cancelled_and_counted_failed,
    queued_and_orphaned_jobs_are_recovered_on_start,
    a_crash_before_the_completion_mark_keeps_writes_and_mark_together,
    graceful_shutdown_leaves_unstarted_jobs_queued,
    graceful_shutdown_lets_a_running_job_finish_within_the_grace,
    old_finished_records_are_pruned,
);

async fn concurrency_never_exceeds_the_limit(backend: Backend) {
    let provider = TestProvider::new(Duration::from_millis(500), 0);
    let sellers = ["a", "b", "c", "d"];
    let catalog = sellers
        .iter()
        .map(|s| seller_catalog(s))
        .reduce(merge)
        .unwrap();
    let app = app(backend)
        .with_catalog(catalog)
        .with_provider(provider.clone())
        .spawn()
        .await;
    // All twelve are waiting before the first finishes, so only the limit holds them back.
    let requests: Vec<SyncRequest> = sellers
        .iter()
        .flat_map(|s| Level::ALL.map(|level| SyncRequest::one_day(*s, level, today())))
        .collect();
    app.app()
        .queue()
        .enqueue(&requests, Trigger::Manual)
        .await
        .unwrap();
    app.wait_until_idle(Duration::from_secs(30)).await;
    let jobs = app.jobs().await;
    assert_eq!(jobs.len(), 12);
    assert!(jobs.iter().all(|j| j.status == "SUCCEEDED"), "{jobs:#?}");
    assert_eq!(provider.calls.load(Ordering::SeqCst), 12);
    let max = provider.max_in_flight.load(Ordering::SeqCst);
    assert_eq!(
        max, 5,
        "12 slow jobs with jobs.concurrency = 5 ran {max} at once"
    );
    app.shutdown().await;
}

async fn racing_enqueues_make_one_job(backend: Backend) {
    // Slow enough that the job is still active when the last racer arrives.
    let provider = TestProvider::new(Duration::from_secs(3), 0);
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .with_provider(provider)
        .spawn()
        .await;
    let request = SyncRequest::one_day("s1", Level::Campaign, today());
    let mut racers = Vec::new();
    for _ in 0..8 {
        let queue = app.app().queue().clone();
        let request = request.clone();
        racers.push(tokio::spawn(async move {
            queue
                .enqueue(&[request], Trigger::Manual)
                .await
                .expect("enqueue")
        }));
    }
    let mut created = 0;
    let mut record_ids = Vec::new();
    for r in racers {
        let outcome = r.await.unwrap().remove(0);
        created += usize::from(outcome.created);
        record_ids.push(outcome.record.id);
    }
    assert_eq!(created, 1, "exactly one racer created the job");
    record_ids.dedup();
    assert_eq!(record_ids.len(), 1, "every racer got the same record");
    app.wait_until_idle(Duration::from_secs(20)).await;
    assert_eq!(app.jobs().await.len(), 1);
    assert_eq!(app.tier_counts("s1").await.0, 4, "synced once");
    app.shutdown().await;
}

async fn a_job_failing_once_is_retried_and_succeeds(backend: Backend) {
    let provider = TestProvider::new(Duration::ZERO, 1);
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .with_provider(provider)
        .spawn()
        .await;
    app.enqueue_campaign_sync("s1").await;
    app.wait_until_idle(Duration::from_secs(20)).await;
    let jobs = app.jobs().await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].status, "SUCCEEDED");
    assert_eq!(jobs[0].attempts, 2);
    assert_eq!(jobs[0].raw_rows, Some(4));
    assert_eq!(
        app.tier_counts("s1").await.0,
        4,
        "the failed attempt wrote nothing"
    );
    app.shutdown().await;
}

async fn a_job_failing_always_ends_failed_after_max_attempts(backend: Backend) {
    let provider = TestProvider::new(Duration::ZERO, u32::MAX);
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .with_provider(provider.clone())
        .spawn()
        .await;
    app.enqueue_campaign_sync("s1").await;
    app.wait_until_idle(Duration::from_secs(20)).await;
    let jobs = app.jobs().await;
    assert_eq!(jobs[0].status, "FAILED");
    assert_eq!(jobs[0].attempts, 3);
    assert_eq!(provider.calls.load(Ordering::SeqCst), 3);
    // The seller reads a fixed, safe text; the provider's own words stay in the log.
    assert_eq!(
        jobs[0].last_error.as_deref(),
        Some("the stats provider request failed")
    );
    assert!(jobs[0].finished_at.is_some());
    // Retries waited: 50 ms then 100 ms (exponential backoff from jobs.backoff).
    let spent = jobs[0].finished_at.unwrap() - jobs[0].created_at;
    assert!(spent >= chrono::Duration::milliseconds(150), "{spent}");
    app.shutdown().await;
}

async fn a_job_running_too_long_is_cancelled_and_counted_failed(backend: Backend) {
    let provider = TestProvider::new(Duration::from_secs(30), 0);
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .with_provider(provider)
        .with_settings(|s| {
            s.jobs.timeout = Duration::from_millis(200);
            s.jobs.max_attempts = 2;
        })
        .spawn()
        .await;
    app.enqueue_campaign_sync("s1").await;
    app.wait_until_idle(Duration::from_secs(10)).await;
    let jobs = app.jobs().await;
    assert_eq!((jobs[0].status.as_str(), jobs[0].attempts), ("FAILED", 2));
    assert!(jobs[0].last_error.as_deref().unwrap().contains("timed out"));
    app.shutdown().await;
}

async fn queued_and_orphaned_jobs_are_recovered_on_start(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    let mut conn = db.conn().await.unwrap();
    ads_stats::db::catalog::insert_catalog(
        &mut conn,
        &merge(seller_catalog("s1"), seller_catalog("s2")),
    )
    .await
    .unwrap();
    let long_ago = db::now_utc() - chrono::Duration::minutes(10);
    let record = |seller: &str| NewJobRecord {
        job_id: SyncRequest::one_day(seller, Level::Campaign, today()).job_id(),
        seller_id: seller.into(),
        level: "CAMPAIGN".into(),
        date_from: today(),
        date_to: today(),
        triggered_by: "SCHEDULE".into(),
        status: "QUEUED".into(),
        attempts: 0,
        max_attempts: 3,
        run_at: long_ago,
        created_at: long_ago,
        updated_at: long_ago,
        priority: Priority::Scheduled.as_i16(),
    };
    // s1: accepted before a crash, never started. s2: running when its process died.
    db::jobs::enqueue(&mut conn, &record("s1")).await.unwrap();
    let (orphan, _) = db::jobs::enqueue(&mut conn, &record("s2")).await.unwrap();
    db::jobs::claim(&mut conn, orphan.id, "a-process-that-died")
        .await
        .unwrap()
        .unwrap();
    drop(conn);
    drop(db);

    let app = app(backend)
        .on_database(test_db)
        .with_settings(|s| s.jobs.rescue_after = Duration::from_secs(2))
        .spawn()
        .await;
    app.wait_until_idle(Duration::from_secs(20)).await;
    let jobs = app.jobs().await;
    assert_eq!(jobs.len(), 2);
    assert!(jobs.iter().all(|j| j.status == "SUCCEEDED"), "{jobs:#?}");
    let orphan = jobs.iter().find(|j| j.seller_id == "s2").unwrap();
    assert_eq!(orphan.attempts, 2, "the dead process's attempt counts");
    for s in ["s1", "s2"] {
        assert_eq!(
            app.tier_counts(s).await,
            (4, 4, 2),
            "{s} synced exactly once"
        );
    }
    app.shutdown().await;
}

async fn a_crash_before_the_completion_mark_keeps_writes_and_mark_together(backend: Backend) {
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .spawn()
        .await;
    app.app()
        .pipeline()
        .faults()
        .arm(FaultPoint::BeforeCompletion, 1);
    app.enqueue_campaign_sync("s1").await;
    app.wait_until_idle(Duration::from_secs(20)).await;
    let jobs = app.jobs().await;
    assert_eq!(jobs[0].status, "SUCCEEDED");
    assert_eq!(
        jobs[0].attempts, 2,
        "the crashed attempt was not marked done"
    );
    assert_eq!(
        app.tier_counts("s1").await,
        (4, 4, 2),
        "the crashed attempt's writes were rolled back with its mark"
    );
    let mut conn = app.conn().await;
    let daily = writes::daily_row(&mut conn, "CAMPAIGN", "s1-cmp-1", today())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(daily.raw_count, 1, "counted once");
    drop(conn);
    app.shutdown().await;
}

/// One worker, a manual sync of three jobs, and a SIGTERM-style stop while the first job is
/// fetching. Returns the database and the job records as the stop left them.
async fn stop_while_one_job_runs(
    backend: Backend,
    provider_delay: Duration,
    grace: Duration,
) -> (
    TestDb,
    ads_stats::db::Db,
    Vec<ads_stats::db::models::JobRecord>,
) {
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .with_provider(TestProvider::new(provider_delay, 0))
        .with_settings(move |s| {
            s.jobs.concurrency = 1;
            s.jobs.shutdown_grace = grace;
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
    let test_db = app.shutdown().await;
    let db = migrated_db(&test_db).await;
    let jobs = db::jobs::all(&mut db.conn().await.unwrap()).await.unwrap();
    (test_db, db, jobs)
}

async fn graceful_shutdown_leaves_unstarted_jobs_queued(backend: Backend) {
    // The provider takes far longer than the grace.
    let (test_db, db, jobs) =
        stop_while_one_job_runs(backend, Duration::from_secs(20), Duration::from_millis(300)).await;
    let mut conn = db.conn().await.unwrap();
    assert_eq!(jobs.len(), 3);
    for j in &jobs {
        assert_eq!(j.status, "QUEUED", "{j:#?}");
        assert_eq!(
            j.attempts, 0,
            "an interrupted attempt is not counted: {j:#?}"
        );
        assert!(j.locked_by.is_none());
    }
    assert_eq!(
        writes::tier_counts(&mut conn, "s1").await.unwrap(),
        (0, 0, 0)
    );
    drop(conn);
    drop(db);

    // The next start finishes them.
    let app = crate::helpers::app(backend)
        .on_database(test_db)
        .spawn()
        .await;
    app.wait_until_idle(Duration::from_secs(20)).await;
    assert!(app
        .jobs()
        .await
        .iter()
        .all(|j| j.status == "SUCCEEDED" && j.attempts == 1));
    app.shutdown().await;
}

async fn graceful_shutdown_lets_a_running_job_finish_within_the_grace(backend: Backend) {
    // The grace is far longer than the provider takes.
    let (_test_db, db, jobs) =
        stop_while_one_job_runs(backend, Duration::from_millis(700), Duration::from_secs(10)).await;
    let mut conn = db.conn().await.unwrap();
    let done: Vec<_> = jobs.iter().filter(|j| j.status == "SUCCEEDED").collect();
    let waiting: Vec<_> = jobs.iter().filter(|j| j.status == "QUEUED").collect();
    assert_eq!(done.len(), 1, "the running job finished: {jobs:#?}");
    assert_eq!(waiting.len(), 2, "the others never started: {jobs:#?}");
    assert!(waiting
        .iter()
        .all(|j| j.attempts == 0 && j.started_at.is_none()));
    let (raw, _, _) = writes::tier_counts(&mut conn, "s1").await.unwrap();
    assert_eq!(raw, done[0].raw_rows.unwrap());
}

async fn old_finished_records_are_pruned(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    let mut conn = db.conn().await.unwrap();
    ads_stats::db::catalog::insert_catalog(&mut conn, &seller_catalog("s1"))
        .await
        .unwrap();
    let now = db::now_utc();
    for (days_ago, level) in [(30, Level::Campaign), (1, Level::Adset)] {
        let at = now - chrono::Duration::days(days_ago);
        let request = SyncRequest::one_day("s1", level, today());
        let (rec, _) = db::jobs::enqueue(
            &mut conn,
            &NewJobRecord {
                job_id: request.job_id(),
                seller_id: "s1".into(),
                level: level.as_str().into(),
                date_from: today(),
                date_to: today(),
                triggered_by: "SCHEDULE".into(),
                status: "QUEUED".into(),
                attempts: 0,
                max_attempts: 3,
                run_at: at,
                created_at: at,
                updated_at: at,
                priority: Priority::Scheduled.as_i16(),
            },
        )
        .await
        .unwrap();
        db::jobs::claim(&mut conn, rec.id, "old")
            .await
            .unwrap()
            .unwrap();
        let lease = db::jobs::Lease {
            record_id: rec.id,
            worker: "old".into(),
            attempt: 1,
        };
        assert!(
            db::jobs::mark_succeeded(&mut conn, &lease, Default::default(), at)
                .await
                .unwrap()
        );
    }
    drop(conn);
    drop(db);
    let app = app(backend).on_database(test_db).spawn().await;
    let jobs = app
        .wait_for_jobs(Duration::from_secs(10), |jobs| jobs.len() == 1)
        .await;
    assert_eq!(
        jobs[0].level, "ADSET",
        "the 30-day-old record is pruned (retention 7d), the recent one kept"
    );
    app.shutdown().await;
}
