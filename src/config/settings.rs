//! The settings structs, one per `[table]` of `config/default.toml`, and the answers they give
//! once loaded (effective values whose default depends on another setting).
//!
//! Loading lives in `load.rs`, the checks serde cannot make in `validate.rs`.

use std::time::Duration;

use serde::Deserialize;

use super::{DashboardSettings, MetaSettings, Secret, TrustedProxies};
use crate::db::{DatabaseSettings, DatabaseUrl};
use crate::domain::Aggregation;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub provider: ProviderKind,
    pub mock: MockSettings,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub log: LogSettings,
    pub auth: AuthSettings,
    pub stats: StatsSettings,
    pub jobs: JobSettings,
    pub scheduler: SchedulerSettings,
    pub rate_limit: RateLimitSettings,
    pub metrics: MetricsSettings,
    pub dashboard: DashboardSettings,
    pub meta: MetaSettings,
    pub telemetry: TelemetrySettings,
    /// Environment name from `ADS_STATS_ENV` (`development` when unset); not a file key.
    #[serde(skip)]
    pub environment: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Mock,
    /// Meta's Graph API insights, for connections whose `provider` is `META`.
    Meta,
}

/// The deterministic mock provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockSettings {
    /// Each provider request waits this long first, like a real provider's network call
    /// (benchmarks of slow providers and scale-out); zero is off.
    #[serde(with = "super::duration")]
    pub latency: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    #[serde(with = "super::duration")]
    pub shutdown_timeout: Duration,
    pub max_body_bytes: usize,
    /// A request body still arriving after this long is answered 408.
    #[serde(with = "super::duration")]
    pub body_timeout: Duration,
    /// Load balancers whose `X-Forwarded-For` names the client (see `http::client_ip`).
    pub trusted_proxies: TrustedProxies,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub jwt_secret: Secret,
    pub issuer: String,
    pub audience: String,
    pub leeway_seconds: u64,
    /// The longest a token may live: one whose `exp` lies further than this past its `iat`, or
    /// past now, is refused. A leaked token then stops working within this time. Zero is off.
    #[serde(with = "super::duration")]
    pub max_token_lifetime: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsSettings {
    pub aggregation: Aggregation,
    /// Days before each connection's local today re-synced once a day, so conversions the
    /// provider attributes late land in the daily rows; 0 turns it off. Needs `latest`.
    /// `None` (not set anywhere): the provider's default, see [`Settings::lookback_days`].
    #[serde(default)]
    pub lookback_days: Option<u32>,
    /// The local hour (0–23, in each connection's zone) from which a day's lookback is queued:
    /// the first tick at or after it. Meta finishes yesterday's numbers hours after midnight.
    pub lookback_hour: u32,
    /// Raw rows fetched longer ago than this are deleted by the sweeper, in small batches; the
    /// daily and sellpage rows they were folded into are kept.
    #[serde(with = "super::duration")]
    pub raw_retention: Duration,
}

/// `stats.lookback_days` when no layer sets it: Meta keeps attributing conversions for 28 days
/// (its default attribution window), the mock's numbers never change once written.
pub const fn default_lookback_days(provider: ProviderKind) -> u32 {
    match provider {
        ProviderKind::Meta => 28,
        ProviderKind::Mock => 0,
    }
}

/// The shortest `stats.raw_retention` accepted: a job folds the raw rows it fetched a moment
/// ago, and rows of today and yesterday must outlive any run still in flight (retries, a
/// lookback) with room to spare.
pub const MIN_RAW_RETENTION: Duration = Duration::from_secs(2 * 86_400);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSettings {
    /// Most jobs of this instance in their write transaction at once: what bounds the database
    /// work (and the pool connections) syncs take.
    pub concurrency: usize,
    /// Most jobs this instance has claimed at once: waiting on the provider, fetched and waiting
    /// for one of the `concurrency` write slots, or writing. The fetched jobs queued for a write
    /// are what group commit writes many to a transaction. 0 means `concurrency`: one bound, no more
    /// jobs claimed than can write at once.
    pub max_in_flight: usize,
    /// Most of those jobs waiting on the provider at once (a job is claimed only when one of
    /// these is free, and gives it back as soon as its readings are in). A job waiting on the
    /// provider holds no write slot and no pool connection, so a slow provider is waited on this
    /// many at a time. 0 means as many as `max_in_flight`; more than `max_in_flight` counts as
    /// `max_in_flight`.
    pub max_provider_requests: usize,
    pub max_attempts: u32,
    #[serde(with = "super::duration")]
    pub backoff: Duration,
    #[serde(with = "super::duration")]
    pub timeout: Duration,
    #[serde(with = "super::duration")]
    pub shutdown_grace: Duration,
    #[serde(with = "super::duration")]
    pub retention: Duration,
    pub queue_capacity: usize,
    #[serde(with = "super::duration")]
    pub poll_interval: Duration,
    #[serde(with = "super::duration")]
    pub rescue_after: Duration,
    /// Job records from manual syncs one seller may have QUEUED or RUNNING; a manual sync that
    /// would pass it answers 429. 0 is no limit. Scheduled jobs are neither counted nor refused.
    pub max_active_per_seller: usize,
}

impl JobSettings {
    /// The effective `max_in_flight`: 0 stands for `concurrency`.
    pub fn in_flight(&self) -> usize {
        if self.max_in_flight == 0 {
            self.concurrency
        } else {
            self.max_in_flight
        }
    }

    /// The effective `max_provider_requests`: 0 stands for the effective `max_in_flight`, and it
    /// is never above it.
    pub fn provider_requests(&self) -> usize {
        match self.max_provider_requests {
            0 => self.in_flight(),
            n => n.min(self.in_flight()),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Manual syncs one seller may ask for per minute (a burst of that many, then an even pace);
    /// 0 turns the limit off. Scheduled syncs are never limited.
    pub manual_syncs_per_minute: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Serve `GET /metrics`; when false it answers 404 like an unknown path.
    pub enabled: bool,
    /// When not empty, a scrape must send `Authorization: Bearer <token>`. Empty: no token needed
    /// (a scraper on a private network, or a service listening on loopback only).
    pub bearer_token: Secret,
}

/// Traces (see `telemetry::traces`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// The OTLP/HTTP collector's base URL (`http://127.0.0.1:4318`): spans are posted to
    /// `<it>/v1/traces` as protobuf. A URL already ending in `/v1/traces` is used as it is.
    /// Empty: no traces, and no cost.
    pub otlp_endpoint: String,
}

impl TelemetrySettings {
    /// Where spans are posted, or `None` when traces are off.
    pub fn traces_url(&self) -> Option<String> {
        let base = self.otlp_endpoint.trim();
        if base.is_empty() {
            return None;
        }
        if base.trim_end_matches('/').ends_with("/v1/traces") {
            return Some(base.to_string());
        }
        Some(format!("{}/v1/traces", base.trim_end_matches('/')))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSettings {
    pub enabled: bool,
    pub cron: String,
    pub timezone: String,
}

impl Settings {
    /// Where the database is (`database.url`, which `validate()` has already accepted).
    pub fn database_url(&self) -> DatabaseUrl {
        DatabaseUrl::parse(&self.database.url).unwrap_or(DatabaseUrl::Sqlite("".into()))
    }

    /// The effective `stats.lookback_days`: the one set, else the provider's default.
    pub fn lookback_days(&self) -> u32 {
        self.stats
            .lookback_days
            .unwrap_or(default_lookback_days(self.provider))
    }

    pub fn is_production(&self) -> bool {
        self.environment == "production"
    }

    /// Whether the dashboard's session cookie is `Secure`: `dashboard.secure_cookies` when set,
    /// else only in production (served behind TLS; a laptop's plain http would lose the cookie).
    pub fn secure_cookies(&self) -> bool {
        self.dashboard
            .secure_cookies
            .unwrap_or(self.is_production())
    }

    pub fn scheduler_timezone(&self) -> chrono_tz::Tz {
        // validate() has already accepted the zone.
        self.scheduler.timezone.parse().unwrap_or(chrono_tz::UTC)
    }
}
