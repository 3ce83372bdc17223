//! Issue 18 item 1 and issue 17's "schedule behind" signal: provider requests by outcome against
//! the fake Graph API, the connection gauges read from the database, the stats' freshness, and
//! the behind flag in `/metrics` and `/health`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ads_stats::config::{Aggregation, ProviderKind};
use ads_stats::db::models::NewJobRecord;
use ads_stats::db::schema::{ad_connections, sync_jobs};
use ads_stats::db::{self, Db};
use ads_stats::db_run;
use ads_stats::domain::Level;
use ads_stats::jobs::Trigger;
use ads_stats::pipeline::SyncRequest;
use ads_stats::providers::MetaProvider;
use chrono::{NaiveDateTime, Utc};
use diesel::{ExpressionMethods, QueryDsl};
use reqwest::Method;

use crate::helpers::{add_seller, app, merge, seller_catalog, today, Backend, TestApp};
use crate::meta::{connect_account, graph_error, meta_catalog, meta_settings, FakeGraph, Reply};
use crate::on_both_backends;

on_both_backends!(
    provider_requests_are_counted_by_outcome,
    connections_are_counted_by_status_and_pause,
    freshness_is_the_oldest_latest_sync_of_today,
    a_schedule_behind_shows_in_metrics_and_health,
    database_busy_answers_are_counted_by_code,
);

// ---------- scraping ----------

/// One sample of the text exposition format.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) value: f64,
}

/// Parses the classic text format this service writes (`/metrics` tests elsewhere check it with
/// Prometheus's own parser; here only names, labels and values matter).
pub(crate) fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample line has a value");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
            None => (series, BTreeMap::new()),
        };
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in `{line}`")),
        };
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    samples
}

fn parse_labels(mut rest: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').to_string(), value);
        rest = &after[end..];
    }
    labels
}

pub(crate) async fn scrape(app: &TestApp) -> Vec<Sample> {
    let response = app.send(app.request(Method::GET, "/metrics")).await;
    assert_eq!(response.status(), 200);
    parse(&response.text().await.unwrap())
}

/// The value of the one sample `name` whose labels include every pair of `labels`.
pub(crate) fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert!(
        matching.len() <= 1,
        "several {name} {labels:?}: {matching:?}"
    );
    matching.first().map(|s| s.value)
}

/// Scrapes until `done` holds: the probe behind the gauges shares its answers (the connection and
/// schedule facts for 5 s), and a job's counters move a moment after its record commits.
async fn scrape_until(app: &TestApp, what: &str, done: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    let started = Instant::now();
    loop {
        let samples = scrape(app).await;
        if done(&samples) {
            return samples;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "metrics never showed {what}: {:#?}",
            samples
                .iter()
                .filter(|s| !s.name.contains("_bucket") && !s.name.starts_with("ads_stats_http"))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn requests(samples: &[Sample], outcome: &str) -> f64 {
    value(
        samples,
        "ads_stats_provider_requests_total",
        &[("provider", "meta"), ("outcome", outcome)],
    )
    .unwrap_or(0.0)
}

// ---------- provider requests ----------

const OK: usize = 0;
const SERVER_ERROR: usize = 1;
const THROTTLED: usize = 2;
const EXPIRED: usize = 3;

async fn meta_app(backend: Backend, graph: &FakeGraph) -> TestApp {
    let meta = meta_settings(&graph.url);
    let provider = Arc::new(MetaProvider::new(&meta).unwrap());
    let app = app(backend)
        .with_catalog(meta_catalog())
        .with_settings(move |s| {
            s.provider = ProviderKind::Meta;
            s.stats.aggregation = Aggregation::Latest;
            s.meta = meta;
            // A server error fails its job at once, so each step makes exactly one request.
            s.jobs.max_attempts = 1;
        })
        .with_provider(provider)
        .spawn()
        .await;
    connect_account(&mut app.conn().await).await;
    app
}

async fn enqueue(app: &TestApp, level: Level) {
    let request = SyncRequest::one_day(crate::meta::SELLER, level, today());
    app.app()
        .queue()
        .enqueue(&[request], Trigger::Manual)
        .await
        .expect("enqueue");
}

/// Ends the account's pause and makes its waiting jobs due, as the passing of time would.
async fn end_the_pause(db: &Db) {
    // Scoped: its blanket `first`/`load` would shadow the slice's and the atomic's elsewhere.
    use diesel_async::RunQueryDsl;
    let mut conn = db.conn().await.unwrap();
    let conn = &mut conn;
    let past = db::now_utc() - chrono::Duration::seconds(1);
    db_run!(conn, {
        diesel::update(ad_connections::table)
            .set(ad_connections::paused_until.eq(Some(past)))
            .execute(conn)
            .await
            .unwrap();
        diesel::update(sync_jobs::table.filter(sync_jobs::status.eq("QUEUED")))
            .set(sync_jobs::run_at.eq(past))
            .execute(conn)
            .await
            .unwrap();
    });
}

async fn provider_requests_are_counted_by_outcome(backend: Backend) {
    let mode = Arc::new(AtomicUsize::new(OK));
    let graph = {
        let mode = mode.clone();
        FakeGraph::start(move |_, _, _| match mode.load(Ordering::SeqCst) {
            OK => Reply::json(200, serde_json::json!({"data": []})),
            SERVER_ERROR => Reply::json(500, graph_error(2, 0, "Service temporarily unavailable")),
            THROTTLED => Reply::json(
                400,
                graph_error(
                    80000,
                    2446079,
                    "(#80000) Too many calls from this ad-account.",
                ),
            )
            .header(
                "X-Business-Use-Case-Usage",
                serde_json::json!({"1001": [{"type": "ads_insights", "call_count": 100,
                    "total_cputime": 10, "total_time": 12, "estimated_time_to_regain_access": 2}]}),
            ),
            _ => Reply::json(
                400,
                graph_error(
                    190,
                    463,
                    "Error validating access token: Session has expired.",
                ),
            ),
        })
        .await
    };
    let app = meta_app(backend, &graph).await;
    let before = scrape(&app).await;
    for outcome in ["ok", "throttled", "auth", "error"] {
        assert_eq!(requests(&before, outcome), 0.0, "{outcome} before any job");
    }

    // ok: the insights request (and the account read the first job makes) answered.
    enqueue(&app, Level::Campaign).await;
    app.wait_until_idle(Duration::from_secs(10)).await;
    let ok = scrape_until(&app, "an ok request", |s| requests(s, "ok") >= 1.0).await;
    let oks = requests(&ok, "ok");
    assert_eq!(
        (
            requests(&ok, "error"),
            requests(&ok, "throttled"),
            requests(&ok, "auth")
        ),
        (0.0, 0.0, 0.0)
    );
    assert_eq!(
        value(
            &ok,
            "ads_stats_provider_request_duration_seconds_count",
            &[("provider", "meta")]
        ),
        Some(oks),
        "every request is timed"
    );

    // error: a 5xx fails the job (one attempt allowed).
    mode.store(SERVER_ERROR, Ordering::SeqCst);
    enqueue(&app, Level::Adset).await;
    app.wait_until_idle(Duration::from_secs(10)).await;
    let error = scrape_until(&app, "an error", |s| requests(s, "error") >= 1.0).await;
    assert_eq!(requests(&error, "error"), 1.0);
    assert_eq!(requests(&error, "ok"), oks);

    // throttled: the account is paused and its job waits; the pause gauge says so.
    mode.store(THROTTLED, Ordering::SeqCst);
    enqueue(&app, Level::Ad).await;
    let throttled = scrape_until(&app, "a throttled request and the pause", |s| {
        requests(s, "throttled") >= 1.0
            && value(s, "ads_stats_connections_paused", &[]) == Some(1.0)
    })
    .await;
    assert_eq!(requests(&throttled, "throttled"), 1.0);
    assert_eq!(requests(&throttled, "auth"), 0.0);

    // auth: Meta's 190 fails the job and marks the connection EXPIRED.
    mode.store(EXPIRED, Ordering::SeqCst);
    end_the_pause(&app.db).await;
    app.wait_until_idle(Duration::from_secs(10)).await;
    let auth = scrape_until(&app, "an auth failure and the EXPIRED connection", |s| {
        requests(s, "auth") >= 1.0
            && value(
                s,
                "ads_stats_connections",
                &[("provider", "meta"), ("status", "EXPIRED")],
            ) == Some(1.0)
    })
    .await;
    assert_eq!(requests(&auth, "auth"), 1.0);
    assert_eq!(
        value(
            &auth,
            "ads_stats_connections",
            &[("provider", "meta"), ("status", "ACTIVE")]
        ),
        Some(0.0),
        "a status whose last connection left shows 0"
    );
    assert_eq!(value(&auth, "ads_stats_connections_paused", &[]), Some(0.0));
    let total: f64 = ["ok", "throttled", "auth", "error"]
        .iter()
        .map(|o| requests(&auth, o))
        .sum();
    assert_eq!(
        value(
            &auth,
            "ads_stats_provider_request_duration_seconds_count",
            &[("provider", "meta")]
        ),
        Some(total)
    );
    assert_eq!(
        total,
        (graph.requests() + graph.account_reads().len()) as f64,
        "one observation per request the fake received"
    );
    drop(app.shutdown().await);
}

// ---------- connections and freshness ----------

/// s1 and s2 sync (ACTIVE, delivering); s3's token EXPIRED and s4's connection was REVOKED.
fn four_sellers() -> ads_stats::db::catalog::Catalog {
    let mut catalog = merge(seller_catalog("s1"), seller_catalog("s2"));
    add_seller(&mut catalog, "s3", "ACTIVE", "EXPIRED");
    add_seller(&mut catalog, "s4", "ACTIVE", "REVOKED");
    catalog
}

async fn pause(app: &TestApp, connection: &str, until: NaiveDateTime) {
    // Scoped: its blanket `first`/`load` would shadow the slice's and the atomic's elsewhere.
    use diesel_async::RunQueryDsl;
    let mut conn = app.conn().await;
    let conn = &mut conn;
    db_run!(conn, {
        diesel::update(ad_connections::table.find(connection))
            .set(ad_connections::paused_until.eq(Some(until)))
            .execute(conn)
            .await
            .unwrap();
    });
}

async fn connections_are_counted_by_status_and_pause(backend: Backend) {
    let app = app(backend).with_catalog(four_sellers()).spawn().await;
    let samples = scrape_until(&app, "the connections", |s| {
        value(s, "ads_stats_connections", &[("status", "ACTIVE")]).is_some()
    })
    .await;
    for (status, n) in [("ACTIVE", 2.0), ("EXPIRED", 1.0), ("REVOKED", 1.0)] {
        assert_eq!(
            value(
                &samples,
                "ads_stats_connections",
                &[("provider", "meta"), ("status", status)]
            ),
            Some(n),
            "{status}"
        );
    }
    assert_eq!(
        value(&samples, "ads_stats_connections_paused", &[]),
        Some(0.0)
    );

    // A pause ahead counts; one that ended does not.
    pause(
        &app,
        "s1-conn",
        db::now_utc() + chrono::Duration::minutes(10),
    )
    .await;
    pause(
        &app,
        "s2-conn",
        db::now_utc() - chrono::Duration::minutes(10),
    )
    .await;
    scrape_until(&app, "one paused connection", |s| {
        value(s, "ads_stats_connections_paused", &[]) == Some(1.0)
    })
    .await;
    drop(app.shutdown().await);
}

/// Seconds since the start of today in UTC (the catalogue's connections keep the default zone).
fn since_utc_midnight() -> f64 {
    let now = Utc::now();
    let midnight = now.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    (now - midnight).num_milliseconds() as f64 / 1000.0
}

async fn sync_today(app: &TestApp, seller: &str) {
    let requests: Vec<SyncRequest> = Level::ALL
        .map(|level| SyncRequest::one_day(seller, level, today()))
        .to_vec();
    app.app()
        .queue()
        .enqueue(&requests, Trigger::Manual)
        .await
        .expect("enqueue");
    app.wait_until_idle(Duration::from_secs(20)).await;
}

fn freshness(samples: &[Sample]) -> f64 {
    value(samples, "ads_stats_stats_freshness_seconds", &[]).expect("freshness exported")
}

async fn freshness_is_the_oldest_latest_sync_of_today(backend: Backend) {
    let app = app(backend).with_catalog(four_sellers()).spawn().await;
    // Nothing synced today: as old as the day (the probe's answer may be a second old).
    let samples = scrape(&app).await;
    let expected = since_utc_midnight();
    assert!(
        (freshness(&samples) - expected).abs() <= 5.0,
        "{} vs {expected}",
        freshness(&samples)
    );

    // s1 synced, s2 not yet: s2 still counts from the start of the day.
    sync_today(&app, "s1").await;
    let synced_at = Instant::now();
    // Whether this scrape's facts were read before or after s1's sync, s2 keeps the age.
    let samples = scrape(&app).await;
    let expected = since_utc_midnight();
    assert!(
        (freshness(&samples) - expected).abs() <= 5.0,
        "s2 has no sync today: {} vs {expected}",
        freshness(&samples)
    );

    // Both synced: the oldest latest success is s1's, seconds ago. EXPIRED and REVOKED
    // connections do not count.
    sync_today(&app, "s2").await;
    let samples = scrape_until(&app, "fresh stats", |s| {
        freshness(s) <= synced_at.elapsed().as_secs_f64() + 2.0
    })
    .await;
    assert!(freshness(&samples) >= 0.0);
    drop(app.shutdown().await);
}

// ---------- schedule behind ----------

/// A scheduled job of the mark ticked 15 minutes ago, created 10 minutes ago.
fn scheduled_job(seller: &str, run_at: NaiveDateTime, created_at: NaiveDateTime) -> NewJobRecord {
    NewJobRecord {
        job_id: format!("sync__{seller}__{0}__{0}__CAMPAIGN", today()),
        seller_id: seller.into(),
        level: "CAMPAIGN".into(),
        date_from: today(),
        date_to: today(),
        triggered_by: "SCHEDULE".into(),
        status: "QUEUED".into(),
        attempts: 0,
        max_attempts: 3,
        run_at,
        created_at,
        updated_at: created_at,
        priority: 2, // Priority::Scheduled
    }
}

async fn a_schedule_behind_shows_in_metrics_and_health(backend: Backend) {
    // Scoped: its blanket `first`/`load` would shadow the slice's and the atomic's elsewhere.
    use diesel_async::RunQueryDsl;
    let app = app(backend).spawn().await;
    let now = db::now_utc();
    let minutes = |m: i64| now - chrono::Duration::minutes(m);
    let mut conn = app.conn().await;
    // A mark ticked, and two of its scheduled jobs: s1's waits for a retry's back-off (on
    // purpose); s2's runs on another instance (its heartbeat is fresh, so nobody takes it back).
    assert!(db::ticks::claim(&mut conn, minutes(15), "test")
        .await
        .unwrap());
    let conn_ref = &mut conn;
    db_run!(conn_ref, {
        for job in [
            scheduled_job("s1", now + chrono::Duration::hours(1), minutes(10)),
            scheduled_job("s2", minutes(10), minutes(10)),
        ] {
            diesel::insert_into(sync_jobs::table)
                .values(&job)
                .execute(conn_ref)
                .await
                .unwrap();
        }
        diesel::update(sync_jobs::table.filter(sync_jobs::seller_id.eq("s2")))
            .set((
                sync_jobs::status.eq("RUNNING"),
                sync_jobs::attempts.eq(1),
                sync_jobs::locked_by.eq(Some("other-instance")),
                sync_jobs::started_at.eq(Some(now)),
                sync_jobs::heartbeat_at.eq(Some(now)),
            ))
            .execute(conn_ref)
            .await
            .unwrap();
    });
    let behind = |s: &[Sample]| value(s, "ads_stats_schedule_behind", &[]);
    scrape_until(&app, "a schedule on time", |s| behind(s) == Some(0.0)).await;
    let health: serde_json::Value = app.health().await.json().await.unwrap();
    assert_eq!(health["scheduleBehind"], false, "{health}");

    // A newer mark ticked while s2's job still runs: behind, and /health still 200.
    assert!(db::ticks::claim(&mut conn, minutes(5), "test")
        .await
        .unwrap());
    scrape_until(&app, "a schedule behind", |s| behind(s) == Some(1.0)).await;
    let response = app.health().await;
    assert_eq!(response.status(), 200, "being behind never fails /health");
    let health: serde_json::Value = response.json().await.unwrap();
    assert_eq!(health["scheduleBehind"], true, "{health}");

    // s2's job ended: on time again, though s1's still waits for its back-off.
    let conn_ref = &mut conn;
    db_run!(conn_ref, {
        diesel::update(sync_jobs::table.filter(sync_jobs::seller_id.eq("s2")))
            .set(sync_jobs::status.eq("SUCCEEDED"))
            .execute(conn_ref)
            .await
            .unwrap();
    });
    drop(conn);
    scrape_until(&app, "a schedule on time again", |s| behind(s) == Some(0.0)).await;
    drop(app.shutdown().await);
}

// ---------- database busy ----------

async fn database_busy_answers_are_counted_by_code(backend: Backend) {
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .with_settings(|s| {
            s.database.pool_size = 1;
            s.database.connect_timeout = Duration::from_millis(300);
        })
        .spawn()
        .await;
    let before = scrape(&app).await;
    let busy = |s: &[Sample]| {
        value(
            s,
            "ads_stats_http_errors_total",
            &[("code", "database_busy")],
        )
    };
    assert_eq!(busy(&before), Some(0.0), "the series exists from the start");
    let token = app.token("s1");
    let held = app.app().db().conn().await.expect("the one connection");
    assert_eq!(app.post_sync(Some(&token), None).await.status(), 503);
    // /health answers from its probe, shared for a second: wait until it has seen the pool full.
    let started = Instant::now();
    while app.health().await.status() != 503 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "/health never saw the full pool"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(held);
    let after = scrape_until(&app, "the two busy answers", |s| busy(s) == Some(2.0)).await;
    assert_eq!(
        value(
            &after,
            "ads_stats_http_errors_total",
            &[("code", "database_unavailable")]
        ),
        Some(0.0)
    );
    app.shutdown().await;
}
