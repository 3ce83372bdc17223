//! `GET /dashboard/connections[?status=…]`: every ad connection with its seller, provider, status
//! and reason, zone, currency, usage pause, and how its seller's syncs are going; a connection
//! that needs a new token says which command sets it. One query. Tokens never leave the
//! database: the page only says whether one is stored.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{html_response, page, relative, seller_href, time};
use super::{signed_in, to_login};
use crate::db::{self, dashboard::ConnectionRow};
use crate::http::{ApiError, AppState};

/// The statuses a connection can have, in the order the filter offers them.
const STATUSES: [&str; 3] = [
    db::connections::ACTIVE,
    db::connections::EXPIRED,
    db::connections::REVOKED,
];

#[derive(Deserialize)]
pub struct Filter {
    status: Option<String>,
}

pub async fn connections(
    state: web::Data<AppState>,
    req: HttpRequest,
    filter: Option<web::Query<Filter>>,
) -> Result<HttpResponse, ApiError> {
    let Some(session) = signed_in(&state, &req)? else {
        return Ok(to_login());
    };
    // An empty value is the form's "any"; anything else must be a status, or nothing matches
    // and the page says so rather than silently listing everything.
    let status = filter
        .and_then(|f| f.into_inner().status)
        .filter(|s| !s.is_empty());
    let invalid = status.as_deref().is_some_and(|s| !STATUSES.contains(&s));
    let rows = if invalid {
        Vec::new()
    } else {
        let (db, status) = (state.db.clone(), status.clone());
        state
            .on_main_runtime(async move {
                let mut conn = db.conn().await?;
                Ok(db::dashboard::connections(&mut conn, status.as_deref()).await?)
            })
            .await?
    };
    let now = db::now_utc();
    let body = html! {
        h1 { "Connections (" (rows.len()) ")" }
        form.filters method="get" action="/dashboard/connections" {
            label for="status" { "status" }
            select #status name="status" {
                option value="" { "any" }
                @for s in STATUSES {
                    option value=(s) selected[status.as_deref() == Some(s)] { (s) }
                }
            }
            button type="submit" { "Filter" }
        }
        @if invalid {
            p.error-text role="alert" { "Unknown status; choose one of " (STATUSES.join(", ")) "." }
        }
        p.muted {
            "Last success and last error are the seller's: a job syncs all of a seller's ACTIVE "
            "connections together. Times in UTC."
        }
        table #connections {
            thead {
                tr {
                    th { "connection" } th { "seller" } th { "provider" } th { "account" }
                    th { "status" } th { "zone" } th { "currency" } th { "paused until" }
                    th { "last successful sync" } th { "last error" }
                }
            }
            tbody {
                @for row in &rows {
                    tr data-connection=(row.id) data-status=(row.status) {
                        td.id { (row.id) }
                        td {
                            a href=(seller_href(&row.seller_id)) {
                                (row.seller_name.as_deref().unwrap_or(&row.seller_id))
                            }
                        }
                        td { (row.provider) }
                        td.id { (row.external_account_id) }
                        td.status-cell { (status_cell(row)) }
                        td { (row.timezone) }
                        td { (row.currency) }
                        td {
                            @match row.paused_until.filter(|t| *t > now) {
                                Some(t) => { (time(Some(t))) " " span.muted { "(" (relative(t, now)) ")" } },
                                None => span.muted { "—" },
                            }
                        }
                        td.last-success {
                            (time(row.last_success_at))
                            @if let Some(t) = row.last_success_at { " " span.muted { "(" (relative(t, now)) ")" } }
                        }
                        td.error {
                            @if let Some(e) = &row.last_error {
                                (e) " " span.muted { "(" (time(row.last_error_at)) ")" }
                            }
                        }
                    }
                }
                @if rows.is_empty() {
                    tr { td.muted colspan="10" { "none" } }
                }
            }
        }
    };
    let code = if invalid {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(html_response(
        code,
        page("Connections", Some(&session), body),
    ))
}

/// The status, its reason, and for a connection that needs a new token, the command that sets it
/// (the operator pipes the token in on stdin, so it never lands in shell history or `ps`).
fn status_cell(row: &ConnectionRow) -> Markup {
    let needs_token = row.status == db::connections::EXPIRED
        || (row.status == db::connections::REVOKED && row.status_reason.is_some());
    html! {
        span class={ "status status-" (row.status.to_lowercase()) } { (row.status) }
        @if let Some(reason) = &row.status_reason { " " span.reason { (reason) } }
        @if row.has_token == 0 { " " span.muted.no-token { "(no token stored)" } }
        @if needs_token {
            p.fix {
                "Needs a new access token: "
                code.command { "ads-stats connection set-token --connection " (row.id) }
                " (reads the token from stdin)"
            }
        } @else if row.status == db::connections::REVOKED {
            p.fix.muted { "Revoked by an operator; set-token keeps it revoked." }
        }
    }
}
