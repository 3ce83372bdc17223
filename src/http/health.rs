//! `GET /health`: 200 when a database round trip succeeds in time, 503 otherwise; never a hang.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;
use crate::db;

/// Load balancers give up after a few seconds; answer before they do.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let version = env!("CARGO_PKG_VERSION");
    // Counting the queue is the database round trip: one checkout, one query.
    let queue = async {
        let mut conn = state.db.conn().await?;
        Ok::<_, db::DbError>(db::jobs::active_counts(&mut conn).await?)
    };
    match tokio::time::timeout(DATABASE_TIMEOUT, queue).await {
        Ok(Ok((queued, running))) => HttpResponse::Ok().json(json!({
            "status": "ok",
            "database": "ok",
            "version": version,
            "backend": state.db.backend_name(),
            "queue": { "queued": queued, "running": running, "capacity": state.queue.capacity() },
            "scheduler": state.scheduler.status(),
        })),
        outcome => {
            let reason = match outcome {
                Ok(Err(e)) => e.to_string(),
                _ => format!("no answer within {}s", DATABASE_TIMEOUT.as_secs()),
            };
            tracing::warn!(reason = %reason, "health check failed");
            HttpResponse::ServiceUnavailable().json(json!({
                "status": "unavailable",
                "database": reason,
                "version": version,
            }))
        }
    }
}
