//! The HTTP face: routes, the JSON error shape and the bearer-token extractor. Handlers talk to
//! `jobs` and `db` query functions; they never write SQL.

mod auth;
mod dashboard;
mod errors;
mod health;
mod rate_limit;
mod sync;

use std::sync::Arc;

use actix_web::web;

use crate::auth::TokenVerifier;
use crate::db::Db;
use crate::jobs::{JobQueue, Scheduler, TaskHealth};

pub use dashboard::Dashboard;
pub use errors::ApiError;
pub use health::HealthProbe;
pub use rate_limit::SyncRateLimiter;

/// Everything a handler may use; one instance per process, shared through `web::Data`.
pub struct AppState {
    pub db: Db,
    pub queue: JobQueue,
    pub scheduler: Scheduler,
    pub verifier: TokenVerifier,
    pub max_body_bytes: usize,
    pub body_timeout: std::time::Duration,
    /// `None` when `rate_limit.manual_syncs_per_minute` is 0.
    pub sync_limiter: Option<SyncRateLimiter>,
    pub tasks: TaskHealth,
    pub health_probe: HealthProbe,
    /// The process's main (multi-threaded) runtime; see [`AppState::on_main_runtime`].
    pub runtime: tokio::runtime::Handle,
    /// `None` when the dashboard is off (no admin credentials configured).
    pub dashboard: Option<Dashboard>,
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
        self.runtime
            .spawn(work)
            .await
            .map_err(|e| ApiError::Internal(format!("database work did not finish: {e}")))?
    }
}

/// Registers every route on an actix `App`.
pub fn configure(state: Arc<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        let dashboard_on = state.dashboard.is_some();
        cfg.app_data(web::Data::from(state))
            .configure(dashboard::routes(dashboard_on))
            .service(
                web::resource("/health")
                    .route(web::get().to(health::health))
                    .route(web::head().to(health::health))
                    .default_service(web::to(errors::method_not_allowed)),
            )
            .service(
                web::scope("/api/ads-manager")
                    .service(
                        web::resource("/sync")
                            .route(web::post().to(sync::trigger::trigger_sync))
                            .default_service(web::to(errors::method_not_allowed)),
                    )
                    .service(
                        web::resource("/sync/{job_id}")
                            .route(web::get().to(sync::status::sync_status))
                            .default_service(web::to(errors::method_not_allowed)),
                    ),
            )
            .default_service(web::to(errors::not_found));
    }
}
