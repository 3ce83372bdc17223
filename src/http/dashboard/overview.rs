//! `GET /dashboard`: the scheduler, the queue, every FAILED job with a Retry button, and the
//! latest jobs. Three queries, whatever the number of jobs or sellers.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::html;
use serde::Deserialize;

use super::layout::{html_response, job_table, page, relative, time};
use super::{signed_in, to_login};
use crate::db::{self, jobs::StatusCounts, models::JobRecord};
use crate::http::{ApiError, AppState};

/// The newest records shown; the job status API has the rest.
const LATEST: i64 = 25;
/// FAILED records shown. Retention prunes them after `jobs.retention`; the cap only keeps a
/// pathological day (a provider down for hours) from making a page of megabytes.
const FAILED_SHOWN: i64 = 500;

/// After a Retry the page says what happened (`?retried=ID&outcome=…`); fixed texts only.
#[derive(Deserialize)]
pub struct Notice {
    retried: Option<i64>,
    outcome: Option<String>,
}

struct Data {
    counts: StatusCounts,
    failed: Vec<JobRecord>,
    latest: Vec<JobRecord>,
}

pub async fn overview(
    state: web::Data<AppState>,
    req: HttpRequest,
    notice: Option<web::Query<Notice>>,
) -> Result<HttpResponse, ApiError> {
    let Some(session) = signed_in(&state, &req)? else {
        return Ok(to_login());
    };
    let db = state.db.clone();
    let data = state
        .on_main_runtime(async move {
            let mut conn = db.conn().await?;
            Ok(Data {
                counts: db::jobs::status_counts(&mut conn).await?,
                failed: db::jobs::failed(&mut conn, FAILED_SHOWN).await?,
                latest: db::jobs::newest(&mut conn, LATEST).await?,
            })
        })
        .await?;
    let scheduler = state.scheduler.status();
    let tasks = state.tasks.snapshot();
    let now = db::now_utc();
    let naive = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.naive_utc());
    let notice = notice.and_then(|n| notice_text(&n));

    let body = html! {
        h1 { "Overview" }
        @if let Some(text) = notice { p.notice role="status" { (text) } }
        section.cards {
            div.card #scheduler {
                h3 { "Scheduler" }
                dl {
                    dt { "state" }
                    dd { @if scheduler.enabled { "enabled" } @else { "disabled" } }
                    dt { "last tick" }
                    dd {
                        (time(naive(scheduler.last_tick)))
                        @if let Some(t) = scheduler.last_tick { " " span.muted { "(" (relative(t.naive_utc(), now)) ")" } }
                    }
                    dt { "last tick took" }
                    dd {
                        @match scheduler.last_tick_duration {
                            Some(d) => { (format!("{} ms", d.as_millis())) },
                            None => span.muted { "no tick yet" },
                        }
                    }
                    dt { "next tick" }
                    dd {
                        (time(naive(scheduler.next_tick)))
                        @if let Some(t) = scheduler.next_tick { " " span.muted { "(" (relative(t.naive_utc(), now)) ")" } }
                    }
                }
            }
            div.card #queue {
                h3 { "Queue" }
                dl {
                    dt { "queued" } dd.queued { (data.counts.queued) " of " (state.queue.capacity()) }
                    dt { "running" } dd.running { (data.counts.running) }
                    dt { "failed" } dd.failed { (data.counts.failed) }
                }
            }
            div.card #tasks {
                h3 { "Background tasks" }
                dl {
                    @for (name, task) in &tasks { dt { (name) } dd { (task.as_str()) } }
                }
            }
            div.card {
                h3 { "Database" }
                div.big { (state.db.backend_name()) }
                p.muted { "times in UTC" }
            }
        }
        h2 { "Failed jobs (" (data.counts.failed) ")" }
        @if data.counts.failed > FAILED_SHOWN { p.muted { "The " (FAILED_SHOWN) " most recent are shown." } }
        (job_table(&data.failed, Some(&session.csrf), "failed-jobs"))
        h2 { "Latest jobs" }
        (job_table(&data.latest, Some(&session.csrf), "latest-jobs"))
    };
    Ok(html_response(
        StatusCode::OK,
        page("Overview", Some(&session), body),
    ))
}

fn notice_text(notice: &Notice) -> Option<String> {
    let id = notice.retried?;
    let text = match notice.outcome.as_deref()? {
        "requeued" => format!("Job #{id} is queued again."),
        "active" => {
            format!("Job #{id} was not retried: the same job is already queued or running.")
        }
        "not_failed" => format!("Job #{id} was not retried: it is no longer failed."),
        "not_found" => format!("Job #{id} no longer exists."),
        _ => return None,
    };
    Some(text)
}
