//! Several instances on one database: leases on the database clock, the heartbeat of the jobs an
//! instance holds, any instance running any job (PostgreSQL), one tick per cron mark.

use std::sync::Arc;
use std::time::Duration;

use ads_stats::db::{self, models::NewJobRecord, Db};
use ads_stats::domain::Level;
use ads_stats::pipeline::SyncRequest;

use crate::helpers::{
    app, merge, migrated_db, seller_catalog, test_settings, today, Backend, TestDb, TestProvider,
};
use crate::on_both_backends;

on_both_backends!(
    a_claim_never_takes_a_job_before_its_run_at,
    the_heartbeat_touches_only_records_this_instance_holds,
    rescue_takes_back_only_leases_older_than_rescue_after,
    the_heartbeat_keeps_beating_through_the_shutdown_grace,
    a_finished_job_shows_the_instance_that_ran_it,
);

/// A QUEUED record of `seller`'s CAMPAIGN sync for today, due at `run_at`.
fn queued(seller: &str, run_at: chrono::NaiveDateTime) -> NewJobRecord {
    NewJobRecord {
        job_id: SyncRequest::one_day(seller, Level::Campaign, today()).job_id(),
        seller_id: seller.into(),
        level: "CAMPAIGN".into(),
        date_from: today(),
        date_to: today(),
        triggered_by: "MANUAL".into(),
        status: "QUEUED".into(),
        attempts: 0,
        max_attempts: 3,
        run_at,
        created_at: run_at,
        updated_at: run_at,
    }
}

async fn record(db: &Db, id: i64) -> db::models::JobRecord {
    let mut conn = db.conn().await.unwrap();
    db::jobs::get(&mut conn, id).await.unwrap().unwrap()
}

/// A retry waiting out its backoff that is delivered early (a stale id in the channel, another
/// instance's claimer) is not taken, and its attempt is not burnt.
async fn a_claim_never_takes_a_job_before_its_run_at(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    let mut conn = db.conn().await.unwrap();
    let later = db::now_utc() + chrono::Duration::hours(1);
    let (waiting, _) = db::jobs::enqueue(&mut conn, &queued("s1", later))
        .await
        .unwrap();
    assert!(db::jobs::claim(&mut conn, waiting.id, "w1")
        .await
        .unwrap()
        .is_none());
    if let Some(claimed) = db::jobs::claim_due(&mut conn, "w1", 10).await.unwrap() {
        assert!(claimed.is_empty(), "not due yet: {claimed:#?}");
    }
    let after = record(&db, waiting.id).await;
    assert_eq!((after.status.as_str(), after.attempts), ("QUEUED", 0));
    assert!(after.locked_by.is_none());

    let earlier = db::now_utc() - chrono::Duration::seconds(1);
    let (due, _) = db::jobs::enqueue(&mut conn, &queued("s2", earlier))
        .await
        .unwrap();
    let claimed = db::jobs::claim(&mut conn, due.id, "w1")
        .await
        .unwrap()
        .expect("a due job is claimed");
    assert_eq!((claimed.status.as_str(), claimed.attempts), ("RUNNING", 1));
    assert_eq!(claimed.locked_by.as_deref(), Some("w1"));
}

/// An instance's heartbeat never vouches for a record another instance now holds (taken back
/// from it and claimed again meanwhile).
async fn the_heartbeat_touches_only_records_this_instance_holds(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    let mut conn = db.conn().await.unwrap();
    let (job, _) = db::jobs::enqueue(&mut conn, &queued("s1", db::now_utc()))
        .await
        .unwrap();
    let claimed = db::jobs::claim(&mut conn, job.id, "w2")
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        db::jobs::heartbeat(&mut conn, "w1", &[job.id])
            .await
            .unwrap(),
        0,
        "w1 does not hold it"
    );
    assert_eq!(record(&db, job.id).await.heartbeat_at, claimed.heartbeat_at);
    assert_eq!(
        db::jobs::heartbeat(&mut conn, "w2", &[job.id])
            .await
            .unwrap(),
        1
    );
    assert!(record(&db, job.id).await.heartbeat_at > claimed.heartbeat_at);
}

/// Rescue compares the heartbeat with `jobs.rescue_after`: a fresh lease stays, a stale one comes
/// back QUEUED and no longer names an instance.
async fn rescue_takes_back_only_leases_older_than_rescue_after(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    let mut conn = db.conn().await.unwrap();
    let (job, _) = db::jobs::enqueue(&mut conn, &queued("s1", db::now_utc()))
        .await
        .unwrap();
    db::jobs::claim(&mut conn, job.id, "w1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        db::jobs::rescue_orphans(&mut conn, Duration::from_secs(60))
            .await
            .unwrap(),
        0,
        "a lease beaten just now stays"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        db::jobs::rescue_orphans(&mut conn, Duration::from_millis(200))
            .await
            .unwrap(),
        1
    );
    let rescued = record(&db, job.id).await;
    assert_eq!((rescued.status.as_str(), rescued.attempts), ("QUEUED", 1));
    assert!(rescued.locked_by.is_none());
    assert!(rescued.run_at <= db::now_utc(), "due again at once");
}

/// During the shutdown grace the running job's heartbeat goes on: with `jobs.rescue_after` far
/// shorter than the job, another instance would otherwise take it back and run it twice.
async fn the_heartbeat_keeps_beating_through_the_shutdown_grace(backend: Backend) {
    let provider = TestProvider::new(Duration::from_millis(2500), 0);
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .with_provider(provider)
        .with_settings(|s| {
            s.jobs.rescue_after = Duration::from_millis(600);
            s.jobs.shutdown_grace = Duration::from_secs(10);
        })
        .spawn()
        .await;
    app.enqueue_campaign_sync("s1").await;
    let jobs = app
        .wait_for_jobs(Duration::from_secs(10), |jobs| {
            jobs.iter().any(|j| j.status == "RUNNING")
        })
        .await;
    let id = jobs[0].id;
    let db = app.db.clone();
    let stopping = tokio::spawn(app.shutdown());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = record(&db, id).await;
    assert_eq!(before.status, "RUNNING", "still in its grace: {before:#?}");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let during = record(&db, id).await;
    assert_eq!(during.status, "RUNNING");
    assert!(
        during.heartbeat_at > before.heartbeat_at,
        "the heartbeat went on during the grace: {before:#?} then {during:#?}"
    );
    let _test_db = stopping.await.unwrap();
    let done = record(&db, id).await;
    assert_eq!((done.status.as_str(), done.attempts), ("SUCCEEDED", 1));
}

/// The job status API names the instance that ran the job; the record keeps it after success.
async fn a_finished_job_shows_the_instance_that_ran_it(backend: Backend) {
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .spawn()
        .await;
    let token = app.token("s1");
    assert_eq!(app.post_sync(Some(&token), None).await.status(), 202);
    app.wait_until_idle(Duration::from_secs(20)).await;
    let instance = app.app().instance().to_string();
    assert!(instance.starts_with("ads-stats-"), "{instance}");
    for job in app.jobs().await {
        assert_eq!(job.status, "SUCCEEDED");
        assert_eq!(job.locked_by.as_deref(), Some(instance.as_str()));
        let body: serde_json::Value = app.get_job(&token, &job.job_id).await.json().await.unwrap();
        assert_eq!(body["instance"], instance.as_str(), "{body}");
    }
    app.shutdown().await;
}

/// PostgreSQL: a manual sync accepted by an instance whose only slot is busy starts on an idle
/// instance within a second, claimed from the table by that instance's sweeper (it polls every
/// `jobs.poll_interval`: 50 ms here, 1 s by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_sync_on_a_busy_instance_starts_on_an_idle_one() {
    let busy = app(Backend::Postgres)
        .with_catalog(merge(seller_catalog("s1"), seller_catalog("s2")))
        .with_provider(TestProvider::new(Duration::from_secs(4), 0))
        .with_settings(|s| s.jobs.concurrency = 1)
        .spawn()
        .await;
    busy.enqueue_campaign_sync("s1").await;
    busy.wait_for_jobs(Duration::from_secs(10), |jobs| {
        jobs.iter().any(|j| j.status == "RUNNING")
    })
    .await;
    let idle = ads_stats::app::Application::start(
        &test_settings(&busy.test_db.url, |_| {}),
        Arc::new(ads_stats::providers::MockProvider),
        ads_stats::app::StartOptions::default(),
    )
    .await
    .expect("second instance starts");

    assert_eq!(
        busy.post_sync(Some(&busy.token("s2")), None).await.status(),
        202
    );
    let jobs = busy
        .wait_for_jobs(Duration::from_secs(10), |jobs| {
            jobs.iter()
                .filter(|j| j.seller_id == "s2" && j.status == "SUCCEEDED")
                .count()
                == 3
        })
        .await;
    for job in jobs.iter().filter(|j| j.seller_id == "s2") {
        assert_eq!(job.locked_by.as_deref(), Some(idle.instance()), "{job:#?}");
        let waited = job.started_at.unwrap() - job.created_at;
        assert!(
            waited < chrono::Duration::seconds(1),
            "started {waited} after it was accepted: {job:#?}"
        );
    }
    let s1 = jobs.iter().find(|j| j.seller_id == "s1").unwrap();
    assert_eq!(s1.status, "RUNNING", "the busy instance is still busy");
    assert_eq!(s1.locked_by.as_deref(), Some(busy.app().instance()));
    idle.shutdown().await;
    busy.wait_until_idle(Duration::from_secs(10)).await;
    assert!(busy
        .jobs()
        .await
        .iter()
        .all(|j| j.status == "SUCCEEDED" && j.attempts == 1));
    busy.shutdown().await;
}
