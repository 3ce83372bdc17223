//! `/health`: 200 with a working database, 503 (quickly, never a hang or a 500) without one.

use std::time::{Duration, Instant};

use crate::helpers::{app, Backend, CuttableProxy, TestDb};
use crate::on_both_backends;

on_both_backends!(health_is_ok_with_a_working_database);

async fn health_is_ok_with_a_working_database(backend: Backend) {
    let app = app(backend).spawn().await;
    let response = app.health().await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["queue"]["queued"], 0);
    assert_eq!(body["queue"]["running"], 0);
    assert_eq!(body["scheduler"]["enabled"], false);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_when_postgres_goes_away() {
    let test_db = TestDb::new(Backend::Postgres).await;
    let mut proxy = CuttableProxy::in_front_of(&test_db.url).await;
    let proxied = proxy.reroute(&test_db.url);
    let app = app(Backend::Postgres)
        .on_database(test_db)
        .with_settings(move |s| s.database.url = proxied)
        .spawn()
        .await;
    assert_eq!(app.health().await.status(), 200);

    proxy.cut().await;
    // A probe's result is shared for up to 1 s, and a probe gives up after 2 s: /health says
    // 503 within 3 s of the cut, and no single answer takes longer than the probe's limit.
    let started = Instant::now();
    let response = loop {
        let asked = Instant::now();
        let response = app.health().await;
        assert!(
            asked.elapsed() < Duration::from_millis(2500),
            "answered in {:?}",
            asked.elapsed()
        );
        if response.status() == 503 {
            break response;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "still 200 after 3 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_ne!(body["database"], "ok");
    assert!(body["database"].as_str().is_some_and(|r| !r.is_empty()));
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_when_postgres_was_never_there() {
    // Port 9 (discard) has no PostgreSQL; the service must still answer its probe.
    let app = app(Backend::Sqlite)
        .with_settings(|s| {
            s.database.url = "postgres://postgres@127.0.0.1:9/nothing".into();
            s.database.run_migrations = false;
            s.database.connect_timeout = Duration::from_secs(1);
        })
        .spawn()
        .await;
    let started = Instant::now();
    let response = app.health().await;
    assert_eq!(response.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(4));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    app.shutdown().await;
}
