//! The HTTP face: routes, the JSON error shape and the bearer-token extractor. Handlers talk to
//! `jobs` and `db` query functions; they never write SQL.

mod auth;
mod errors;
mod health;
mod rate_limit;
mod sync;

use std::sync::Arc;

use actix_web::web;

use crate::auth::TokenVerifier;
use crate::db::Db;
use crate::jobs::{JobQueue, Scheduler};

pub use errors::ApiError;
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
}

/// Registers every route on an actix `App`.
pub fn configure(state: Arc<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::from(state))
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
