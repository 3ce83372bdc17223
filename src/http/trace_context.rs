//! The W3C trace context (`traceparent`, `tracestate`) an incoming request carries: its span
//! continues the caller's trace. A standard header, not an API field: the OpenAPI document does
//! not list it. Without `telemetry.otlp_endpoint` the span is off and the headers are not read.

use actix_web::dev::ServiceRequest;
use tracing::Span;

use crate::telemetry::traces;

/// The span of one request on any route: a child of the caller's span when it sent a valid
/// `traceparent`, else the root of a new trace.
pub fn request_span(req: &ServiceRequest) -> Span {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    traces::http_span(
        req.method().as_str(),
        header("traceparent"),
        header("tracestate"),
    )
}
