//! `POST /api/ads-manager/sync`: enqueue a sync of the caller's stats for one day.

use actix_web::{web, HttpResponse};
use chrono::{Months, NaiveDate, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::db;
use crate::domain::{parse_day, Level};
use crate::http::auth::AuthenticatedSeller;
use crate::http::{ApiError, AppState};
use crate::jobs::Trigger;
use crate::pipeline::SyncRequest;

/// How far back a manual sync may reach; providers keep about three years.
const MAX_MONTHS_BACK: u32 = 37;

/// The optional body: which day to sync (default: today in `scheduler.timezone`).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerBody {
    /// YYYY-MM-DD, no later than tomorrow and at most 37 months back.
    #[schema(example = "2026-11-27")]
    date: Option<String>,
}

/// The jobs queued (or already active) for the request: CAMPAIGN, ADSET and AD.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncAccepted {
    pub job_ids: Vec<String>,
}

/// Queues a sync of the caller's stats for one day at all three levels.
#[utoipa::path(
    post,
    path = "/api/ads-manager/sync",
    tag = "sync",
    request_body(content = Option<TriggerBody>, description = "Optional; an empty body means today"),
    responses(
        (status = 202, description = "Queued, or the same jobs are still active", body = SyncAccepted),
        (status = 400, description = "`invalid_body`, `invalid_date` or `date_out_of_range`", body = crate::http::ErrorBody),
        (status = 401, description = "`unauthorized`", body = crate::http::ErrorBody),
        (status = 403, description = "`forbidden`: the seller does not exist or is suspended", body = crate::http::ErrorBody),
        (status = 408, description = "`request_timeout`: the body did not arrive in time", body = crate::http::ErrorBody),
        (status = 413, description = "`payload_too_large`", body = crate::http::ErrorBody),
        (status = 422, description = "`nothing_to_sync`", body = crate::http::ErrorBody),
        (status = 429, description = "`rate_limited` (see `Retry-After`)", body = crate::http::ErrorBody),
        (status = 503, description = "`queue_full`, `database_busy` or `database_unavailable` (see `Retry-After`)", body = crate::http::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn trigger_sync(
    state: web::Data<AppState>,
    AuthenticatedSeller(seller_id): AuthenticatedSeller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    if let Some(limiter) = &state.sync_limiter {
        limiter.check(&seller_id).map_err(|wait| {
            // Debug, not info: a client hammering the endpoint must not flood the log.
            tracing::debug!(seller.id = %seller_id, "manual sync rate limited");
            ApiError::RateLimited {
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            }
        })?;
    }
    let body = tokio::time::timeout(state.body_timeout, read_body(payload, state.max_body_bytes))
        .await
        .map_err(|_| ApiError::RequestTimeout)??;
    let today = state.scheduler.today(Utc::now());
    let date = match body.date {
        Some(text) => validate_date(&text, today)?,
        None => today,
    };
    let (db, queue, seller) = (state.db.clone(), state.queue.clone(), seller_id.clone());
    let enqueued = state
        .on_main_runtime(async move {
            check_seller(&db, &seller).await?;
            let requests =
                Level::ALL.map(|level| SyncRequest::one_day(seller.clone(), level, date));
            Ok(queue.enqueue(&requests, Trigger::Manual).await?)
        })
        .await?;
    let job_ids: Vec<&str> = enqueued.iter().map(|e| e.record.job_id.as_str()).collect();
    let created = enqueued.iter().filter(|e| e.created).count();
    tracing::info!(seller.id = %seller_id, date = %date, jobs_created = created, "manual sync accepted");
    Ok(HttpResponse::Accepted().json(SyncAccepted {
        job_ids: job_ids.into_iter().map(str::to_string).collect(),
    }))
}

/// The seller exists, is active, and has something to sync.
async fn check_seller(db: &db::Db, seller_id: &str) -> Result<(), ApiError> {
    let mut conn = db.conn().await?;
    match db::catalog::seller_status(&mut conn, seller_id).await? {
        None => {
            return Err(ApiError::Forbidden(
                "the token's seller does not exist".into(),
            ))
        }
        Some(status) if status != "ACTIVE" => {
            return Err(ApiError::Forbidden(format!(
                "the token's seller is {status}"
            )))
        }
        Some(_) => {}
    }
    if !db::catalog::is_eligible(&mut conn, seller_id).await? {
        return Err(ApiError::NothingToSync(
            "the seller has no active ad connection with a delivering campaign".into(),
        ));
    }
    Ok(())
}

/// Reads at most `limit` bytes; an empty body means "today".
async fn read_body(mut payload: web::Payload, limit: usize) -> Result<TriggerBody, ApiError> {
    let mut bytes = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))?;
        if bytes.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        bytes.extend_from_slice(&chunk);
    }
    // No body, or JSON `null`, means "today".
    if bytes.iter().all(u8::is_ascii_whitespace) || bytes.trim_ascii() == b"null" {
        return Ok(TriggerBody::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            format!("the body must be JSON like {{\"date\":\"YYYY-MM-DD\"}} ({e})"),
        )
    })
}

/// A calendar date written `YYYY-MM-DD`, no later than tomorrow (time-zone slack) and no more
/// than 37 months before `today`.
pub fn validate_date(text: &str, today: NaiveDate) -> Result<NaiveDate, ApiError> {
    let date = parse_day(text).map_err(|why| ApiError::bad_request("invalid_date", why))?;
    let latest = today.succ_opt().unwrap_or(today);
    if date > latest {
        return Err(ApiError::bad_request(
            "date_out_of_range",
            format!("{text} is in the future (latest allowed: {latest})"),
        ));
    }
    let earliest = today
        .checked_sub_months(Months::new(MAX_MONTHS_BACK))
        .unwrap_or(NaiveDate::MIN);
    if date < earliest {
        return Err(ApiError::bad_request(
            "date_out_of_range",
            format!(
                "{text} is more than {MAX_MONTHS_BACK} months back (earliest allowed: {earliest})"
            ),
        ));
    }
    Ok(date)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
    }

    fn code(r: Result<NaiveDate, ApiError>) -> &'static str {
        match r {
            Err(ApiError::BadRequest { code, .. }) => code,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn accepts_today_tomorrow_and_37_months_back() {
        assert_eq!(validate_date("2026-11-28", today()).unwrap(), today());
        assert!(validate_date("2026-11-29", today()).is_ok());
        assert!(validate_date("2023-10-28", today()).is_ok());
    }

    #[test]
    fn rejects_bad_shapes_impossible_days_and_out_of_range() {
        assert_eq!(code(validate_date("2026-1-05", today())), "invalid_date");
        assert_eq!(code(validate_date("28/11/2026", today())), "invalid_date");
        assert_eq!(code(validate_date("2026-02-30", today())), "invalid_date");
        assert_eq!(
            code(validate_date("2026-11-30", today())),
            "date_out_of_range"
        );
        assert_eq!(
            code(validate_date("2023-10-27", today())),
            "date_out_of_range"
        );
    }
}
