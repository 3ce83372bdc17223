//! The page shell and the pieces several pages share: navigation, job tables, times, links, and
//! the headers every dashboard response carries.

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use chrono::NaiveDateTime;
use maud::{html, Markup, DOCTYPE};

use super::session::Session;
use crate::db::models::JobRecord;

/// Only the dashboard's own stylesheet and forms; no script, no frames, no outside origin. The
/// charts are inline SVG drawn with presentation attributes, which CSP does not count as style.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// An HTML page with the dashboard's security headers. `no-store`: pages show live queue state
/// and carry the CSRF token, neither of which belongs in a cache.
pub fn html_response(status: StatusCode, markup: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .body(markup.into_string())
}

/// 303 See Other: after a POST the browser GETs `location`, so a reload does not repeat it.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// A whole page. With a session, the navigation and the logout button (a CSRF-carrying POST).
pub fn page(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · ads-stats" }
                // An empty icon: browsers otherwise ask for /favicon.ico, a 404 in the console.
                link rel="icon" href="data:,";
                link rel="stylesheet" href=(super::assets::STYLESHEET_PATH);
            }
            body {
                header.top {
                    a.brand href="/dashboard" { "ads-stats" }
                    @if let Some(session) = session {
                        nav {
                            a href="/dashboard" { "Overview" }
                            a href="/dashboard/sellers" { "Sellers" }
                            a href="/dashboard/connections" { "Connections" }
                            a href="/dashboard/jobs" { "Jobs" }
                        }
                        form.logout method="post" action="/dashboard/logout" {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// `/dashboard/sellers/{id}` with the id percent-encoded as a path segment.
pub fn seller_href(seller_id: &str) -> String {
    format!("/dashboard/sellers/{}", percent_encode(seller_id))
}

/// `/dashboard/jobs/{record_id}`: a job record's page.
pub fn job_href(record_id: i64) -> String {
    format!("/dashboard/jobs/{record_id}")
}

/// Every byte but RFC 3986's unreserved characters percent-encoded: safe as a path segment and as
/// a query value.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A UTC timestamp as the page shows it, with a machine-readable `datetime`.
pub fn time(at: Option<NaiveDateTime>) -> Markup {
    match at {
        Some(at) => html! {
            time datetime=(at.format("%Y-%m-%dT%H:%M:%SZ")) { (at.format("%Y-%m-%d %H:%M:%S")) }
        },
        None => html! { span.muted { "—" } },
    }
}

/// How far `at` is from `now`, e.g. "3 min ago" or "in 2 min".
pub fn relative(at: NaiveDateTime, now: NaiveDateTime) -> String {
    let secs = (now - at).num_seconds();
    let (n, future) = (secs.unsigned_abs(), secs < 0);
    let span = match n {
        0..=59 => format!("{n} s"),
        60..=3599 => format!("{} min", n / 60),
        3600..=86_399 => format!("{} h", n / 3600),
        _ => format!("{} d", n / 86_400),
    };
    if future {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// A job table. With `retry_csrf`, each FAILED row gets a Retry button and each QUEUED row a
/// Cancel button (CSRF-carrying POSTs).
pub fn job_table(jobs: &[JobRecord], retry_csrf: Option<&str>, id: &str) -> Markup {
    html! {
        table.jobs id=(id) {
            thead {
                tr {
                    th { "#" } th { "status" } th { "seller" } th { "level" } th { "date" }
                    th { "trigger" } th { "attempts" } th { "created (UTC)" } th { "finished (UTC)" }
                    th { "rows" } th { "last error" }
                    @if retry_csrf.is_some() { th { } }
                }
            }
            tbody {
                @for job in jobs {
                    tr data-record=(job.id) data-status=(job.status) {
                        td.num { a.record href=(job_href(job.id)) { (job.id) } }
                        td { span class={ "status status-" (job.status.to_lowercase()) } { (job.status) } }
                        td.id { a href=(seller_href(&job.seller_id)) title=(job.seller_id) { (short(&job.seller_id)) } }
                        td { (job.level) }
                        td { (job.date_from) @if job.date_to != job.date_from { " → " (job.date_to) } }
                        td { (job.triggered_by) }
                        td.num { (job.attempts) "/" (job.max_attempts) }
                        td { (time(Some(job.created_at))) }
                        td { (time(job.finished_at)) }
                        td.num { @match job.raw_rows { Some(raw) => (raw), None => span.muted { "—" } } }
                        td.error { @if let Some(e) = &job.last_error { (e) } }
                        @if let Some(csrf) = retry_csrf {
                            td {
                                (job_actions(job, csrf, None))
                            }
                        }
                    }
                }
                @if jobs.is_empty() {
                    tr { td.muted colspan="12" { "none" } }
                }
            }
        }
    }
}

/// The buttons a record's state allows: Retry when FAILED, Cancel when QUEUED. `back` is sent
/// with the form so the answer returns to the page the operator came from (`job`: the record's
/// own page).
pub fn job_actions(job: &JobRecord, csrf: &str, back: Option<&str>) -> Markup {
    let action = if job.status == crate::db::jobs::FAILED {
        Some(("retry", "Retry"))
    } else if job.status == crate::db::jobs::QUEUED {
        Some(("cancel", "Cancel"))
    } else {
        None
    };
    html! {
        @if let Some((verb, label)) = action {
            form class=(verb) method="post" action=(format!("{}/{verb}", job_href(job.id))) {
                input type="hidden" name="csrf" value=(csrf);
                @if let Some(back) = back { input type="hidden" name="back" value=(back); }
                button type="submit" { (label) }
            }
        }
    }
}

/// Long ids (UUIDs) cut to their first 8 characters; the full id is in the link's title.
fn short(id: &str) -> &str {
    id.char_indices().nth(8).map_or(id, |(i, _)| &id[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seller_links_encode_the_id() {
        assert_eq!(seller_href("s-1_a.b~"), "/dashboard/sellers/s-1_a.b~");
        assert_eq!(seller_href("a/b?c d"), "/dashboard/sellers/a%2Fb%3Fc%20d");
    }

    #[test]
    fn relative_times_read_naturally() {
        let now = chrono::DateTime::from_timestamp(100_000, 0)
            .unwrap()
            .naive_utc();
        let ago = |s: i64| relative(now - chrono::Duration::seconds(s), now);
        assert_eq!(ago(5), "5 s ago");
        assert_eq!(ago(180), "3 min ago");
        assert_eq!(ago(-7200), "in 2 h");
    }
}
