//! `GET /api/ads-manager/sync/{jobId}`: the latest run of a job of the caller's.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::db;
use crate::http::auth::AuthenticatedSeller;
use crate::http::{ApiError, AppState};

pub async fn sync_status(
    state: web::Data<AppState>,
    AuthenticatedSeller(seller_id): AuthenticatedSeller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job_id = path.into_inner();
    // Job ids never hold control characters, and PostgreSQL text cannot hold a NUL at all.
    if job_id.chars().any(char::is_control) {
        return Err(ApiError::NotFound(format!(
            "no job {job_id:?} for this seller"
        )));
    }
    let (db, id) = (state.db.clone(), job_id.clone());
    let record = state
        .on_main_runtime(async move {
            let mut conn = db.conn().await?;
            Ok(db::jobs::latest(&mut conn, &id).await?)
        })
        .await?;
    // Another seller's job is answered exactly like a missing one: ids leak nothing.
    let record = record
        .filter(|r| r.seller_id == seller_id)
        .ok_or_else(|| ApiError::NotFound(format!("no job {job_id} for this seller")))?;
    let utc = |t: Option<chrono::NaiveDateTime>| t.map(|t| t.and_utc());
    Ok(HttpResponse::Ok().json(json!({
        "jobId": record.job_id,
        "sellerId": record.seller_id,
        "level": record.level,
        "dateFrom": record.date_from,
        "dateTo": record.date_to,
        "trigger": record.triggered_by,
        "status": record.status,
        "attempts": record.attempts,
        "maxAttempts": record.max_attempts,
        "lastError": record.last_error,
        "createdAt": record.created_at.and_utc(),
        "runAt": record.run_at.and_utc(),
        "startedAt": utc(record.started_at),
        "finishedAt": utc(record.finished_at),
        "rowsWritten": {
            "entities": record.entities,
            "raw": record.raw_rows,
            "daily": record.daily_rows,
            "sellpage": record.sellpage_rows,
        },
    })))
}
