//! `GET /metrics`: Prometheus metrics in the text exposition format (OpenMetrics when the scraper
//! asks for it). Registered only when `metrics.enabled`; behind `metrics.bearer_token` when set.
//!
//! A scrape costs at most one probe's few small queries: the queue counts, the connections, the
//! stats' freshness and the schedule come through the `/health` probe, which runs one probe at a
//! time and shares each result for a second (the connection and schedule facts for 5 s); the pool
//! state is read from memory.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use super::bearer::bearer_token;
use super::{ApiError, AppState};
use crate::telemetry::metrics::{Format, PoolGauges};
use crate::telemetry::OpsGauges;

/// Prometheus metrics (text exposition format; OpenMetrics when asked for).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "The metrics", content_type = "text/plain", body = String),
        (status = 401, description = "`unauthorized`: `metrics.bearer_token` is set and was not sent", body = crate::http::ErrorBody),
    ),
    security((), ("metrics_token" = []))
)]
pub async fn metrics(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let expected = state.metrics_token.expose();
    if !expected.is_empty() {
        let sent = bearer_token(&req).map_err(|why| {
            tracing::debug!(reason = why, "scrape refused: no usable bearer token");
            ApiError::Unauthorized
        })?;
        if !same_token(sent, expected) {
            tracing::debug!("scrape refused: wrong bearer token");
            return Err(ApiError::Unauthorized);
        }
    }
    let counts = state.health_probe.scrape_counts().await;
    state.metrics.set_queue(
        counts
            .as_ref()
            .map(|(queued, running, _)| (*queued, *running)),
    );
    let ops = counts.map(|(_, _, ops)| OpsGauges {
        connections: ops.connections.clone(),
        paused: ops.paused,
        freshness_seconds: ops.freshness_seconds(),
        schedule_behind: ops.schedule_behind(),
    });
    state.metrics.set_ops(ops.as_ref());
    let pool = state.db.pool_stats();
    state.metrics.set_pool(PoolGauges {
        size: pool.size,
        available: pool.available,
        waiting: pool.waiting,
        max_size: pool.max_size,
    });
    let format = negotiate(&req);
    let body = state
        .metrics
        .encode(format)
        .map_err(|e| ApiError::Internal(format!("cannot encode metrics: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .body(body))
}

/// OpenMetrics only for a scraper that names it (Prometheus does, first); everyone else, curl
/// included, gets the classic text format.
fn negotiate(req: &HttpRequest) -> Format {
    let asks_openmetrics = req
        .headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    if asks_openmetrics {
        Format::OpenMetrics
    } else {
        Format::Prometheus
    }
}

/// Compares digests rather than the tokens, byte by byte without stopping early, so the time an
/// answer takes tells a guesser nothing about how much of a token was right.
fn same_token(sent: &str, expected: &str) -> bool {
    let (a, b) = (
        Sha256::digest(sent.as_bytes()),
        Sha256::digest(expected.as_bytes()),
    );
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::same_token;

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(same_token("0123456789abcdef", "0123456789abcdef"));
        assert!(!same_token("0123456789abcdeF", "0123456789abcdef"));
        assert!(!same_token("0123456789abcde", "0123456789abcdef"));
        assert!(!same_token("", "0123456789abcdef"));
    }
}
