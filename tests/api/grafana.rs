//! The Grafana dashboard (config/grafana/ads-stats.json) and the alert rules
//! (config/prometheus/ads-stats.rules.yml) ask only for metrics the service exports: a running
//! instance is scraped after a tick and its provider requests, so every family has samples, and
//! every `ads_stats_…` name the two files use must be among them. The dashboard cannot drift from
//! the code unnoticed.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::helpers::{app, seller_catalog, Backend};
use crate::on_both_backends;
use crate::provider_metrics::{scrape, Sample};

on_both_backends!(the_dashboard_and_the_rules_use_only_exported_metrics);

fn read(path: &str) -> String {
    std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The family a sample or a query's series belongs to: histograms are queried (and exported) as
/// `_bucket`, `_sum` and `_count` series.
fn family(name: &str) -> &str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name)
}

/// Every `ads_stats_…` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("ads_stats_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

/// The dashboard's PromQL: every panel's targets and the variables' queries.
fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<String> {
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(target["expr"].as_str().expect("expr").to_string());
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        if let Some(definition) = variable["definition"].as_str() {
            queries.push(definition.to_string());
        }
    }
    queries
}

/// The name right before each `{` of a query: every series selector names one of ours, or
/// Prometheus's own `up`.
fn selectors(query: &str) -> Vec<String> {
    query
        .match_indices('{')
        .map(|(i, _)| {
            query[..i]
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect::<String>()
                .chars()
                .rev()
                .collect()
        })
        .collect()
}

async fn the_dashboard_and_the_rules_use_only_exported_metrics(backend: Backend) {
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("config/grafana/ads-stats.json")).expect("dashboard is JSON");
    let rules = read("config/prometheus/ads-stats.rules.yml");
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 20, "{queries:?}");
    for query in &queries {
        for name in selectors(query) {
            assert!(
                name.starts_with("ads_stats_") || name == "up",
                "the dashboard queries `{name}`, which ads-stats does not export: {query}"
            );
        }
    }

    // A running instance after one tick: its jobs ran and asked the (mock) provider.
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .spawn()
        .await;
    app.app()
        .scheduler()
        .tick(chrono::Utc::now())
        .await
        .expect("tick");
    app.wait_until_idle(Duration::from_secs(20)).await;
    let started = Instant::now();
    let samples: Vec<Sample> = loop {
        let samples = scrape(&app).await;
        let has = |name: &str| samples.iter().any(|s| s.name == name);
        if has("ads_stats_job_duration_seconds_count")
            && has("ads_stats_provider_request_duration_seconds_count")
            && has("ads_stats_stats_freshness_seconds")
            // The scrapes before this one are the requests HTTP metrics count.
            && has("ads_stats_http_request_duration_seconds_count")
        {
            break samples;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the tick's jobs never showed in /metrics"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let exported: BTreeSet<&str> = samples.iter().map(|s| family(&s.name)).collect();

    let used: Vec<(&str, String)> = queries
        .iter()
        .flat_map(|q| metric_names(q))
        .map(|n| ("config/grafana/ads-stats.json", n))
        .chain(
            metric_names(&rules)
                .into_iter()
                .map(|n| ("config/prometheus/ads-stats.rules.yml", n)),
        )
        .collect();
    let missing: Vec<String> = used
        .iter()
        .filter(|(_, name)| !exported.contains(family(name)))
        .map(|(file, name)| format!("{name} (in {file})"))
        .collect();
    assert!(
        missing.is_empty(),
        "used but not exported: {missing:?}\nexported: {exported:?}"
    );
    // The families the issue asks the dashboard to show are all there.
    let on_dashboard: BTreeSet<String> = queries.iter().flat_map(|q| metric_names(q)).collect();
    for name in [
        "ads_stats_scheduler_ticks_total",
        "ads_stats_jobs_finished_total",
        "ads_stats_job_duration_seconds_bucket",
        "ads_stats_jobs_queued",
        "ads_stats_stats_freshness_seconds",
        "ads_stats_provider_request_duration_seconds_bucket",
        "ads_stats_provider_requests_total",
        "ads_stats_http_requests_total",
        "ads_stats_http_request_duration_seconds_bucket",
        "ads_stats_db_pool_size",
    ] {
        assert!(on_dashboard.contains(name), "the dashboard shows no {name}");
    }
    app.shutdown().await;
}
