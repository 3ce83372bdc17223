//! The operator dashboard at `/dashboard`: HTML rendered on the server, charts as inline SVG, the
//! stylesheet compiled in. Off (every path 404, as if it did not exist) unless an admin user and
//! password hash are configured; then a login form, an in-memory session cookie, and a CSRF token
//! in every POST.
//!
//! One handler per file: `overview.rs`, `sellers.rs`, `seller.rs`, `connections.rs`, `jobs.rs`
//! (the search), `job.rs` (one record), `retry.rs`, `cancel.rs`, `login.rs` (in and out),
//! `assets.rs`; `session.rs` holds the access rules, `charts.rs` the drawing and
//! `layout.rs` the shared markup.

mod assets;
mod cancel;
mod charts;
mod connections;
mod job;
mod jobs;
mod layout;
mod login;
mod overview;
mod retry;
mod seller;
mod sellers;
mod session;

use actix_web::{web, HttpRequest, HttpResponse};

use super::errors::{method_not_allowed, ApiError};
use super::AppState;
use crate::config::{AdminPassword, Settings};
use session::{Access, Session};

/// The dashboard's state: who may sign in and who has. Present in [`AppState`] only when the
/// dashboard is configured.
pub struct Dashboard {
    access: Access,
}

impl Dashboard {
    /// `None` (the dashboard is off) unless `admin_user` and a password hash are both set.
    /// Called once at start, so its warnings (the dashboard stays off, the deprecated SHA-256
    /// digest) are logged once, not at every login.
    pub fn from_settings(settings: &Settings) -> Option<Self> {
        let access = Access::from_settings(settings);
        let dashboard = &settings.dashboard;
        if access.is_none() && (!dashboard.admin_user.trim().is_empty() || dashboard.has_password())
        {
            tracing::warn!(
                "the dashboard stays off: set both dashboard.admin_user and \
                 dashboard.admin_password_hash"
            );
        }
        let sha256_set = !dashboard.admin_password_sha256.expose().trim().is_empty();
        if access.is_some() && sha256_set {
            match dashboard.admin() {
                Some((_, AdminPassword::Argon2(_))) => tracing::warn!(
                    "dashboard.admin_password_hash and the deprecated \
                     dashboard.admin_password_sha256 are both set; using admin_password_hash \
                     (remove admin_password_sha256)"
                ),
                _ => tracing::warn!(
                    "dashboard.admin_password_sha256 is deprecated and will be removed in the \
                     next release; set dashboard.admin_password_hash from \
                     `ads-stats dashboard hash-password`"
                ),
            }
        }
        Some(Self { access: access? })
    }
}

/// Registers the dashboard's routes when it is on; when off, `/dashboard` falls through to the
/// application's JSON 404 like any unknown path.
pub(super) fn routes(enabled: bool) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        if !enabled {
            return;
        }
        cfg.service(
            web::scope("/dashboard")
                .service(
                    web::resource(["", "/"])
                        .route(web::get().to(overview::overview))
                        .default_service(method_not_allowed("GET".into())),
                )
                .service(
                    web::resource("/login")
                        .route(web::get().to(login::login_form))
                        .route(web::post().to(login::log_in))
                        .default_service(method_not_allowed("GET, POST".into())),
                )
                .service(
                    web::resource("/logout")
                        .route(web::post().to(login::log_out))
                        .default_service(method_not_allowed("POST".into())),
                )
                .service(
                    web::resource("/sellers")
                        .route(web::get().to(sellers::sellers))
                        .default_service(method_not_allowed("GET".into())),
                )
                .service(
                    web::resource("/sellers/{seller_id}")
                        .route(web::get().to(seller::seller_page))
                        .default_service(method_not_allowed("GET".into())),
                )
                .service(
                    web::resource("/connections")
                        .route(web::get().to(connections::connections))
                        .default_service(method_not_allowed("GET".into())),
                )
                .service(
                    web::resource("/jobs")
                        .route(web::get().to(jobs::jobs))
                        .default_service(method_not_allowed("GET".into())),
                )
                .service(
                    web::resource("/jobs/{record_id}")
                        .route(web::get().to(job::job_page))
                        .default_service(method_not_allowed("GET".into())),
                )
                .service(
                    web::resource("/jobs/{record_id}/retry")
                        .route(web::post().to(retry::retry_job))
                        .default_service(method_not_allowed("POST".into())),
                )
                .service(
                    web::resource("/jobs/{record_id}/cancel")
                        .route(web::post().to(cancel::cancel_job))
                        .default_service(method_not_allowed("POST".into())),
                )
                .service(
                    web::resource(assets::STYLESHEET_PATH.trim_start_matches("/dashboard"))
                        .route(web::get().to(assets::stylesheet))
                        .default_service(method_not_allowed("GET".into())),
                ),
        );
    }
}

/// The dashboard's access rules; a 404 if it is off (the routes are then not registered, so this
/// only guards against a wiring mistake).
fn access(state: &AppState) -> Result<&Access, ApiError> {
    state
        .dashboard
        .as_ref()
        .map(|d| &d.access)
        .ok_or_else(|| ApiError::NotFound("no such endpoint".into()))
}

/// The signed-in session for a page; `None` means "send the browser to the login form".
fn signed_in(state: &AppState, req: &HttpRequest) -> Result<Option<Session>, ApiError> {
    Ok(access(state)?.session(req))
}

/// Where a page sends a browser that is not signed in.
fn to_login() -> HttpResponse {
    layout::see_other("/dashboard/login")
}

/// The form field every dashboard POST carries, and where a job action's answer should lead
/// (`back=job`: the job's own page; otherwise the page the action has always returned to).
#[derive(Debug, serde::Deserialize)]
struct CsrfForm {
    csrf: String,
    #[serde(default)]
    back: Option<String>,
}

/// The session of a POST whose CSRF token matches it; anything else is refused with 403 (no
/// session, an expired one, a missing or wrong token, a body that is not the form).
fn signed_in_post(
    state: &AppState,
    req: &HttpRequest,
    form: Option<&CsrfForm>,
) -> Result<Session, ApiError> {
    access(state)?
        .session_with_csrf(req, form.map(|f| f.csrf.as_str()))
        .ok_or_else(|| {
            tracing::info!(http.path = %req.path(), "dashboard POST refused: no session or a wrong CSRF token");
            ApiError::Forbidden("missing or invalid CSRF token or session".into())
        })
}
