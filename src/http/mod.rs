//! The HTTP face: routes, the JSON error shape and the bearer-token extractor. Handlers talk to
//! `jobs` and `db` query functions; they never write SQL.

mod bearer;
mod client_ip;
mod dashboard;
mod errors;
mod health;
mod metrics;
mod openapi;
mod rate_limit;
mod seller_gate;
mod stats;
mod sync;
mod trace_context;

use std::sync::Arc;

use actix_web::web;

use crate::auth::TokenVerifier;
use crate::db::Db;
use crate::jobs::{JobQueue, Scheduler, TaskHealth};
use crate::telemetry::Metrics;

pub use client_ip::client_ip;
pub use dashboard::Dashboard;
pub use errors::{ApiError, ErrorBody, ErrorCode};
pub use health::HealthProbe;
pub use rate_limit::KeyedRateLimiter;
pub use seller_gate::SellerGate;
pub use trace_context::request_span;

/// Everything a handler may use; one instance per process, shared through `web::Data`.
pub struct AppState {
    pub db: Db,
    pub queue: JobQueue,
    pub scheduler: Scheduler,
    pub verifier: TokenVerifier,
    pub max_body_bytes: usize,
    pub body_timeout: std::time::Duration,
    /// `None` when `rate_limit.manual_syncs_per_minute` is 0.
    pub sync_limiter: Option<KeyedRateLimiter>,
    pub tasks: TaskHealth,
    pub health_probe: HealthProbe,
    /// The process's main (multi-threaded) runtime; see [`AppState::on_main_runtime`].
    pub runtime: tokio::runtime::Handle,
    /// The metrics handle the middleware records requests through and `/metrics` encodes.
    pub metrics: Metrics,
    /// `metrics.enabled`: whether `/metrics` is routed at all (404 like any unknown path if not).
    pub metrics_enabled: bool,
    /// `metrics.bearer_token`; empty means scrapes need no token.
    pub metrics_token: crate::config::Secret,
    /// `None` when the dashboard is off (no admin credentials configured).
    pub dashboard: Option<Dashboard>,
    /// Every seller route's check that the token's seller exists and is ACTIVE (cached briefly).
    pub seller_gate: SellerGate,
    /// `server.trusted_proxies`: whose `X-Forwarded-For` names the client ([`client_ip`]).
    pub trusted_proxies: crate::config::TrustedProxies,
}

impl AppState {
    /// Runs a handler's database work on the main runtime and waits for it.
    ///
    /// Each actix worker thread has a current-thread runtime of its own, and a request future is
    /// dropped wherever it is when its client disconnects. Dropping an unfinished SQLite query
    /// makes diesel-async wait for it with `block_in_place`, which panics on a current-thread
    /// runtime. Spawned on the main runtime, the work is not dropped with the request: it runs
    /// to its end (a sync the client stopped waiting for is still recorded, as it would be had
    /// the answer been lost on the way back) and its connection returns to the pool intact.
    pub async fn on_main_runtime<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        F: std::future::Future<Output = Result<T, ApiError>> + Send + 'static,
        T: Send + 'static,
    {
        // The request's span goes along: a manual sync's new jobs keep its traceparent.
        self.runtime
            .spawn(tracing::Instrument::instrument(
                work,
                tracing::Span::current(),
            ))
            .await
            .map_err(|e| ApiError::Internal(format!("database work did not finish: {e}")))?
    }
}

/// The API's routes: each path with the methods it answers and their handlers. `configure`
/// registers exactly these, and [`api_routes`] lists them, so a test can hold the OpenAPI document
/// to every route that exists. Pages for browsers (the Swagger UI) are registered apart.
fn route_table(
    metrics_enabled: bool,
) -> Vec<(&'static str, Vec<(&'static str, actix_web::Route)>)> {
    let mut routes = vec![
        (
            "/health",
            vec![
                ("get", web::get().to(health::health)),
                ("head", web::head().to(health::health_head)),
            ],
        ),
        (
            "/api/ads-manager/sync",
            vec![("post", web::post().to(sync::trigger::trigger_sync))],
        ),
        (
            "/api/ads-manager/sync/{job_id}",
            vec![("get", web::get().to(sync::status::sync_status))],
        ),
        (
            "/api/ads-manager/stats",
            vec![("get", web::get().to(stats::daily::daily_stats))],
        ),
        (
            "/api/ads-manager/stats/summary",
            vec![("get", web::get().to(stats::summary::stats_summary))],
        ),
        (
            "/api/ads-manager/sellpages/stats",
            vec![("get", web::get().to(stats::sellpages::sellpage_stats))],
        ),
        (
            "/api/openapi.json",
            vec![("get", web::get().to(openapi::openapi_json))],
        ),
    ];
    if metrics_enabled {
        routes.push(("/metrics", vec![("get", web::get().to(metrics::metrics))]));
    }
    routes
}

/// Every API route (path, methods) the service answers with these settings.
pub fn api_routes(metrics_enabled: bool) -> Vec<(&'static str, Vec<&'static str>)> {
    route_table(metrics_enabled)
        .into_iter()
        .map(|(path, routes)| (path, routes.into_iter().map(|(m, _)| m).collect()))
        .collect()
}

/// The OpenAPI document the service serves.
pub fn openapi_document(metrics_enabled: bool) -> utoipa::openapi::OpenApi {
    openapi::document(metrics_enabled)
}

/// Registers every route on an actix `App`.
pub fn configure(state: Arc<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        let document = web::Data::new(
            openapi::document(state.metrics_enabled)
                .to_json()
                .unwrap_or_else(|_| "{}".to_string()),
        );
        for (path, routes) in route_table(state.metrics_enabled) {
            let mut resource = web::resource(path).app_data(document.clone());
            let allow: Vec<String> = routes.iter().map(|(m, _)| m.to_uppercase()).collect();
            for (_, route) in routes {
                resource = resource.route(route);
            }
            cfg.service(resource.default_service(errors::method_not_allowed(allow.join(", "))));
        }
        let dashboard_on = state.dashboard.is_some();
        cfg.app_data(web::Data::from(state))
            .app_data(web::QueryConfig::default().error_handler(errors::query_error))
            .configure(dashboard::routes(dashboard_on))
            .service(web::resource("/api/docs").get(openapi::docs_redirect))
            .service(openapi::swagger_ui())
            .default_service(web::to(errors::not_found));
    }
}
