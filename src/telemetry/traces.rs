//! Traces: spans for each HTTP request, scheduler tick, job attempt, provider request and job
//! write transaction, exported over OTLP/HTTP (protobuf) when `telemetry.otlp_endpoint` is set.
//!
//! The spans are ordinary `tracing` spans with the target [`TARGET`]. With no endpoint, the log
//! filter turns that target off: the spans are never built and the logs look as they always did.
//! With one, a `tracing-opentelemetry` layer sees only that target and hands the spans to a batch
//! exporter; the log layer still does not see them. Nothing here is global state beyond the one
//! tracing subscriber: no global tracer provider, no global propagator.
//!
//! A manual sync's jobs continue the trace of the `POST /sync` request that created them: the
//! request span's W3C `traceparent` ([`current_traceparent`]) is stored on each new job record,
//! and the job's span takes it as its remote parent ([`job_span`]), on whichever instance and
//! whenever the job runs. Scheduled jobs start a trace of their own: a tick enqueues a job per
//! seller and level (thousands), which as one trace would be too large to read or to keep.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::Layer;

/// The `tracing` target of every span meant for traces (and of nothing else). Defined beside
/// the provider spans, which cannot import this module (it reads provider errors).
pub(crate) use crate::providers::spans::TARGET;

/// How long one export may take before the batch is dropped.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The running exporter. [`Traces::shutdown`] exports what is still buffered; call it once the
/// service has stopped, so the last spans (the shutdown's own jobs) are not lost.
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// Exports the spans still buffered and stops the exporter. Blocks (at most about the export
    /// timeout): call it outside async code, while the runtime given to [`layer`] still runs.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "traces: the last spans could not be exported");
        }
    }
}

/// The exporter posting spans to `url` (`…/v1/traces`) and the layer feeding it, which sees
/// only spans with the target [`TARGET`]. Requests run on `runtime` through the reqwest client
/// the service already has (the batch exporter runs on a thread of its own, outside tokio).
pub(super) fn layer<S>(
    url: &str,
    runtime: tokio::runtime::Handle,
) -> Result<(Traces, impl Layer<S> + Send + Sync), String>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    let client = reqwest::Client::builder()
        .timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| format!("traces: cannot build the HTTP client: {e}"))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(OnRuntime { client, runtime })
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| format!("traces: cannot build the OTLP exporter for {url}: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder_empty()
        .with_service_name("ads-stats")
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            crate::build_info::VERSION,
        ))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("ads-stats");
    // Only the fields the spans set: no thread, source location, target or busy/idle times.
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_filter(Targets::new().with_target(TARGET, tracing::Level::TRACE));
    Ok((Traces { provider }, layer))
}

/// The exporter's HTTP client: reqwest 0.12 (rustls) run as a task on the service's runtime, so
/// the batch exporter's own thread can wait for it without a runtime of its own.
#[derive(Debug)]
struct OnRuntime {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let (status, headers, body) = self
            .runtime
            .spawn(async move {
                let answer = client.execute(request).await?;
                let (status, headers) = (answer.status(), answer.headers().clone());
                let body = answer.bytes().await?;
                Ok::<_, reqwest::Error>((status, headers, body))
            })
            .await??;
        let mut response = Response::builder().status(status).body(body)?;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

/// The W3C `traceparent` of the current span, when traces are on and a span is current: what a
/// job record keeps so that its run continues this trace.
pub fn current_traceparent() -> Option<String> {
    let span = Span::current();
    if span.is_disabled() {
        return None;
    }
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` (not yet entered) the child of the remote span a W3C `traceparent` names. An
/// absent or malformed one leaves the span a root: a bad header never fails a request.
fn continue_remote(span: &Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    let Some(traceparent) = traceparent else {
        return;
    };
    let mut carrier: HashMap<String, String> = HashMap::new();
    carrier.insert("traceparent".into(), traceparent.into());
    if let Some(state) = tracestate {
        carrier.insert("tracestate".into(), state.into());
    }
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// An HTTP request's span (kind server), a child of the caller's `traceparent` when it sent
/// one. Named after the method, then `METHOD route` once [`record_http_response`] knows the
/// route (the OpenTelemetry convention for HTTP server spans).
pub fn http_span(method: &str, traceparent: Option<&str>, tracestate: Option<&str>) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        parent: None,
        "http.request",
        otel.name = %method,
        otel.kind = "server",
        http.request.method = %method,
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    if !span.is_disabled() {
        continue_remote(&span, traceparent, tracestate);
    }
    span
}

/// The route pattern (never the path: ids would make every name unique) and the status; a 5xx
/// marks the span as an error.
pub fn record_http_response(span: &Span, method: &str, route: Option<&str>, status: u16) {
    if span.is_disabled() {
        return;
    }
    if let Some(route) = route {
        // The span started before routing: rename it on the exporter's side.
        span.context()
            .span()
            .update_name(format!("{method} {route}"));
        span.record("http.route", route);
    }
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
}

/// What a job span shows, from its record.
pub struct JobSpan<'a> {
    pub job_id: &'a str,
    pub level: &'a str,
    pub seller_id: &'a str,
    pub attempt: i32,
    pub trigger: &'a str,
    /// The stored `traceparent` of the request that created the job.
    pub trace_parent: Option<&'a str>,
}

/// One attempt of a job: a child of the request that created it when its record keeps a
/// `traceparent`, else the root of its own trace. `job.outcome` is recorded when it ends.
pub fn job_span(job: JobSpan<'_>) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        parent: None,
        "job",
        job.id = job.job_id,
        job.level = job.level,
        job.trigger = job.trigger,
        job.attempt = job.attempt,
        seller.id = job.seller_id,
        job.outcome = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    if !span.is_disabled() {
        continue_remote(&span, job.trace_parent, None);
    }
    span
}

/// Records how the current job attempt ended (`succeeded`, `failed`, …); `failed` marks the span
/// as an error.
pub fn record_job_outcome(outcome: &'static str) {
    let span = Span::current();
    span.record("job.outcome", outcome);
    if outcome == "failed" {
        span.record("otel.status_code", "ERROR");
    }
}

/// One scheduler tick: the root of its own trace.
pub fn tick_span(mark: chrono::DateTime<chrono::Utc>) -> Span {
    tracing::info_span!(target: TARGET, parent: None, "tick", tick.mark = %mark.to_rfc3339())
}

/// A database transaction (kind client), e.g. a job's write transaction.
pub fn transaction_span(backend: &'static str, operation: &'static str) -> Span {
    tracing::info_span!(
        target: TARGET,
        "db.transaction",
        otel.kind = "client",
        db.system.name = backend,
        db.operation.name = operation,
    )
}
