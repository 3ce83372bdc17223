//! `GET /dashboard/jobs/{record_id}`: one job record: what it syncs, its attempts, timings, rows
//! written, the instance that ran it and its error, the other runs of the same job id, and the
//! action its state allows (Retry when FAILED, Cancel when QUEUED). Two queries.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{html_response, job_actions, job_table, page, relative, seller_href, time};
use super::{signed_in, to_login};
use crate::db::{self, models::JobRecord};
use crate::http::{ApiError, AppState};

/// Other runs of the job id shown; a scheduled job id repeats every tick of the day.
const RUNS_SHOWN: i64 = 20;

/// After an action the page says what happened (`?action=retry|cancel&outcome=…`); fixed texts.
#[derive(Deserialize)]
pub struct Notice {
    action: Option<String>,
    outcome: Option<String>,
}

pub async fn job_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    notice: Option<web::Query<Notice>>,
) -> Result<HttpResponse, ApiError> {
    let Some(session) = signed_in(&state, &req)? else {
        return Ok(to_login());
    };
    let record_id = path.parse::<i64>().ok();
    let db = state.db.clone();
    let found = match record_id {
        None => None,
        Some(record_id) => {
            state
                .on_main_runtime(async move {
                    let mut conn = db.conn().await?;
                    let Some(record) = db::jobs::get(&mut conn, record_id).await? else {
                        return Ok(None);
                    };
                    let runs =
                        db::dashboard_jobs::runs_of(&mut conn, &record.job_id, RUNS_SHOWN).await?;
                    Ok(Some((record, runs)))
                })
                .await?
        }
    };
    let notice = notice.and_then(|n| notice_text(&n));
    let Some((job, runs)) = found else {
        let body = html! {
            h1 { "No such job" }
            @if let Some(text) = notice { p.notice role="status" { (text) } }
            p { "Finished records are deleted after jobs.retention. " a href="/dashboard/jobs" { "All jobs" } }
        };
        return Ok(html_response(
            StatusCode::NOT_FOUND,
            page("No such job", Some(&session), body),
        ));
    };
    let body = html! {
        h1 { "Job #" (job.id) " " span class={ "status status-" (job.status.to_lowercase()) } { (job.status) } }
        @if let Some(text) = notice { p.notice role="status" { (text) } }
        div.actions #job-actions { (job_actions(&job, &session.csrf, Some("job"))) }
        section.cards {
            div.card #what {
                h3 { "What" }
                dl {
                    dt { "job id" } dd.id { (job.job_id) }
                    dt { "seller" } dd { a href=(seller_href(&job.seller_id)) { (job.seller_id) } }
                    dt { "level" } dd { (job.level) }
                    dt { "dates" } dd { (job.date_from) @if job.date_to != job.date_from { " → " (job.date_to) } }
                    dt { "trigger" } dd { (job.triggered_by) }
                    dt { "priority class" } dd { (job.priority) }
                }
            }
            div.card #attempts {
                h3 { "Attempts" }
                dl {
                    dt { "attempts" } dd.attempts { (job.attempts) " of " (job.max_attempts) }
                    dt { "instance" } dd.instance.id {
                        @match &job.locked_by { Some(i) => (i), None => span.muted { "—" } }
                    }
                    dt { "error" } dd.error {
                        @match &job.last_error { Some(e) => (e), None => span.muted { "none" } }
                    }
                }
            }
            div.card #timings { h3 { "Timings (UTC)" } (timings(&job)) }
            div.card #rows {
                h3 { "Rows written" }
                dl {
                    dt { "entities" } dd.num { (count(job.entities)) }
                    dt { "raw" } dd.num.raw { (count(job.raw_rows)) }
                    dt { "daily" } dd.num { (count(job.daily_rows)) }
                    dt { "sellpage" } dd.num { (count(job.sellpage_rows)) }
                }
            }
        }
        h2 { "Runs of this job id" }
        p.muted { "The newest " (RUNS_SHOWN) " records with job id " (job.job_id) "." }
        (job_table(&runs, None, "job-runs"))
    };
    Ok(html_response(
        StatusCode::OK,
        page(&format!("Job #{}", job.id), Some(&session), body),
    ))
}

fn timings(job: &JobRecord) -> Markup {
    let now = db::now_utc();
    let took = job
        .started_at
        .zip(job.finished_at)
        .map(|(s, f)| (f - s).num_milliseconds());
    html! {
        dl {
            dt { "queued" } dd { (time(Some(job.created_at))) }
            dt { "due" }
            dd {
                @if job.status == db::jobs::CANCELLED {
                    span.muted { "never: cancelled" }
                } @else {
                    (time(Some(job.run_at))) " " span.muted { "(" (relative(job.run_at, now)) ")" }
                }
            }
            dt { "started" } dd { (time(job.started_at)) }
            dt { "heartbeat" } dd { (time(job.heartbeat_at)) }
            dt { "finished" } dd { (time(job.finished_at)) }
            dt { "last attempt took" } dd.took {
                @match took { Some(ms) => (format!("{ms} ms")), None => span.muted { "—" } }
            }
            dt { "updated" } dd { (time(Some(job.updated_at))) }
        }
    }
}

fn count(n: Option<i64>) -> Markup {
    match n {
        Some(n) => html! { (n) },
        None => html! { span.muted { "—" } },
    }
}

fn notice_text(notice: &Notice) -> Option<&'static str> {
    Some(
        match (notice.action.as_deref()?, notice.outcome.as_deref()?) {
            ("retry", "requeued") => "Queued again.",
            ("retry", "active") => "Not retried: the same job is already queued or running.",
            ("retry", "not_failed") => "Not retried: it is no longer failed.",
            ("cancel", "cancelled") => {
                "Cancelled: it will not run. The same job can be queued again."
            }
            ("cancel", "not_queued") => {
                "Not cancelled: it is no longer queued (a worker took it, or it finished)."
            }
            (_, "not_found") => "This job no longer exists.",
            _ => return None,
        },
    )
}
