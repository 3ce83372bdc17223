//! Traces over OTLP/HTTP: the real binary, pointed at an in-process receiver that decodes the
//! protobuf it is sent. A manual sync's trace runs from the caller's span through the request,
//! the jobs, their provider requests and their write transactions; a tick has its span; with no
//! endpoint nothing is sent, even with the OpenTelemetry environment variables pointing at one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use ads_stats::auth::TokenVerifier;
use ads_stats::db::catalog::insert_catalog;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;

use crate::helpers::{migrated_db, seller_catalog, test_settings, Backend, ServiceProcess, TestDb};
use crate::on_both_backends;

/// The trace and span the test's own "caller" makes up for `traceparent`.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// One span as the receiver decoded it: ids in lowercase hex, attributes as text.
#[derive(Debug, Clone)]
struct Span {
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: HashMap<String, String>,
}

/// An OTLP/HTTP receiver on 127.0.0.1:0: POST /v1/traces, protobuf, decoded and kept.
struct Receiver {
    url: String,
    posts: Arc<Mutex<usize>>,
    spans: Arc<Mutex<Vec<Span>>>,
    server: actix_web::dev::ServerHandle,
}

impl Receiver {
    async fn start() -> Self {
        let posts = Arc::new(Mutex::new(0));
        let spans = Arc::new(Mutex::new(Vec::new()));
        let (p, s) = (posts.clone(), spans.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            let (posts, spans) = (p.clone(), s.clone());
            App::new()
                .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
                .route(
                    "/v1/traces",
                    web::post().to(move |body: web::Bytes| {
                        let (posts, spans) = (posts.clone(), spans.clone());
                        async move {
                            *posts.lock().unwrap() += 1;
                            let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                                return HttpResponse::BadRequest().finish();
                            };
                            spans.lock().unwrap().extend(decode(request));
                            HttpResponse::Ok()
                                .content_type("application/x-protobuf")
                                .finish()
                        }
                    }),
                )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}"),
            posts,
            spans,
            server: handle,
        }
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    fn posts(&self) -> usize {
        *self.posts.lock().unwrap()
    }

    /// Polls until `done` holds for the spans received, at most 30 s.
    async fn wait_for(&self, what: &str, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within 30 s; received: {spans:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode(request: ExportTraceServiceRequest) -> Vec<Span> {
    let mut out = Vec::new();
    for resource in request.resource_spans {
        for scope in resource.scope_spans {
            for span in scope.spans {
                let attributes = span
                    .attributes
                    .iter()
                    .map(|kv| {
                        let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                            Some(Value::StringValue(s)) => s.clone(),
                            Some(Value::IntValue(i)) => i.to_string(),
                            Some(Value::BoolValue(b)) => b.to_string(),
                            Some(Value::DoubleValue(d)) => d.to_string(),
                            other => format!("{other:?}"),
                        };
                        (kv.key.clone(), value)
                    })
                    .collect();
                out.push(Span {
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent: hex(&span.parent_span_id),
                    attributes,
                });
            }
        }
    }
    out
}

fn token(db_url: &str, seller: &str) -> String {
    TokenVerifier::new(&test_settings(db_url, |_| {}).auth)
        .issue(seller, Duration::from_secs(600))
        .unwrap()
}

/// POSTs a manual sync for `seller` (with `traceparent` when given); returns the job ids.
async fn post_sync(
    service: &ServiceProcess,
    token: &str,
    traceparent: Option<&str>,
) -> Vec<String> {
    let mut request = reqwest::Client::new()
        .post(service.url("/api/ads-manager/sync"))
        .bearer_auth(token);
    if let Some(tp) = traceparent {
        request = request.header("traceparent", tp);
    }
    let answer = request.send().await.unwrap();
    assert_eq!(answer.status(), 202);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["jobIds"],
        "the answer gains no field: {body}"
    );
    body["jobIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// Polls the job status API until every job SUCCEEDED (at most 30 s); returns their JSON.
async fn wait_succeeded(
    service: &ServiceProcess,
    token: &str,
    jobs: &[String],
) -> Vec<serde_json::Value> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut answers = Vec::new();
        for job in jobs {
            let url = service.url(&format!("/api/ads-manager/sync/{job}"));
            let answer = client.get(url).bearer_auth(token).send().await.unwrap();
            answers.push(answer.json::<serde_json::Value>().await.unwrap());
        }
        if answers.iter().all(|a| a["status"] == "SUCCEEDED") {
            return answers;
        }
        assert!(Instant::now() < deadline, "jobs not done: {answers:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

on_both_backends!(a_manual_sync_is_one_trace_from_the_request_to_the_last_write);

async fn a_manual_sync_is_one_trace_from_the_request_to_the_last_write(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    insert_catalog(&mut db.conn().await.unwrap(), &seller_catalog("s1"))
        .await
        .unwrap();
    let receiver = Receiver::start().await;
    let service = ServiceProcess::start(&[
        ("DATABASE_URL", test_db.url.as_str()),
        ("ADS_STATS_TELEMETRY__OTLP_ENDPOINT", receiver.url.as_str()),
        ("ADS_STATS_SCHEDULER__ENABLED", "false"),
        ("ADS_STATS_JOBS__POLL_INTERVAL", "100ms"),
        // No export on the timer during the test: the spans must arrive by the flush at
        // shutdown (fewer than a batch's 512 spans are made).
        ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
    ])
    .await;
    let token = token(&test_db.url, "s1");
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let jobs = post_sync(&service, &token, Some(&traceparent)).await;
    assert_eq!(jobs.len(), 3, "{jobs:?}");
    for answer in wait_succeeded(&service, &token, &jobs).await {
        assert!(
            !answer.to_string().contains(TRACE_ID) && answer.get("traceParent").is_none(),
            "the job's JSON shows no trace: {answer}"
        );
    }
    let (status, log) = service.terminate().await;
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        !log.contains(TRACE_ID),
        "log lines do not show spans: {log}"
    );

    let ours = |spans: &[Span]| -> Vec<Span> {
        spans
            .iter()
            .filter(|s| s.trace_id == TRACE_ID)
            .cloned()
            .collect()
    };
    let count = |spans: &[Span], name: &str| ours(spans).iter().filter(|s| s.name == name).count();
    let spans = receiver
        .wait_for("trace of the sync", |spans| {
            count(spans, "job") == 3
                && count(spans, "db.transaction") >= 3
                && count(spans, "provider.request") >= 3
                && ours(spans)
                    .iter()
                    .any(|s| s.attributes.contains_key("http.route"))
        })
        .await;
    let spans = ours(&spans);
    let request = spans
        .iter()
        .find(|s| {
            s.attributes.get("http.route").map(String::as_str) == Some("/api/ads-manager/sync")
        })
        .unwrap_or_else(|| panic!("no request span: {spans:#?}"));
    assert_eq!(request.name, "POST /api/ads-manager/sync");
    assert_eq!(
        request.parent, CALLER_SPAN,
        "the caller's span is the parent"
    );
    assert_eq!(request.attributes["http.request.method"], "POST");
    assert_eq!(request.attributes["http.response.status_code"], "202");
    let by_id: HashMap<&str, &Span> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    // Every span of the trace chains back, parent by parent, to the request and then the caller.
    for span in &spans {
        let mut at = span;
        let mut hops = 0;
        while at.span_id != request.span_id {
            at = by_id
                .get(at.parent.as_str())
                .unwrap_or_else(|| panic!("{span:?} does not chain back to the request"));
            hops += 1;
            assert!(hops < 10, "a loop in the parents: {spans:#?}");
        }
    }
    let jobs_seen: Vec<&Span> = spans.iter().filter(|s| s.name == "job").collect();
    for job in &jobs_seen {
        assert_eq!(
            job.parent, request.span_id,
            "a job continues the request: {job:?}"
        );
        assert_eq!(job.attributes["job.outcome"], "succeeded", "{job:?}");
        assert_eq!(job.attributes["seller.id"], "s1");
        assert_eq!(job.attributes["job.trigger"], "MANUAL");
        assert_eq!(job.attributes["job.attempt"], "1");
        assert!(jobs.contains(&job.attributes["job.id"]), "{job:?}");
        let children = |name: &str| {
            spans
                .iter()
                .filter(|s| s.name == name && s.parent == job.span_id)
                .count()
        };
        assert!(
            children("provider.request") >= 1,
            "a provider request under {job:?}"
        );
        assert_eq!(
            children("db.transaction"),
            1,
            "the write transaction under {job:?}"
        );
    }
    let levels: std::collections::BTreeSet<&str> = jobs_seen
        .iter()
        .map(|j| j.attributes["job.level"].as_str())
        .collect();
    assert_eq!(
        levels,
        ["AD", "ADSET", "CAMPAIGN"].into(),
        "one span per job"
    );
    // The records keep the request span's traceparent (what an instance that claims them reads).
    for job in &jobs {
        let record = ads_stats::db::jobs::latest(&mut db.conn().await.unwrap(), job)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            record.trace_parent.as_deref(),
            Some(format!("00-{TRACE_ID}-{}-01", request.span_id).as_str())
        );
    }
    let transaction = spans.iter().find(|s| s.name == "db.transaction").unwrap();
    let backend_name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(transaction.attributes["db.system.name"], backend_name);
    for span in &spans {
        for value in span.attributes.values() {
            assert!(!value.contains(&token), "no token in {span:?}");
        }
    }

    receiver.server.stop(false).await;
}

/// A tick has its span (the root of a trace of its own), and so do the scheduled jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_has_its_span() {
    let test_db = TestDb::new(Backend::Sqlite).await;
    let db = migrated_db(&test_db).await;
    insert_catalog(&mut db.conn().await.unwrap(), &seller_catalog("s1"))
        .await
        .unwrap();
    drop(db);
    let receiver = Receiver::start().await;
    let service = ServiceProcess::start(&[
        ("DATABASE_URL", test_db.url.as_str()),
        ("ADS_STATS_TELEMETRY__OTLP_ENDPOINT", receiver.url.as_str()),
        // Every second: a tick comes at once.
        ("ADS_STATS_SCHEDULER__CRON", "* * * * * *"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ])
    .await;
    let spans = receiver
        .wait_for("tick span", |spans| spans.iter().any(|s| s.name == "tick"))
        .await;
    let tick = spans.iter().find(|s| s.name == "tick").unwrap();
    assert_eq!(tick.parent, "", "a tick starts its own trace: {tick:?}");
    assert!(tick.attributes.contains_key("tick.mark"), "{tick:?}");
    // The tick's jobs are scheduled: each starts a trace of its own, not the tick's.
    let spans = receiver
        .wait_for("scheduled job span", |spans| {
            spans.iter().any(|s| s.name == "job")
        })
        .await;
    let job = spans.iter().find(|s| s.name == "job").unwrap();
    assert_eq!(job.attributes["job.trigger"], "SCHEDULE");
    assert_eq!(job.parent, "", "{job:?}");
    let (status, log) = service.terminate().await;
    assert_eq!(status.code(), Some(0), "{log}");
    receiver.server.stop(false).await;
}

/// Without `telemetry.otlp_endpoint`, nothing is exported, not even to the endpoint the standard
/// OpenTelemetry variables name, and job records keep no traceparent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_endpoint_nothing_is_sent() {
    let test_db = TestDb::new(Backend::Sqlite).await;
    let db = migrated_db(&test_db).await;
    insert_catalog(&mut db.conn().await.unwrap(), &seller_catalog("s1"))
        .await
        .unwrap();
    let receiver = Receiver::start().await;
    let traces_url = format!("{}/v1/traces", receiver.url);
    let service = ServiceProcess::start(&[
        ("DATABASE_URL", test_db.url.as_str()),
        ("ADS_STATS_SCHEDULER__ENABLED", "false"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.as_str()),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces_url.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ])
    .await;
    let token = token(&test_db.url, "s1");
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let jobs = post_sync(&service, &token, Some(&traceparent)).await;
    wait_succeeded(&service, &token, &jobs).await;
    // Stopping flushes any exporter there is: after it, whatever was to be sent has been.
    let (status, log) = service.terminate().await;
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(!log.contains("exporting traces"), "{log}");
    assert_eq!(receiver.posts(), 0, "nothing sent: {:#?}", receiver.spans());
    for job in &jobs {
        let record = ads_stats::db::jobs::latest(&mut db.conn().await.unwrap(), job)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.trace_parent, None, "{record:?}");
    }
    receiver.server.stop(false).await;
}

/// Each Meta Graph request is a `provider.request` span (here from `ads-stats sync`, which exports
/// its spans before it exits), with the path but never the query, the token or the proof.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_meta_request_is_a_span_without_secrets() {
    use crate::meta::{
        connect_account, key_b64, meta_catalog, run_with_stdin, text, FakeGraph, Reply, APP_SECRET,
        SELLER, TOKEN, TOKEN_PROOF,
    };
    let graph = FakeGraph::start(|_, _, _| Reply::json(200, serde_json::json!({"data": []}))).await;
    let test_db = TestDb::new(Backend::Sqlite).await;
    let db = migrated_db(&test_db).await;
    {
        let mut conn = db.conn().await.unwrap();
        insert_catalog(&mut conn, &meta_catalog()).await.unwrap();
        connect_account(&mut conn).await;
    }
    let receiver = Receiver::start().await;
    let key = key_b64();
    let envs = [
        ("DATABASE_URL", test_db.url.as_str()),
        ("ADS_STATS_META__TOKEN_KEY", key.as_str()),
        ("ADS_STATS_META__APP_SECRET", APP_SECRET),
        ("ADS_STATS_PROVIDER", "meta"),
        ("ADS_STATS_STATS__AGGREGATION", "latest"),
        ("ADS_STATS_META__BASE_URL", graph.url.as_str()),
        ("ADS_STATS_TELEMETRY__OTLP_ENDPOINT", receiver.url.as_str()),
        // Only the flush at exit sends: the command is done long before a timed export.
        ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let args = [
        "sync",
        "--seller",
        SELLER,
        "--date",
        "2026-11-20",
        "--level",
        "CAMPAIGN",
    ];
    let out = run_with_stdin(&args, &envs, "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let spans = receiver
        .wait_for("Meta request spans", |spans| {
            spans.iter().any(|s| {
                s.attributes
                    .get("url.path")
                    .is_some_and(|p| p.ends_with("/insights"))
            })
        })
        .await;
    let meta: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "provider.request")
        .collect();
    let asked = graph.requests() + graph.account_reads().len();
    assert!(graph.requests() >= 1, "the insights were asked for");
    assert_eq!(meta.len(), asked, "one span per Graph request: {spans:#?}");
    for span in &meta {
        assert_eq!(span.attributes["provider.name"], "meta", "{span:?}");
        assert_eq!(span.attributes["http.request.method"], "GET", "{span:?}");
        assert_eq!(
            span.attributes["http.response.status_code"], "200",
            "{span:?}"
        );
        assert!(span.attributes["url.path"].contains("act_1001"), "{span:?}");
    }
    for span in &spans {
        for value in span.attributes.values() {
            for secret in [TOKEN, TOKEN_PROOF, APP_SECRET, key.as_str()] {
                assert!(!value.contains(secret), "a secret in {span:?}");
            }
        }
    }
    receiver.server.stop(false).await;
}

/// A bad endpoint stops start-up with one line naming the key, exit 2.
#[tokio::test]
async fn a_bad_endpoint_is_a_start_up_error() {
    for bad in [
        "localhost:4318",
        "grpc://127.0.0.1:4317",
        "http://user:pw@collector:4318",
    ] {
        let out = crate::helpers::ads_stats()
            .arg("serve")
            .env("ADS_STATS_TELEMETRY__OTLP_ENDPOINT", bad)
            .env("ADS_STATS_CONFIG_DIR", "/nonexistent")
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains("telemetry.otlp_endpoint"), "{stderr}");
        assert!(!stderr.contains("pw@"), "no credentials echoed: {stderr}");
    }
}
