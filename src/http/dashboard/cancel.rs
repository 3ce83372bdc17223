//! `POST /dashboard/jobs/{record_id}/cancel`: a QUEUED job becomes CANCELLED and never runs
//! (CSRF-checked), then back to the job's page, which says what happened. A job a worker claimed
//! between the page and the click is left running: the cancel is one UPDATE guarded on QUEUED.

use actix_web::{web, HttpRequest, HttpResponse};

use super::layout::{job_href, see_other};
use super::{signed_in_post, CsrfForm};
use crate::db::{self, job_actions::Cancel};
use crate::http::{ApiError, AppState};

pub async fn cancel_job(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    csrf: Option<web::Form<CsrfForm>>,
) -> Result<HttpResponse, ApiError> {
    signed_in_post(&state, &req, csrf.as_deref())?;
    let record_id: i64 = path
        .parse()
        .map_err(|_| ApiError::NotFound("no such job".into()))?;
    let db = state.db.clone();
    let outcome = state
        .on_main_runtime(async move {
            let mut conn = db.conn().await?;
            Ok(db::job_actions::cancel_queued(&mut conn, record_id, db::now_utc()).await?)
        })
        .await?;
    let outcome = match outcome {
        Cancel::Cancelled(record) => {
            tracing::info!(job.record = record.id, job.id = %record.job_id, "queued job cancelled from the dashboard");
            "cancelled"
        }
        Cancel::NotQueued(_) => "not_queued",
        Cancel::NotFound => "not_found",
    };
    Ok(see_other(&format!(
        "{}?action=cancel&outcome={outcome}",
        job_href(record_id)
    )))
}
