//! `GET /api/ads-manager/sync/{jobId}`: the latest run of a job of the caller's.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::db;
use crate::http::seller_gate::ActiveSeller;
use crate::http::{ApiError, AppState};

/// The latest run of a job of the caller's; another seller's job is answered like a missing one.
#[utoipa::path(
    get,
    path = "/api/ads-manager/sync/{job_id}",
    tag = "sync",
    params(("job_id" = String, Path, description = "A job id as POST /api/ads-manager/sync returned it")),
    responses(
        (status = 200, description = "The job's latest run", body = JobStatus),
        (status = 401, description = "`unauthorized`", body = crate::http::ErrorBody),
        (status = 403, description = "`forbidden`: the seller does not exist or is suspended", body = crate::http::ErrorBody),
        (status = 404, description = "`not_found`: no such job for this seller", body = crate::http::ErrorBody),
        (status = 503, description = "`database_busy` or `database_unavailable`", body = crate::http::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn sync_status(
    state: web::Data<AppState>,
    ActiveSeller(seller_id): ActiveSeller,
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
    Ok(HttpResponse::Ok().json(JobStatus {
        job_id: record.job_id,
        seller_id: record.seller_id,
        level: record.level,
        date_from: record.date_from,
        date_to: record.date_to,
        trigger: record.triggered_by,
        status: record.status,
        attempts: record.attempts,
        max_attempts: record.max_attempts,
        last_error: record.last_error,
        created_at: record.created_at.and_utc(),
        run_at: record.run_at.and_utc(),
        started_at: utc(record.started_at),
        finished_at: utc(record.finished_at),
        instance: record.locked_by,
        rows_written: RowsWritten {
            entities: record.entities,
            raw: record.raw_rows,
            daily: record.daily_rows,
            sellpage: record.sellpage_rows,
        },
    }))
}

/// The latest run of a job.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    #[schema(example = "sync__s1__2026-11-28__2026-11-28__CAMPAIGN")]
    pub job_id: String,
    pub seller_id: String,
    #[schema(example = "CAMPAIGN")]
    pub level: String,
    #[schema(value_type = String, format = Date)]
    pub date_from: NaiveDate,
    #[schema(value_type = String, format = Date)]
    pub date_to: NaiveDate,
    /// SCHEDULE or MANUAL.
    pub trigger: String,
    /// QUEUED, RUNNING, SUCCEEDED or FAILED.
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    /// A fixed description of the last failure; the details are in the service log.
    pub last_error: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[schema(value_type = String, format = DateTime)]
    pub run_at: DateTime<Utc>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<DateTime<Utc>>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<DateTime<Utc>>,
    /// The instance running the job (RUNNING) or that ran its last attempt (SUCCEEDED, FAILED);
    /// null while QUEUED. Each start of the service is a new instance.
    #[schema(example = "ads-stats-3f9c0e6a8b1d4e2f9a7c5b3d1e0f2a4c")]
    pub instance: Option<String>,
    pub rows_written: RowsWritten,
}

/// Rows the successful run wrote (null until one succeeds).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RowsWritten {
    pub entities: Option<i64>,
    pub raw: Option<i64>,
    pub daily: Option<i64>,
    pub sellpage: Option<i64>,
}
