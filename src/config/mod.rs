//! One typed configuration, layered from `config/` files and the environment.
//!
//! Defaults live in `config/default.toml`, which is also compiled in so the binary works from any
//! folder. Every problem is reported as one [`ConfigError`] naming the key, so start-up can stop with
//! a single readable line and exit code 2.
//!
//! One file per concern: `settings.rs` (the structs, one per table; `[meta]` and `[dashboard]` in
//! their own files with their checks), `load.rs` (the layers), `validate.rs` (the checks serde
//! cannot make). The `[database]` table and its URL are `db`'s ([`crate::db::DatabaseSettings`],
//! [`crate::db::DatabaseUrl`]), the aggregation is the domain's; they are re-exported here.

mod cron_expr;
mod dashboard;
pub mod effective;
mod load;
mod meta;
mod meta_insights;
pub mod placeholder;
mod proxies;
mod secret;
mod settings;
mod validate;

pub use crate::db::{DatabaseSettings, DatabaseUrl};
pub use crate::domain::Aggregation;
pub use cron_expr::parse_cron;
pub use dashboard::{AdminPassword, DashboardSettings};
// Every duration setting's `#[serde(with = "super::duration")]`.
use crate::duration;
pub use crate::duration::parse_duration;
pub use meta::{MetaSettings, TOKEN_KEY_BYTES};
pub use meta_insights::{ActionReportTime, ActionTypes};
pub use proxies::TrustedProxies;
pub use secret::Secret;
pub use settings::{
    default_lookback_days, AuthSettings, JobSettings, LogFormat, LogSettings, MetricsSettings,
    MockSettings, ProviderKind, RateLimitSettings, SchedulerSettings, ServerSettings, Settings,
    StatsSettings, TelemetrySettings, MIN_RAW_RETENTION,
};
pub use validate::{DEFAULT_JWT_SECRET, MIN_JWT_SECRET_BYTES, MIN_METRICS_TOKEN_BYTES};

/// A configuration problem: which key, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("config error: {key}: {problem}")]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// A JWT secret every check accepts, for tests that need a production-grade configuration.
#[cfg(test)]
const REAL_SECRET: &str = "0123456789abcdef0123456789abcdef-private";
