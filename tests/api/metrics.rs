//! `GET /metrics`: the output parses with Prometheus's own Python parser, its counters move when
//! jobs run and requests are answered, route labels are patterns, and the settings are obeyed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use crate::helpers::{app, seller_catalog, Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    a_sync_moves_the_counters_and_the_output_parses,
    scheduler_ticks_are_counted_with_their_time,
    route_labels_are_patterns_never_paths,
    a_configured_token_is_required,
    disabled_metrics_answer_404,
);

/// One sample as Python's `prometheus_client` parsed it.
#[derive(Debug, Deserialize)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses exposition text with `prometheus_client` (the PyPI package `prometheus-client`):
/// the classic text parser, or the stricter OpenMetrics one. Panics naming the package when it is
/// missing, so a machine without it fails loudly instead of skipping the check.
async fn parse(text: &str, openmetrics: bool) -> Vec<Sample> {
    const SCRIPT: &str = r#"
import json, math, sys
try:
    from prometheus_client.parser import text_string_to_metric_families as classic
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
except ImportError as e:
    sys.stderr.write("MISSING prometheus_client: %s\n" % e)
    sys.exit(3)
parse = openmetrics if sys.argv[1] == "openmetrics" else classic
out = []
for family in parse(sys.stdin.read()):
    for s in family.samples:
        if not math.isfinite(s.value):
            raise ValueError("non-finite value in %s" % s.name)
        out.append({"name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps(out))
"#;
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("python3")
        .args([
            "-c",
            SCRIPT,
            if openmetrics {
                "openmetrics"
            } else {
                "classic"
            },
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "the metrics tests need python3 with the PyPI package prometheus-client \
                 (`python3 -m pip install prometheus-client==0.26.0`; .ci/run installs it): {e}"
            )
        });
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(text.as_bytes()).await.expect("write stdin");
    drop(stdin);
    let out = child.wait_with_output().await.expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() != Some(3),
        "the metrics tests need the PyPI package prometheus-client for python3 \
         (`python3 -m pip install prometheus-client==0.26.0`; .ci/run installs it): {stderr}"
    );
    assert!(
        out.status.success(),
        "/metrics does not parse as {} text: {stderr}\n--- output ---\n{text}",
        if openmetrics {
            "OpenMetrics"
        } else {
            "Prometheus"
        }
    );
    serde_json::from_slice(&out.stdout).expect("parser output is JSON")
}

/// The value of the sample `name` whose labels include every pair of `labels`, when exactly one
/// matches.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
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
        "more than one {name} sample has labels {labels:?}: {matching:?}"
    );
    matching.first().map(|s| s.value)
}

async fn scrape(app: &TestApp) -> (String, Vec<Sample>) {
    let response = app.send(app.request(Method::GET, "/metrics")).await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    let samples = parse(&text, false).await;
    (text, samples)
}

/// Scrapes until `done` holds (a job's metrics are recorded a moment after its record commits).
async fn scrape_until(app: &TestApp, done: impl Fn(&[Sample]) -> bool) -> (String, Vec<Sample>) {
    let started = Instant::now();
    loop {
        let (text, samples) = scrape(app).await;
        if done(&samples) {
            return (text, samples);
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "metrics never reached the expected state:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const LEVELS: [&str; 3] = ["CAMPAIGN", "ADSET", "AD"];

async fn a_sync_moves_the_counters_and_the_output_parses(backend: Backend) {
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .spawn()
        .await;

    let (_, before) = scrape(&app).await;
    assert_eq!(
        value(&before, "ads_stats_rows_written_total", &[("tier", "raw")]),
        Some(0.0)
    );
    assert_eq!(
        value(
            &before,
            "ads_stats_jobs_finished_total",
            &[("outcome", "succeeded")]
        ),
        None,
        "no job has finished yet"
    );

    let response = app.post_sync(Some(&app.token("s1")), None).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    let job_id = body["jobIds"][0].as_str().expect("a job id").to_string();
    app.wait_until_idle(Duration::from_secs(20)).await;
    assert_eq!(app.get_job(&app.token("s1"), &job_id).await.status(), 200);

    let finished = |s: &[Sample]| {
        LEVELS.iter().all(|level| {
            value(
                s,
                "ads_stats_jobs_finished_total",
                &[("level", level), ("outcome", "succeeded")],
            ) == Some(1.0)
        })
    };
    let (text, after) = scrape_until(&app, finished).await;
    for level in LEVELS {
        let labels = [("level", level), ("outcome", "succeeded")];
        assert_eq!(
            value(&after, "ads_stats_job_duration_seconds_count", &labels),
            Some(1.0),
            "{level}"
        );
        assert!(
            value(&after, "ads_stats_job_duration_seconds_sum", &labels).unwrap() > 0.0,
            "{level}"
        );
    }
    let (raw, daily, sellpage) = app.tier_counts("s1").await;
    assert!(raw > 0 && daily > 0 && sellpage > 0, "the sync wrote rows");
    for (tier, rows) in [("raw", raw), ("daily", daily), ("sellpage", sellpage)] {
        assert_eq!(
            value(&after, "ads_stats_rows_written_total", &[("tier", tier)]),
            Some(rows as f64),
            "{tier} rows counted as the table holds them"
        );
    }
    let sync = [("method", "POST"), ("route", "/api/ads-manager/sync")];
    assert_eq!(
        value(
            &after,
            "ads_stats_http_requests_total",
            &[sync[0], sync[1], ("status", "202")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &after,
            "ads_stats_http_request_duration_seconds_count",
            &sync
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &after,
            "ads_stats_http_request_duration_seconds_bucket",
            &[sync[0], sync[1], ("le", "+Inf")]
        ),
        Some(1.0)
    );
    // The scrapes before this one are counted too, under their own route.
    assert!(
        value(
            &after,
            "ads_stats_http_requests_total",
            &[("method", "GET"), ("route", "/metrics"), ("status", "200")]
        )
        .unwrap()
            >= 1.0
    );
    // Read at scrape time: nothing is left to run, and the pool is the configured one.
    assert_eq!(value(&after, "ads_stats_jobs_queued", &[]), Some(0.0));
    assert_eq!(value(&after, "ads_stats_jobs_running", &[]), Some(0.0));
    assert_eq!(
        value(&after, "ads_stats_db_pool_max_size", &[]),
        Some(app.settings.database.pool_size as f64)
    );
    let open = value(&after, "ads_stats_db_pool_size", &[]).unwrap();
    assert!((1.0..=6.0).contains(&open), "{open}");
    assert!(value(&after, "ads_stats_db_pool_available", &[]).unwrap() <= open);
    assert_eq!(value(&after, "ads_stats_db_pool_waiting", &[]), Some(0.0));

    // Prometheus asks for OpenMetrics first; that answer parses with the strict parser too and
    // says the same.
    let response = app
        .send(app.request(Method::GET, "/metrics").header(
            "Accept",
            "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3",
        ))
        .await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    let openmetrics = parse(&response.text().await.unwrap(), true).await;
    assert_eq!(
        value(
            &openmetrics,
            "ads_stats_rows_written_total",
            &[("tier", "raw")]
        ),
        Some(raw as f64)
    );
    app.shutdown().await;
}

async fn scheduler_ticks_are_counted_with_their_time(backend: Backend) {
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .spawn()
        .await;
    let (_, before) = scrape(&app).await;
    assert_eq!(
        value(
            &before,
            "ads_stats_scheduler_ticks_total",
            &[("outcome", "ok")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &before,
            "ads_stats_scheduler_last_tick_timestamp_seconds",
            &[]
        ),
        Some(0.0)
    );
    let mark = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    app.app().scheduler().tick(mark).await.expect("tick");
    let (_, after) = scrape(&app).await;
    assert_eq!(
        value(
            &after,
            "ads_stats_scheduler_ticks_total",
            &[("outcome", "ok")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &after,
            "ads_stats_scheduler_ticks_total",
            &[("outcome", "failed")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &after,
            "ads_stats_scheduler_last_tick_timestamp_seconds",
            &[]
        ),
        Some(1_800_000_000.0)
    );
    assert_eq!(
        value(
            &after,
            "ads_stats_scheduler_tick_duration_seconds_count",
            &[]
        ),
        Some(1.0)
    );
    app.shutdown().await;
}

async fn route_labels_are_patterns_never_paths(backend: Backend) {
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .spawn()
        .await;
    let token = app.token("s1");
    for id in ["sync__s1__2026-01-01__2026-01-01__AD", "another-id"] {
        assert_eq!(app.get_job(&token, id).await.status(), 404);
    }
    let stray = app
        .send(app.request(Method::GET, "/wp-admin/secret-123"))
        .await;
    assert_eq!(stray.status(), 404);
    let wrong_method = app.send(app.request(Method::DELETE, "/metrics")).await;
    assert_eq!(wrong_method.status(), 405);

    let (text, samples) = scrape(&app).await;
    assert_eq!(
        value(
            &samples,
            "ads_stats_http_requests_total",
            &[
                ("method", "GET"),
                ("route", "/api/ads-manager/sync/{job_id}"),
                ("status", "404"),
            ]
        ),
        Some(2.0),
        "both job lookups under one pattern:\n{text}"
    );
    assert_eq!(
        value(
            &samples,
            "ads_stats_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &samples,
            "ads_stats_http_requests_total",
            &[
                ("method", "DELETE"),
                ("route", "/metrics"),
                ("status", "405")
            ]
        ),
        Some(1.0),
        "{text}"
    );
    for raw in ["sync__s1", "another-id", "wp-admin", "secret-123"] {
        assert!(
            !text.contains(raw),
            "`{raw}` from a path became a label:\n{text}"
        );
    }
    app.shutdown().await;
}

const TOKEN: &str = "scrape-token-0123456789abcdef";

async fn a_configured_token_is_required(backend: Backend) {
    let app = app(backend)
        .with_settings(|s| s.metrics.bearer_token = ads_stats::config::Secret::new(TOKEN))
        .spawn()
        .await;
    let without = app.send(app.request(Method::GET, "/metrics")).await;
    assert_eq!(without.status(), 401);
    assert_eq!(without.headers()["www-authenticate"], "Bearer");
    let body: Value = without.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized", "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));

    for wrong in [
        format!("Bearer {TOKEN}x"),
        format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]),
        format!("Basic {TOKEN}"),
        app.token("s1"),
    ] {
        let response = app
            .send(
                app.request(Method::GET, "/metrics")
                    .header("Authorization", &wrong),
            )
            .await;
        assert_eq!(response.status(), 401, "{wrong}");
    }

    let with = app
        .send(app.request(Method::GET, "/metrics").bearer_auth(TOKEN))
        .await;
    assert_eq!(with.status(), 200);
    let samples = parse(&with.text().await.unwrap(), false).await;
    assert_eq!(
        value(
            &samples,
            "ads_stats_http_requests_total",
            &[("route", "/metrics"), ("status", "401")]
        ),
        Some(5.0),
        "refused scrapes are counted too"
    );
    // The scheme is case-insensitive, as for API tokens.
    let lower = app
        .send(
            app.request(Method::GET, "/metrics")
                .header("Authorization", format!("bearer {TOKEN}")),
        )
        .await;
    assert_eq!(lower.status(), 200);
    app.shutdown().await;
}

async fn disabled_metrics_answer_404(backend: Backend) {
    let app = app(backend)
        .with_settings(|s| s.metrics.enabled = false)
        .spawn()
        .await;
    for method in [Method::GET, Method::POST] {
        let response = app.send(app.request(method.clone(), "/metrics")).await;
        assert_eq!(response.status(), 404, "{method}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "not_found", "{body}");
    }
    // The rest of the service is unaffected.
    assert_eq!(app.health().await.status(), 200);
    app.shutdown().await;
}
