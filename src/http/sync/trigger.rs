//! `POST /api/ads-manager/sync`: enqueue a sync of the caller's stats for one day.
//!
//! Without a date, "today" is the local date of each of the seller's ACTIVE ad connections: a
//! seller whose connections sit in zones on different dates gets one job set per distinct date.

use actix_web::{web, HttpResponse};
use chrono::{Months, NaiveDate, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::db;
use crate::domain::{parse_day, Level};
use crate::http::seller_gate::ActiveSeller;
use crate::http::{ApiError, AppState};
use crate::jobs::scheduler::local_todays;
use crate::jobs::{EnqueueError, Priority, Trigger};
use crate::pipeline::SyncRequest;

/// How far back a manual sync may reach; providers keep about three years.
const MAX_MONTHS_BACK: u32 = 37;

/// The optional body: which day to sync (default: today in the seller's ad connections' zones).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerBody {
    /// YYYY-MM-DD, no later than tomorrow and at most 37 months back.
    #[schema(example = "2026-11-27")]
    date: Option<String>,
}

/// The jobs queued (or already active) for the request: CAMPAIGN, ADSET and AD, for each date
/// synced (one date, unless the seller's connections are on different local dates).
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
    request_body(content = Option<TriggerBody>, description = "Optional; an empty body means today in each of the seller's ad connections' time zones"),
    responses(
        (status = 202, description = "Queued, or the same jobs are still active", body = SyncAccepted),
        (status = 400, description = "`invalid_body`, `invalid_date` or `date_out_of_range`", body = crate::http::ErrorBody),
        (status = 401, description = "`unauthorized`", body = crate::http::ErrorBody),
        (status = 403, description = "`forbidden`: the seller does not exist or is suspended", body = crate::http::ErrorBody),
        (status = 408, description = "`request_timeout`: the body did not arrive in time", body = crate::http::ErrorBody),
        (status = 413, description = "`payload_too_large`", body = crate::http::ErrorBody),
        (status = 422, description = "`nothing_to_sync`", body = crate::http::ErrorBody),
        (status = 429, description = "`rate_limited`: over `rate_limit.manual_syncs_per_minute`; or `too_many_active_jobs`: the seller's manual jobs queued or running would pass `jobs.max_active_per_seller`, and nothing was recorded", body = crate::http::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "`queue_full`, `database_busy` or `database_unavailable` (see `Retry-After`)", body = crate::http::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn trigger_sync(
    state: web::Data<AppState>,
    ActiveSeller(seller_id): ActiveSeller,
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
    // The shape is checked before any database work; the range needs the seller's zones.
    if let Some(text) = &body.date {
        parse_day(text).map_err(|why| ApiError::bad_request("invalid_date", why))?;
    }
    let now = Utc::now();
    let (db, queue, seller) = (state.db.clone(), state.queue.clone(), seller_id.clone());
    let (enqueued, dates) = state
        .on_main_runtime(async move {
            // One statement for the reads; the enqueue takes a connection for its transaction.
            let facts = {
                let mut conn = db.conn().await?;
                db::catalog::seller_for_sync(&mut conn, &seller).await?
            };
            let todays = local_todays(now, &facts.timezones, &seller);
            let dates = match &body.date {
                // Up to tomorrow in the seller's easternmost zone.
                Some(text) => {
                    let latest = todays.last().copied().unwrap_or(now.date_naive());
                    vec![validate_date(text, latest)?]
                }
                None => todays.clone(),
            };
            check_seller(&facts)?;
            // One class for the request: its dates are the local todays, or the one date asked.
            let latest = dates.iter().max().copied().unwrap_or(now.date_naive());
            let priority = Priority::of_manual_sync(latest, &todays);
            let requests: Vec<SyncRequest> = dates
                .iter()
                .flat_map(|date| {
                    Level::ALL.map(|level| SyncRequest::one_day(seller.clone(), level, *date))
                })
                .collect();
            let enqueued = queue
                .enqueue_as(&requests, Trigger::Manual, priority)
                .await
                .inspect_err(|e| {
                    if let EnqueueError::TooManyActiveJobs { active, .. } = e {
                        // Debug, like the rate limit: a client retrying in a loop must not
                        // flood the log.
                        tracing::debug!(
                            seller.id = %seller, active,
                            "manual sync refused: too many active jobs"
                        );
                    }
                })?;
            Ok((enqueued, dates))
        })
        .await?;
    let job_ids: Vec<&str> = enqueued.iter().map(|e| e.record.job_id.as_str()).collect();
    let created = enqueued.iter().filter(|e| e.created).count();
    let dates: Vec<String> = dates.iter().map(NaiveDate::to_string).collect();
    tracing::info!(seller.id = %seller_id, date = %dates.join(","), jobs_created = created, "manual sync accepted");
    Ok(HttpResponse::Accepted().json(SyncAccepted {
        job_ids: job_ids.into_iter().map(str::to_string).collect(),
    }))
}

/// The seller exists, is active, and has something to sync.
fn check_seller(seller: &db::catalog::SellerForSync) -> Result<(), ApiError> {
    match &seller.status {
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
    if !seller.eligible {
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
    // No body, or JSON `null`, means "today". Whitespace alone is neither: it is not JSON.
    if bytes.is_empty() || bytes.trim_ascii() == b"null" {
        return Ok(TriggerBody::default());
    }
    // Only an object: serde's derive would also read the struct from an array of its fields
    // (`[null]`, `["2026-11-28"]`), which the API does not document.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the body must be JSON like {\"date\":\"YYYY-MM-DD\"}",
        ));
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

    #[test]
    fn todays_are_the_distinct_local_dates_of_the_zones() {
        use chrono::TimeZone;
        // 11:30 UTC on 28 November: 29 November in Auckland (UTC+13), 28th in Los Angeles
        // (UTC-8) and London; a zone nobody knows counts as UTC.
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 11, 30, 0).unwrap();
        let zones = [
            "Pacific/Auckland".to_string(),
            "America/Los_Angeles".to_string(),
            "Europe/London".to_string(),
            "Mars/Olympus_Mons".to_string(),
        ];
        let d = |day| NaiveDate::from_ymd_opt(2026, 11, day).unwrap();
        assert_eq!(local_todays(now, &zones, "s"), vec![d(28), d(29)]);
        assert_eq!(local_todays(now, &[], "s"), vec![d(28)]);
        let late = Utc.with_ymd_and_hms(2026, 11, 29, 5, 0, 0).unwrap();
        assert_eq!(
            local_todays(late, &zones[1..2], "s"),
            vec![d(28)],
            "21:00 on the 28th in Los Angeles"
        );
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
