//! The `provider.request` spans of traces (see `telemetry::traces`): one per provider request.
//! Here rather than in `telemetry`, which reads provider errors, so the import goes one way.

use tracing::Span;

/// The target of every span meant for traces (`telemetry::traces` re-exports it): only spans with
/// it are exported, and log lines never show them.
pub(crate) const TARGET: &str = "ads_stats::trace";

/// One fetch from a provider that makes no HTTP request of its own (the mock).
pub(crate) fn fetch_span(provider: &'static str) -> Span {
    tracing::info_span!(
        target: TARGET,
        "provider.request",
        otel.kind = "client",
        provider.name = provider,
    )
}

/// One request to a stats provider (kind client). `path` never carries a query (tokens and
/// proofs travel there or in headers); the status is recorded with [`record_status`].
pub(crate) fn request_span(provider: &'static str, method: &str, path: &str) -> Span {
    tracing::info_span!(
        target: TARGET,
        "provider.request",
        otel.kind = "client",
        provider.name = provider,
        http.request.method = %method,
        url.path = %path,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    )
}

/// The provider's HTTP status on the current provider span; no answer or an error status marks
/// the span as an error.
pub(crate) fn record_status(span: &Span, status: Option<u16>) {
    match status {
        Some(status) => {
            span.record("http.response.status_code", status);
            if status >= 400 {
                span.record("otel.status_code", "ERROR");
            }
        }
        None => {
            span.record("otel.status_code", "ERROR");
        }
    }
}
