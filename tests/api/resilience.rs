//! Availability under pressure: a flood of health probes, background tasks that crash, clients
//! that hang up mid-request, a saturated database, and secrets kept out of debug logs.

use std::time::{Duration, Instant};

use ads_stats::db::catalog::{insert_catalog, Catalog};
use ads_stats::jobs::{DISPATCHER, SCHEDULER, SWEEPER};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use serde_json::Value;

use crate::helpers::{
    app, merge, migrated_db, seller_catalog, today, wait_until_idle, Backend, ServiceProcess,
    TestDb, TestProvider,
};
use crate::on_both_backends;

on_both_backends!(
    a_flood_of_health_probes_costs_one_query_at_a_time,
    a_crashed_background_task_is_restarted_and_reported,
    a_saturated_pool_answers_503_database_busy_on_every_route,
);

fn sellers(n: usize) -> Catalog {
    (0..n)
        .map(|i| seller_catalog(&format!("s{i}")))
        .reduce(merge)
        .unwrap_or_default()
}

async fn a_flood_of_health_probes_costs_one_query_at_a_time(backend: Backend) {
    let provider = TestProvider::new(Duration::from_millis(20), 0);
    let app = app(backend)
        .with_catalog(sellers(20))
        .with_provider(provider)
        .with_settings(|s| s.database.pool_size = 10)
        .spawn()
        .await;
    let probes_before = app.app().health_probes_run();
    let tick = app.app().scheduler().tick(chrono::Utc::now());
    let flood = async {
        let started = Instant::now();
        let mut requests = tokio::task::JoinSet::new();
        for _ in 0..2000 {
            let request = app.request(reqwest::Method::GET, "/health");
            requests.spawn(async move { request.send().await.map(|r| r.status().as_u16()) });
        }
        let mut statuses = Vec::new();
        while let Some(done) = requests.join_next().await {
            statuses.push(done.unwrap().expect("every probe is answered"));
        }
        (statuses, started.elapsed())
    };
    let (summary, (statuses, took)) = tokio::join!(tick, flood);
    let summary = summary.expect("tick");
    assert_eq!(summary.enqueued, 60);
    // Every probe is answered. On a machine loaded by other tests a shared probe may miss its
    // 2 s limit and say 503 for a second; what must never happen is a hang or a 500.
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert!(statuses.contains(&200));
    // One probe per second at most (the result is shared for 1 s), plus the edges.
    let probes = app.app().health_probes_run() - probes_before;
    let allowed = took.as_secs() + 2;
    assert!(
        probes <= allowed,
        "{probes} database probes for 2,000 requests in {took:?}"
    );
    app.wait_until_idle(Duration::from_secs(60)).await;
    let jobs = app.jobs().await;
    assert_eq!(jobs.len(), 60);
    for job in jobs {
        assert_eq!(
            (job.status.as_str(), job.attempts),
            ("SUCCEEDED", 1),
            "{job:?}"
        );
    }
    app.shutdown().await;
}

async fn health_body(app: &crate::helpers::TestApp) -> (u16, Value) {
    let response = app.health().await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

async fn a_crashed_background_task_is_restarted_and_reported(backend: Backend) {
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        // A scheduler that runs but does not tick during the test.
        .with_settings(|s| {
            s.scheduler.enabled = true;
            s.scheduler.cron = "0 0 3 1 1 *".into();
        })
        .spawn()
        .await;
    let (status, body) = health_body(&app).await;
    assert_eq!(status, 200, "{body}");
    for task in [DISPATCHER, SWEEPER, SCHEDULER] {
        assert_eq!(body["tasks"][task], "running", "{body}");
    }
    for task in [DISPATCHER, SWEEPER, SCHEDULER] {
        app.app().task_faults().crash(task);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut saw_degraded = false;
        loop {
            let (status, body) = health_body(&app).await;
            if body["tasks"][task] == "restarting" {
                assert_eq!(status, 503, "{body}");
                assert_eq!(body["status"], "degraded", "{body}");
                saw_degraded = true;
            } else if saw_degraded && body["tasks"][task] == "running" {
                assert_eq!(status, 200, "{body}");
                break;
            }
            assert!(Instant::now() < deadline, "{task} never came back: {body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(app.app().tasks().restarts(task), 1, "{task}");
    }
    // The restarted dispatcher and sweeper still run jobs end to end.
    let response = app.post_sync(Some(&app.token("s1")), None).await;
    assert_eq!(response.status(), 202);
    app.wait_until_idle(Duration::from_secs(20)).await;
    assert!(app.jobs().await.iter().all(|j| j.status == "SUCCEEDED"));
    app.shutdown().await;
}

/// A one-off cron expression that has run out is not a crash: the scheduler idles, healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_with_no_future_ticks_idles_without_degrading() {
    let app = app(Backend::Sqlite)
        .with_settings(|s| {
            s.scheduler.enabled = true;
            s.scheduler.cron = "0 0 0 1 1 * 2020".into();
        })
        .spawn()
        .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, body) = health_body(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tasks"][SCHEDULER], "running", "{body}");
    assert_eq!(body["scheduler"]["nextTick"], Value::Null, "{body}");
    assert_eq!(app.app().tasks().restarts(SCHEDULER), 0);
    app.shutdown().await;
}

async fn a_saturated_pool_answers_503_database_busy_on_every_route(backend: Backend) {
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .with_settings(|s| {
            s.database.pool_size = 1;
            s.database.connect_timeout = Duration::from_millis(300);
        })
        .spawn()
        .await;
    let token = app.token("s1");
    // Let the sweeper's turn finish so the test, not the sweeper, ends up holding the connection.
    let held = app.app().db().conn().await.expect("the one connection");
    let answers = [
        app.post_sync(Some(&token), None).await,
        app.get_job(&token, "sync__s1__x").await,
    ];
    for response in answers {
        assert_eq!(response.status(), 503);
        assert_eq!(
            response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap()),
            Some("1")
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "database_busy", "{body}");
        assert_eq!(body["message"], "the database is busy; retry shortly");
    }
    let response = app.health().await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "database_busy", "{body}");
    assert_eq!(body["database"], "database busy", "{body}");
    drop(held);
    assert!(app.jobs().await.is_empty(), "nothing was half-recorded");
    app.shutdown().await;
}

/// PostgreSQL's statement timeout (a table locked by someone else) is busy too, not a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_statement_timeout_is_503_database_busy() {
    let app = app(Backend::Postgres)
        .with_catalog(seller_catalog("s1"))
        .with_settings(|s| s.database.statement_timeout = Duration::from_millis(300))
        .spawn()
        .await;
    let mut locker = AsyncPgConnection::establish(&app.test_db.url)
        .await
        .unwrap();
    locker
        .batch_execute("BEGIN; LOCK TABLE sync_jobs IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let response = app.post_sync(Some(&app.token("s1")), None).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().get("retry-after").is_some());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "database_busy", "{body}");
    locker.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        app.post_sync(Some(&app.token("s1")), None).await.status(),
        202
    );
    app.shutdown().await;
}

/// 500 clients hang up while their requests wait behind SQLite's write lock. None of that may
/// panic a runtime, poison a pooled connection or stop a background task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_hanging_up_mid_request_harm_nothing_on_sqlite() {
    let test_db = TestDb::new(Backend::Sqlite).await;
    {
        let db = migrated_db(&test_db).await;
        let mut conn = db.conn().await.unwrap();
        insert_catalog(&mut conn, &sellers(3)).await.unwrap();
    }
    let port = free_port();
    let service = ServiceProcess::start(&[
        ("DATABASE_URL", test_db.url.as_str()),
        // The scheduler runs (so its task is checked too) but never ticks during the test.
        ("ADS_STATS_SCHEDULER__CRON", "0 0 3 1 1 *"),
        ("ADS_STATS_RATE_LIMIT__MANUAL_SYNCS_PER_MINUTE", "0"),
        ("PORT", port.as_str()),
    ])
    .await;
    let base = format!("http://127.0.0.1:{port}");
    let token = |seller: &str| service_token(seller);

    // Hold SQLite's write lock, as a long tick's transaction does.
    let path = test_db.url.trim_start_matches("sqlite://").to_string();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        let mut conn = diesel::SqliteConnection::establish(&path).unwrap();
        conn.batch_execute("PRAGMA busy_timeout = 10000; BEGIN IMMEDIATE; INSERT INTO sync_jobs (job_id, seller_id, level, date_from, date_to, triggered_by, status, attempts, max_attempts, run_at, created_at, updated_at) VALUES ('lock-holder', 's0', 'CAMPAIGN', '2026-01-01', '2026-01-01', 'MANUAL', 'FAILED', 1, 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:00:00')")
            .unwrap();
        locked_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        conn.batch_execute("ROLLBACK").unwrap();
    });
    locked_rx.recv().unwrap();

    // Each client sends its request, waits a moment, then resets the connection (RST, as a
    // load balancer or a killed client does), which makes the server drop the request future.
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..500 {
        let request = if i % 2 == 0 {
            format!(
                "POST /api/ads-manager/sync HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 0\r\n\r\n",
                token(&format!("s{}", i % 3))
            )
        } else {
            "GET /health HTTP/1.1\r\nHost: x\r\n\r\n".to_string()
        };
        let address = format!("127.0.0.1:{port}");
        requests.spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut answer = [0u8; 64];
            let read =
                tokio::time::timeout(Duration::from_millis(300), stream.read(&mut answer)).await;
            stream.set_zero_linger().unwrap();
            drop(stream);
            read.is_err()
        });
    }
    let mut hung_up = 0;
    while let Some(done) = requests.join_next().await {
        hung_up += usize::from(done.unwrap());
    }
    assert!(hung_up >= 200, "only {hung_up} requests were still waiting");
    release_tx.send(()).unwrap();
    holder.join().unwrap();

    // The service still syncs, and every background task runs. The sync this client was told
    // about (202) is followed by its own job records: `/health` shares one probe a second, and
    // requests whose clients hung up may still be finishing on the service's runtime, so "no job
    // active right now" is not a condition this test can wait on while the service takes requests.
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let accepted: Vec<String> = loop {
        let response = client
            .post(format!("{base}/api/ads-manager/sync"))
            .bearer_auth(token("s1"))
            .json(&serde_json::json!({"date": today().pred_opt().unwrap().to_string()}))
            .send()
            .await
            .unwrap();
        if response.status() == 202 {
            let body: Value = response.json().await.unwrap();
            break serde_json::from_value(body["jobIds"].clone()).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no sync accepted: {}",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!accepted.is_empty());
    let db = migrated_db(&test_db).await;
    loop {
        let jobs = {
            let mut conn = db.conn().await.unwrap();
            ads_stats::db::jobs::all(&mut conn).await.unwrap()
        };
        let mine: Vec<_> = jobs
            .iter()
            .filter(|j| accepted.contains(&j.job_id))
            .collect();
        if mine.len() == accepted.len() && mine.iter().all(|j| j.status == "SUCCEEDED") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the accepted sync never ran: {mine:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health: Value = client
        .get(format!("{base}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for task in [DISPATCHER, SWEEPER, SCHEDULER] {
        assert_eq!(health["tasks"][task], "running", "{health}");
    }
    let (status, log) = service.terminate().await;
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(!log.contains("panicked"), "a runtime panicked: {log}");

    // Once the process is gone no request can add a job, so every job it accepted (including
    // those recorded just before it stopped) is final: a restart runs what is left, and every
    // job succeeds exactly as if no client had hung up.
    let restarted = ServiceProcess::start(&[
        ("DATABASE_URL", test_db.url.as_str()),
        ("ADS_STATS_SCHEDULER__CRON", "0 0 3 1 1 *"),
    ])
    .await;
    wait_until_idle(&db, Duration::from_secs(30)).await;
    let (status, log) = restarted.terminate().await;
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(!log.contains("panicked"), "a runtime panicked: {log}");
    let mut conn = db.conn().await.unwrap();
    let jobs = ads_stats::db::jobs::all(&mut conn).await.unwrap();
    assert!(
        jobs.iter().all(|j| j.status == "SUCCEEDED"),
        "{:#?}",
        jobs.iter()
            .filter(|j| j.status != "SUCCEEDED")
            .collect::<Vec<_>>()
    );
}

/// A token for the binary's development secret (what `ServiceProcess` runs with by default).
fn service_token(seller: &str) -> String {
    let settings = ads_stats::config::Settings::defaults_with(|_| {}).unwrap();
    ads_stats::auth::TokenVerifier::new(&settings.auth)
        .issue(seller, Duration::from_secs(600))
        .unwrap()
}

/// The service at debug level, through start, a sync and failed logins: neither the JWT secret,
/// nor the database password, nor a caller's token appears in anything it logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs() {
    const SECRET: &str = "known-jwt-secret-0123456789-abcdefghij";
    const PASSWORD: &str = "known-db-password-8f3a1c";
    let test_db = TestDb::new(Backend::Postgres).await;
    {
        let db = migrated_db(&test_db).await;
        let mut conn = db.conn().await.unwrap();
        insert_catalog(&mut conn, &seller_catalog("s1"))
            .await
            .unwrap();
    }
    // The test server trusts local connections, so any password gets in; what matters is that
    // the URL the service is given carries one.
    let url = with_password(&test_db.url, PASSWORD);
    assert!(url.contains(PASSWORD));
    let port = free_port();
    let service = ServiceProcess::start(&[
        ("DATABASE_URL", url.as_str()),
        ("JWT_SECRET", SECRET),
        ("RUST_LOG", "debug"),
        ("ADS_STATS_SCHEDULER__ENABLED", "false"),
        ("PORT", port.as_str()),
    ])
    .await;
    let base = format!("http://127.0.0.1:{port}");
    let verifier = ads_stats::auth::TokenVerifier::new(&ads_stats::config::AuthSettings {
        jwt_secret: ads_stats::config::Secret::new(SECRET),
        issuer: String::new(),
        audience: String::new(),
        leeway_seconds: 0,
        max_token_lifetime: Duration::from_secs(86_400),
    });
    let token = verifier.issue("s1", Duration::from_secs(600)).unwrap();
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{base}/api/ads-manager/sync"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let ids: Value = response.json().await.unwrap();
    let job = ids["jobIds"][0].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status: Value = client
            .get(format!("{base}/api/ads-manager/sync/{job}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["status"] == "SUCCEEDED" {
            break;
        }
        assert!(Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let forged = ads_stats::auth::TokenVerifier::new(&ads_stats::config::AuthSettings {
        jwt_secret: ads_stats::config::Secret::new("a-guess-at-the-secret-0123456789abcdef"),
        issuer: String::new(),
        audience: String::new(),
        leeway_seconds: 0,
        max_token_lifetime: Duration::from_secs(86_400),
    })
    .issue("s1", Duration::from_secs(600))
    .unwrap();
    for bad in [forged.as_str(), "not-a-token"] {
        let response = client
            .post(format!("{base}/api/ads-manager/sync"))
            .bearer_auth(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    let (status, log) = service.terminate().await;
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        log.contains("token rejected") && log.contains("job succeeded"),
        "the log shows the work at debug level: {log}"
    );
    for (what, secret) in [
        ("JWT secret", SECRET),
        ("database password", PASSWORD),
        ("caller's token", token.as_str()),
        ("forged token", forged.as_str()),
    ] {
        assert!(!log.contains(secret), "the {what} leaked into the log");
    }
}

/// `scheme://user@host…` → `scheme://user:password@host…`.
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (user, host) = rest.split_once('@').expect("a user in the test server URL");
    let user = user.split(':').next().unwrap();
    format!("{scheme}://{user}:{password}@{host}")
}

/// A port nothing listens on right now (the binary is started on it a moment later).
fn free_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().unwrap().port().to_string()
}
