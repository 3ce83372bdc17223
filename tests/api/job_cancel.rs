//! The CANCELLED status beside the runtime, on both backends: the schema takes it (also on a
//! connection opened before migration 000016) and retention prunes it; a cancelled job never
//! runs and its job id can be queued again; cancels racing the workers either take effect before a
//! claim or leave the job to run, never both.

use std::time::Duration;

use ads_stats::db::job_actions::Cancel;
use ads_stats::db::models::JobRecord;
use ads_stats::db_run;
use ads_stats::domain::Level;
use ads_stats::jobs::Trigger;
use ads_stats::pipeline::SyncRequest;
use diesel_async::RunQueryDsl;
use reqwest::header::LOCATION;

use crate::dashboard::{form, log_in, post_form, with_dashboard};
use crate::helpers::{
    app, merge, migrated_db, seller_catalog, today, Backend, TestDb, TestProvider,
};
use crate::on_both_backends;

on_both_backends!(
    a_cancelled_job_never_runs_and_its_job_id_can_be_queued_again,
    the_schema_takes_cancelled_and_retention_prunes_it,
    cancels_racing_workers_each_take_effect_or_leave_the_job_to_run,
);

async fn a_cancelled_job_never_runs_and_its_job_id_can_be_queued_again(backend: Backend) {
    // One worker, and each fetch takes a while: a job of s2 holds the only slot while s1's job,
    // due at once, waits QUEUED; the operator cancels it in that window.
    let provider = TestProvider::new(Duration::from_millis(1500), 0);
    let app = app(backend)
        .with_catalog(merge(seller_catalog("s1"), seller_catalog("s2")))
        .with_provider(provider.clone())
        .with_settings(|s| {
            with_dashboard(s);
            s.jobs.concurrency = 1;
        })
        .spawn()
        .await;
    let login = log_in(&app).await;
    app.enqueue_campaign_sync("s2").await;
    app.wait_for_jobs(Duration::from_secs(20), |jobs| {
        jobs.iter().any(|j| j.status == "RUNNING")
    })
    .await;
    app.enqueue_campaign_sync("s1").await;
    let jobs = app.jobs().await;
    let waiting = jobs.iter().find(|j| j.seller_id == "s1").unwrap().clone();
    assert_eq!(waiting.status, "QUEUED");
    let response = post_form(
        &app,
        &format!("/dashboard/jobs/{}/cancel", waiting.id),
        Some(&login.cookie),
        form(&[("csrf", &login.csrf)]),
    )
    .await;
    assert!(response.headers()[LOCATION]
        .to_str()
        .unwrap()
        .ends_with("outcome=cancelled"));

    // The job status API reads it as cancelled.
    let token = app.token("s1");
    let status: serde_json::Value = app
        .get_job(&token, &waiting.job_id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["status"], "CANCELLED");

    // The same job id is queued again: a new record, which runs; the cancelled one never does.
    app.enqueue_campaign_sync("s1").await;
    app.wait_until_idle(Duration::from_secs(30)).await;
    let jobs = app.jobs().await;
    let s1: Vec<&JobRecord> = jobs.iter().filter(|j| j.job_id == waiting.job_id).collect();
    assert_eq!(s1.len(), 2, "{jobs:#?}");
    let (cancelled, again) = (s1[0], s1[1]);
    assert_eq!(cancelled.id, waiting.id);
    assert_eq!(cancelled.status, "CANCELLED");
    assert_eq!((cancelled.attempts, cancelled.started_at), (0, None));
    assert_eq!(cancelled.raw_rows, None);
    assert_eq!((again.status.as_str(), again.attempts), ("SUCCEEDED", 1));
    assert_eq!(
        std::sync::atomic::AtomicUsize::load(&provider.calls, std::sync::atomic::Ordering::SeqCst),
        2,
        "one fetch for s2, one for s1's new record"
    );
    let status: serde_json::Value = app
        .get_job(&token, &waiting.job_id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["status"], "SUCCEEDED");
    app.shutdown().await;
}

async fn the_schema_takes_cancelled_and_retention_prunes_it(backend: Backend) {
    // Migration 000016 widened the status check (on SQLite by editing the stored table text): a
    // connection opened before the migrations ran must see the new check as well.
    let test_db = TestDb::new(backend).await;
    let settings = crate::helpers::test_settings(&test_db.url, |_| {});
    let db = ads_stats::db::Db::connect(&settings.database).expect("pool");
    let mut early = db.conn().await.expect("conn");
    db.run_migrations(&settings.database_url())
        .await
        .expect("migrations apply");
    let insert = |status: &'static str| {
        format!(
            "INSERT INTO sync_jobs (job_id, seller_id, level, date_from, date_to, triggered_by, \
             status, attempts, max_attempts, run_at, created_at, updated_at, finished_at) \
             VALUES ('sync__s1__2026-01-01__2026-01-01__AD', 's1', 'AD', '2026-01-01', \
             '2026-01-01', 'SCHEDULE', '{status}', 0, 3, '2026-01-01 00:00:00', \
             '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
        )
    };
    let conn = &mut early;
    for _ in 0..2 {
        // Twice: a CANCELLED record holds no claim on its job id.
        db_run!(conn, {
            diesel::sql_query(insert("CANCELLED")).execute(conn).await
        })
        .expect("CANCELLED is a status");
    }
    let bogus = db_run!(conn, {
        diesel::sql_query(insert("CANCELED")).execute(conn).await
    });
    assert!(bogus.is_err(), "other statuses are still refused");
    drop(early);
    let db2 = migrated_db(&test_db).await;
    let mut conn = db2.conn().await.expect("conn");
    let before = ads_stats::db::now_utc();
    let pruned = ads_stats::db::jobs::prune(&mut conn, before).await.unwrap();
    assert_eq!(pruned, 2, "cancelled records are pruned like finished ones");
    assert!(ads_stats::db::jobs::all(&mut conn)
        .await
        .unwrap()
        .is_empty());
}

async fn cancels_racing_workers_each_take_effect_or_leave_the_job_to_run(backend: Backend) {
    // Forty jobs due at once, five workers taking them, and a cancel for every one sent while they
    // do: each job ends either CANCELLED without ever starting, or run to SUCCEEDED, never both;
    // and exactly the cancels that said "cancelled" took effect.
    let provider = TestProvider::new(Duration::from_millis(20), 0);
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .with_provider(provider.clone())
        .with_settings(|s| s.jobs.max_active_per_seller = 0)
        .spawn()
        .await;
    let requests: Vec<SyncRequest> = (0..40)
        .map(|k| SyncRequest::one_day("s1", Level::Campaign, today() - chrono::Duration::days(k)))
        .collect();
    let enqueued = app
        .app()
        .queue()
        .enqueue(&requests, Trigger::Manual)
        .await
        .expect("enqueued");
    let mut cancels = tokio::task::JoinSet::new();
    for job in &enqueued {
        let (db, id) = (app.db.clone(), job.record.id);
        cancels.spawn(async move {
            let mut conn = db.conn().await.expect("conn");
            let outcome =
                ads_stats::db::job_actions::cancel_queued(&mut conn, id, ads_stats::db::now_utc())
                    .await
                    .expect("cancel");
            (id, matches!(outcome, Cancel::Cancelled(_)))
        });
    }
    let mut said_cancelled = std::collections::BTreeSet::new();
    while let Some(result) = cancels.join_next().await {
        let (id, cancelled) = result.unwrap();
        if cancelled {
            said_cancelled.insert(id);
        }
    }
    app.wait_until_idle(Duration::from_secs(60)).await;
    let jobs = app.jobs().await;
    assert_eq!(jobs.len(), 40);
    for job in &jobs {
        match job.status.as_str() {
            "CANCELLED" => {
                assert!(said_cancelled.contains(&job.id), "{job:#?}");
                assert_eq!(
                    (job.attempts, job.started_at, job.raw_rows),
                    (0, None, None)
                );
            }
            "SUCCEEDED" => {
                assert!(!said_cancelled.contains(&job.id), "{job:#?}");
                assert_eq!(job.attempts, 1);
            }
            other => panic!("job {} ended {other}", job.id),
        }
    }
    let ran = jobs.iter().filter(|j| j.status == "SUCCEEDED").count();
    assert_eq!(
        std::sync::atomic::AtomicUsize::load(&provider.calls, std::sync::atomic::Ordering::SeqCst),
        ran,
        "only the jobs not cancelled asked the provider"
    );
    eprintln!("{} cancelled, {ran} ran", said_cancelled.len());
    app.shutdown().await;
}
