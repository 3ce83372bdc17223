//! `GET /dashboard/jobs`: job records searched by seller, status, level, trigger and the UTC days
//! they were queued on, newest first, in keyset pages: `before` is the last id of the previous
//! page, so records queued meanwhile never shift the page being read. One query a page.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDate;
use maud::html;
use serde::Deserialize;

use super::layout::{html_response, job_table, page, percent_encode};
use super::{signed_in, to_login};
use crate::db::{self, dashboard_jobs::JobFilter};
use crate::http::{ApiError, AppState};

/// Job statuses the filter offers; every status a record can have.
pub const STATUSES: [&str; 5] = [
    db::jobs::QUEUED,
    db::jobs::RUNNING,
    db::jobs::SUCCEEDED,
    db::jobs::FAILED,
    db::jobs::CANCELLED,
];
const LEVELS: [&str; 3] = ["CAMPAIGN", "ADSET", "AD"];
const TRIGGERS: [&str; 2] = ["SCHEDULE", "MANUAL"];
/// Rows a page shows unless `limit` says otherwise (at most [`MAX_LIMIT`]).
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

/// The form's fields as typed: an empty field means "any".
#[derive(Debug, Default, Deserialize)]
pub struct Search {
    seller: Option<String>,
    status: Option<String>,
    level: Option<String>,
    trigger: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

/// A valid search, or the first field that is not.
struct Parsed {
    filter: JobFilter,
    before: Option<i64>,
    limit: i64,
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

fn one_of(v: &Option<String>, allowed: &[&str], name: &str) -> Result<Option<String>, String> {
    match non_empty(v) {
        Some(s) if !allowed.contains(&s.as_str()) => Err(format!(
            "Unknown {name} {s:?}; choose one of {}.",
            allowed.join(", ")
        )),
        other => Ok(other),
    }
}

fn day(v: &Option<String>, name: &str) -> Result<Option<NaiveDate>, String> {
    non_empty(v)
        .map(|s| {
            NaiveDate::parse_from_str(&s, "%Y-%m-%d")
                .map_err(|_| format!("The {name} date must be YYYY-MM-DD."))
        })
        .transpose()
}

fn parse(search: &Search) -> Result<Parsed, String> {
    let filter = JobFilter {
        seller_id: non_empty(&search.seller),
        status: one_of(&search.status, &STATUSES, "status")?,
        level: one_of(&search.level, &LEVELS, "level")?,
        trigger: one_of(&search.trigger, &TRIGGERS, "trigger")?,
        from: day(&search.from, "from")?,
        to: day(&search.to, "to")?,
    };
    if let (Some(from), Some(to)) = (filter.from, filter.to) {
        if from > to {
            return Err("The from date is after the to date.".into());
        }
    }
    let before = non_empty(&search.before)
        .map(|s| {
            s.parse::<i64>()
                .map_err(|_| "Invalid page cursor.".to_string())
        })
        .transpose()?;
    let limit = match non_empty(&search.limit) {
        None => DEFAULT_LIMIT,
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => return Err(format!("The page size must be 1 to {MAX_LIMIT}.")),
        },
    };
    Ok(Parsed {
        filter,
        before,
        limit,
    })
}

/// The query string of this search's next page: the same filters, `before` = the last id shown.
fn next_href(search: &Search, before: i64) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    for (name, value) in [
        ("seller", &search.seller),
        ("status", &search.status),
        ("level", &search.level),
        ("trigger", &search.trigger),
        ("from", &search.from),
        ("to", &search.to),
        ("limit", &search.limit),
    ] {
        if let Some(v) = non_empty(value) {
            pairs.push((name, v));
        }
    }
    pairs.push(("before", before.to_string()));
    let query: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect();
    format!("/dashboard/jobs?{}", query.join("&"))
}

pub async fn jobs(
    state: web::Data<AppState>,
    req: HttpRequest,
    search: Option<web::Query<Search>>,
) -> Result<HttpResponse, ApiError> {
    let Some(session) = signed_in(&state, &req)? else {
        return Ok(to_login());
    };
    let search = search.map(web::Query::into_inner).unwrap_or_default();
    let parsed = parse(&search);
    let result = match &parsed {
        Ok(p) => {
            let (db, filter, before, limit) =
                (state.db.clone(), p.filter.clone(), p.before, p.limit);
            Some(
                state
                    .on_main_runtime(async move {
                        let mut conn = db.conn().await?;
                        Ok(db::dashboard_jobs::search(&mut conn, &filter, before, limit).await?)
                    })
                    .await?,
            )
        }
        Err(_) => None,
    };
    let field = |v: &Option<String>| v.clone().unwrap_or_default();
    let select = |name: &'static str, options: &[&'static str], current: &Option<String>| {
        let current = non_empty(current);
        html! {
            label for=(name) { (name) }
            select id=(name) name=(name) {
                option value="" { "any" }
                @for o in options {
                    option value=(o) selected[current.as_deref() == Some(*o)] { (o) }
                }
            }
        }
    };
    let body = html! {
        h1 { "Jobs" }
        form.filters #job-search method="get" action="/dashboard/jobs" {
            label for="seller" { "seller" }
            input #seller type="text" name="seller" value=(field(&search.seller)) placeholder="seller id";
            (select("status", &STATUSES, &search.status))
            (select("level", &LEVELS, &search.level))
            (select("trigger", &TRIGGERS, &search.trigger))
            label for="from" { "queued from" }
            input #from type="date" name="from" value=(field(&search.from));
            label for="to" { "to (UTC)" }
            input #to type="date" name="to" value=(field(&search.to));
            button type="submit" { "Search" }
        }
        @match (&parsed, &result) {
            (Err(message), _) => p.error-text role="alert" { (message) },
            (Ok(ok), Some(result)) => {
                @if let Some(before) = ok.before {
                    p.muted { "Older records, below #" (before) ". " a href="/dashboard/jobs" { "Newest" } }
                }
                (job_table(&result.jobs, Some(&session.csrf), "job-results"))
                @if let Some(next) = result.next_before {
                    p.pager { a.next rel="next" href=(next_href(&search, next)) { "Older →" } }
                }
            },
            (Ok(_), None) => {},
        }
    };
    let code = if parsed.is_err() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(html_response(code, page("Jobs", Some(&session), body)))
}
