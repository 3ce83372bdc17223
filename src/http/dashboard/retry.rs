//! `POST /dashboard/jobs/{record_id}/retry`: a FAILED job runs again (CSRF-checked), then back to
//! the overview (or, with `back=job`, the job's page), which says what happened.

use actix_web::{web, HttpRequest, HttpResponse};

use super::layout::{job_href, see_other};
use super::{signed_in_post, CsrfForm};
use crate::db::jobs::Requeue;
use crate::http::{ApiError, AppState};

pub async fn retry_job(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    csrf: Option<web::Form<CsrfForm>>,
) -> Result<HttpResponse, ApiError> {
    signed_in_post(&state, &req, csrf.as_deref())?;
    let to_job_page = csrf.as_ref().and_then(|f| f.back.as_deref()) == Some("job");
    let record_id: i64 = path
        .parse()
        .map_err(|_| ApiError::NotFound("no such job".into()))?;
    let queue = state.queue.clone();
    let outcome = state
        .on_main_runtime(async move { Ok(queue.retry_failed(record_id).await?) })
        .await?;
    let outcome = match outcome {
        Requeue::Requeued(record) => {
            tracing::info!(job.record = record.id, job.id = %record.job_id, "failed job queued again from the dashboard");
            "requeued"
        }
        Requeue::AlreadyActive(_) => "active",
        Requeue::NotFailed(_) => "not_failed",
        Requeue::NotFound => "not_found",
    };
    if to_job_page {
        return Ok(see_other(&format!(
            "{}?action=retry&outcome={outcome}",
            job_href(record_id)
        )));
    }
    Ok(see_other(&format!(
        "/dashboard?retried={record_id}&outcome={outcome}"
    )))
}
