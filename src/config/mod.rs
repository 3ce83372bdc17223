//! One typed configuration, layered from `config/` files and the environment.
//!
//! Defaults live in `config/default.toml`, which is also compiled in so the binary works from any
//! folder. Every problem is reported as one [`ConfigError`] naming the key, so start-up can stop with
//! a single readable line and exit code 2.

mod cron_expr;
mod dashboard;
pub mod effective;
mod meta_insights;
pub mod placeholder;
mod proxies;
mod secret;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;

pub use cron_expr::parse_cron;
pub use dashboard::{AdminPassword, DashboardSettings};
pub use meta_insights::{ActionReportTime, ActionTypes};
pub use proxies::TrustedProxies;
pub use secret::Secret;

/// The JWT secret shipped in `config/default.toml`; production refuses it.
pub const DEFAULT_JWT_SECRET: &str = "dev-only-insecure-secret";
const DEFAULT_TOML: &str = include_str!("../../config/default.toml");
const ENV_PREFIX: &str = "ADS_STATS_";

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

/// The Meta (Facebook) Graph API provider: where it is, how it pages, how long a request may take,
/// the key that seals access tokens, and when the usage headers pause an account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaSettings {
    /// Scheme and host of the Graph API (tests point it at a local server).
    pub base_url: String,
    /// The Graph API version in each path, e.g. `v23.0`.
    pub api_version: String,
    /// Rows per insights page (`limit`).
    pub page_size: u32,
    /// One HTTP request (connect and answer) taking longer fails the attempt, which is retried.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// Base64 of 32 random bytes; AES-256-GCM key for `ad_connections.access_token_enc`.
    pub token_key: Secret,
    /// Percent (0–100] of any usage figure Meta reports at which an account's jobs pause.
    pub usage_threshold: f64,
    /// How often each META connection's account (zone, currency, status) is read again; a
    /// `connection set-token` reads it at once.
    #[serde(with = "duration")]
    pub account_refresh: Duration,
    /// The Meta app's secret; when set, every Graph request carries `appsecret_proof` (apps with
    /// "Require App Secret" refuse calls without it). Empty: not sent.
    pub app_secret: Secret,
    /// When conversions are counted: `impression`, `conversion` or `mixed` (Ads Manager's).
    pub action_report_time: ActionReportTime,
    /// The action types behind each funnel step, first present wins.
    pub action_types: ActionTypes,
    /// A job whose range has more days than this asks Meta for an async report run at once
    /// (long synchronous requests are the ones Meta refuses).
    pub async_after_days: u32,
    /// How long one attempt polls an async report run before it gives up (the run is kept for
    /// the next attempt).
    #[serde(with = "duration")]
    pub async_timeout: Duration,
    /// The first wait between polls of an async report run; each wait doubles, up to 30s.
    #[serde(with = "duration")]
    pub async_poll_interval: Duration,
}

/// The bytes of the token key: 32 bytes from base64, `None` when no key is set.
pub const TOKEN_KEY_BYTES: usize = 32;

impl MetaSettings {
    /// The decoded `meta.token_key`: `Ok(None)` when unset, an error when set but not base64 of
    /// exactly 32 bytes (never naming the value).
    pub fn token_key_bytes(&self) -> Result<Option<[u8; TOKEN_KEY_BYTES]>, ConfigError> {
        use base64::Engine;
        let text = self.token_key.expose().trim();
        if text.is_empty() {
            return Ok(None);
        }
        let bad = || {
            ConfigError::new(
                "meta.token_key",
                "is not base64 of 32 bytes (make one with `openssl rand -base64 32`)",
            )
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| bad())?;
        let key: [u8; TOKEN_KEY_BYTES] = bytes.try_into().map_err(|_| bad())?;
        Ok(Some(key))
    }

    fn validate(&self, provider: ProviderKind, production: bool) -> Result<(), ConfigError> {
        let key = self.token_key_bytes()?;
        if key.is_none() && production && provider == ProviderKind::Meta {
            return Err(ConfigError::new(
                "meta.token_key",
                "is missing and ADS_STATS_ENV=production with provider = \"meta\"; set \
                 ADS_STATS_META__TOKEN_KEY to `openssl rand -base64 32`",
            ));
        }
        // The access token travels in a header: plain http only to this machine (a local fake).
        let url = self.base_url.trim();
        let parsed = reqwest::Url::parse(url).ok().filter(|u| u.has_host());
        let Some(parsed) = parsed.filter(|u| matches!(u.scheme(), "https" | "http")) else {
            return Err(ConfigError::new(
                "meta.base_url",
                "must be an https:// URL, e.g. https://graph.facebook.com",
            ));
        };
        if parsed.scheme() == "http" && !is_loopback_host(parsed.host_str().unwrap_or_default()) {
            return Err(ConfigError::new(
                "meta.base_url",
                "must be https:// (plain http:// only to a loopback host such as 127.0.0.1): \
                 the access token would cross the network unencrypted",
            ));
        }
        let version = self.api_version.trim();
        if !(version.starts_with('v') && version[1..].parse::<f64>().is_ok()) {
            return Err(ConfigError::new(
                "meta.api_version",
                format!("`{version}` is not a Graph API version such as v23.0"),
            ));
        }
        positive("meta.page_size", self.page_size as usize)?;
        nonzero("meta.timeout", self.timeout)?;
        nonzero("meta.account_refresh", self.account_refresh)?;
        positive("meta.async_after_days", self.async_after_days as usize)?;
        nonzero("meta.async_timeout", self.async_timeout)?;
        nonzero("meta.async_poll_interval", self.async_poll_interval)?;
        if !(self.usage_threshold > 0.0 && self.usage_threshold <= 100.0) {
            return Err(ConfigError::new(
                "meta.usage_threshold",
                "must be a percentage above 0 and at most 100",
            ));
        }
        self.action_types.validate()?;
        Ok(())
    }
}

/// The deterministic mock provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockSettings {
    /// Each provider request waits this long first, like a real provider's network call
    /// (benchmarks of slow providers and scale-out); zero is off.
    #[serde(with = "duration")]
    pub latency: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    #[serde(with = "duration")]
    pub shutdown_timeout: Duration,
    pub max_body_bytes: usize,
    /// A request body still arriving after this long is answered 408.
    #[serde(with = "duration")]
    pub body_timeout: Duration,
    /// Load balancers whose `X-Forwarded-For` names the client (see `http::client_ip`).
    pub trusted_proxies: TrustedProxies,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub pool_size: usize,
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    #[serde(with = "duration")]
    pub statement_timeout: Duration,
    pub run_migrations: bool,
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
    #[serde(with = "duration")]
    pub max_token_lifetime: Duration,
}

/// How raw rows fold into a daily row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregation {
    /// Daily = sum of the day's raw rows.
    Sum,
    /// Daily = the latest raw row (providers reporting day-to-date totals).
    Latest,
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
    #[serde(with = "duration")]
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
    /// Most jobs this instance has claimed at once: waiting on the provider, waiting for one of
    /// the `concurrency` write slots, or writing. A job waiting on the provider holds no write
    /// slot and no pool connection, so a slow provider is waited on `max_in_flight` at a time.
    /// 0 means `concurrency`: a job keeps its write slot while it waits on the provider.
    pub max_in_flight: usize,
    pub max_attempts: u32,
    #[serde(with = "duration")]
    pub backoff: Duration,
    #[serde(with = "duration")]
    pub timeout: Duration,
    #[serde(with = "duration")]
    pub shutdown_grace: Duration,
    #[serde(with = "duration")]
    pub retention: Duration,
    pub queue_capacity: usize,
    #[serde(with = "duration")]
    pub poll_interval: Duration,
    #[serde(with = "duration")]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSettings {
    pub enabled: bool,
    pub cron: String,
    pub timezone: String,
}

/// Where the database lives, decided by the URL scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Postgres(String),
    Sqlite(PathBuf),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if url.is_empty() {
            return Err("is empty".into());
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return tokio_postgres::Config::from_str(url)
                .map(|_| Self::Postgres(url.to_string()))
                .map_err(|e| format!("not a valid PostgreSQL URL ({e})"));
        }
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite:// needs a file path, e.g. sqlite://data/ads-stats.db".into());
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = url.split_once("://") {
            return Err(format!(
                "unsupported scheme `{scheme}://` (use postgres://, postgresql:// or sqlite://)"
            ));
        }
        Ok(Self::Sqlite(PathBuf::from(url)))
    }
}

impl Settings {
    /// Loads settings the way the binary does: files under `ADS_STATS_CONFIG_DIR` (default `config`),
    /// the optional `--config` file, then the process environment.
    pub fn load(explicit_file: Option<&Path>) -> Result<Self, ConfigError> {
        let (figment, environment) = Self::layers(explicit_file)?;
        Self::from_figment(figment, environment)
    }

    /// Every layer [`Settings::load`] reads, merged but not yet checked, with the environment
    /// name; `ads-stats config` asks it where each value came from.
    pub fn layers(explicit_file: Option<&Path>) -> Result<(Figment, String), ConfigError> {
        let environment = std::env::var("ADS_STATS_ENV").unwrap_or_else(|_| "development".into());
        let dir = std::env::var("ADS_STATS_CONFIG_DIR").unwrap_or_else(|_| "config".into());
        let dir = Path::new(&dir);

        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        figment = figment.merge(Toml::file(dir.join("default.toml")));
        figment = figment.merge(Toml::file(dir.join(format!("{environment}.toml"))));
        if let Some(file) = explicit_file {
            if !file.is_file() {
                return Err(ConfigError::new(
                    "--config",
                    format!("file {} does not exist", file.display()),
                ));
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment
            .merge(
                Env::raw()
                    .only(&["DATABASE_URL"])
                    .map(|_| "database.url".into()),
            )
            .merge(
                Env::raw()
                    .only(&["JWT_SECRET"])
                    .map(|_| "auth.jwt_secret".into()),
            )
            .merge(Env::raw().only(&["PORT"]).map(|_| "server.port".into()))
            .merge(
                Env::prefixed(ENV_PREFIX)
                    .ignore(&["ENV", "CONFIG_DIR"])
                    .split("__"),
            );
        Ok((with_provider_defaults(figment), environment))
    }

    /// Settings from the compiled-in defaults only, adjusted in code (tests, tools).
    pub fn defaults_with(adjust: impl FnOnce(&mut Settings)) -> Result<Self, ConfigError> {
        let mut settings =
            Self::from_figment(Figment::from(Toml::string(DEFAULT_TOML)), "test".into())?;
        adjust(&mut settings);
        settings.validate()?;
        Ok(settings)
    }

    fn from_figment(figment: Figment, environment: String) -> Result<Self, ConfigError> {
        let mut settings: Settings = figment.extract().map_err(figment_error)?;
        settings.environment = environment;
        settings.validate()?;
        Ok(settings)
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

    pub fn database_url(&self) -> DatabaseUrl {
        // validate() has already accepted the URL.
        DatabaseUrl::parse(&self.database.url).unwrap_or(DatabaseUrl::Sqlite("".into()))
    }

    pub fn scheduler_timezone(&self) -> chrono_tz::Tz {
        self.scheduler.timezone.parse().unwrap_or(chrono_tz::UTC)
    }

    /// Checks what serde cannot: ranges, URLs, the cron expression, production secrets.
    pub fn validate(&self) -> Result<(), ConfigError> {
        DatabaseUrl::parse(&self.database.url).map_err(|p| ConfigError::new("database.url", p))?;
        positive("database.pool_size", self.database.pool_size)?;
        positive("jobs.concurrency", self.jobs.concurrency)?;
        // Fewer jobs in flight than write slots would leave write slots no job can ever use.
        if self.jobs.max_in_flight != 0 && self.jobs.max_in_flight < self.jobs.concurrency {
            return Err(ConfigError::new(
                "jobs.max_in_flight",
                format!(
                    "must be 0 (as many as jobs.concurrency) or at least jobs.concurrency ({}): \
                     it is {}",
                    self.jobs.concurrency, self.jobs.max_in_flight
                ),
            ));
        }
        positive("jobs.max_attempts", self.jobs.max_attempts as usize)?;
        positive("jobs.queue_capacity", self.jobs.queue_capacity)?;
        positive("server.max_body_bytes", self.server.max_body_bytes)?;
        nonzero("jobs.timeout", self.jobs.timeout)?;
        nonzero("server.body_timeout", self.server.body_timeout)?;
        nonzero("jobs.poll_interval", self.jobs.poll_interval)?;
        nonzero("jobs.rescue_after", self.jobs.rescue_after)?;
        // A lease is renewed every quarter of `jobs.rescue_after` and orphans are looked for every
        // poll; a poll as slow as half of it would leave dead instances' jobs (and ticks) waiting
        // far longer than `jobs.rescue_after` promises.
        if self.jobs.poll_interval >= self.jobs.rescue_after / 2 {
            return Err(ConfigError::new(
                "jobs.poll_interval",
                format!(
                    "must be below half of jobs.rescue_after ({}s): it is {}s",
                    self.jobs.rescue_after.as_secs_f32(),
                    self.jobs.poll_interval.as_secs_f32()
                ),
            ));
        }
        nonzero("database.connect_timeout", self.database.connect_timeout)?;
        self.validate_stats()?;
        self.dashboard.validate()?;
        if self.server.host.trim().is_empty() {
            return Err(ConfigError::new("server.host", "is empty"));
        }
        parse_cron(&self.scheduler.cron).map_err(|p| ConfigError::new("scheduler.cron", p))?;
        self.scheduler
            .timezone
            .parse::<chrono_tz::Tz>()
            .map_err(|_| {
                ConfigError::new(
                    "scheduler.timezone",
                    format!(
                        "`{}` is not an IANA time zone (e.g. UTC, Europe/Berlin)",
                        self.scheduler.timezone
                    ),
                )
            })?;
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| ConfigError::new("log.level", format!("not a tracing filter ({e})")))?;
        check_metrics_token(self.metrics.bearer_token.expose())?;
        placeholder::check(self)?;
        self.meta.validate(self.provider, self.is_production())?;
        self.check_jwt_secret()
    }

    /// `stats.lookback_days` within one job's range and only with `latest`; `stats.raw_retention`
    /// long enough that no fold in flight can lose its rows.
    fn validate_stats(&self) -> Result<(), ConfigError> {
        // Meta reports day-to-date totals: summing two syncs of one day would double them.
        // Checked before the lookback, whose Meta default (28) also needs `latest`: the line
        // must name the setting to change, not the default the operator never wrote.
        if self.provider == ProviderKind::Meta && self.stats.aggregation == Aggregation::Sum {
            return Err(ConfigError::new(
                "stats.aggregation",
                "is \"sum\" but provider = \"meta\" reports cumulative day-to-date numbers; \
                 set stats.aggregation = \"latest\"",
            ));
        }
        let lookback_days = self.lookback_days();
        let most = crate::domain::MAX_RANGE_DAYS;
        if i64::from(lookback_days) > most {
            return Err(ConfigError::new(
                "stats.lookback_days",
                format!("must be at most {most} (one job's range), or 0 for no lookback"),
            ));
        }
        // Under `sum` a re-synced day adds the fresh snapshot to what it already holds: every
        // lookback would inflate the last N days again. Refused rather than warned about, since
        // the damage is silent and cannot be undone from the daily rows.
        if lookback_days > 0 && self.stats.aggregation == Aggregation::Sum {
            return Err(ConfigError::new(
                "stats.lookback_days",
                "needs stats.aggregation = \"latest\": under \"sum\" each re-sync would add the \
                 day's numbers again",
            ));
        }
        if self.stats.lookback_hour > 23 {
            return Err(ConfigError::new(
                "stats.lookback_hour",
                format!(
                    "must be an hour of the day, 0 to 23: it is {}",
                    self.stats.lookback_hour
                ),
            ));
        }
        if self.stats.raw_retention < MIN_RAW_RETENTION {
            return Err(ConfigError::new(
                "stats.raw_retention",
                "must be at least 2d, so the raw rows of today's syncs are never deleted",
            ));
        }
        Ok(())
    }

    /// Fails closed: a service others can reach (any address but loopback), or one in production
    /// mode, must have its own secret of at least [`MIN_JWT_SECRET_BYTES`] bytes; with the shipped
    /// default anyone could mint a token for any seller. Loopback-only development keeps the
    /// default so a newcomer runs the service with no setup.
    fn check_jwt_secret(&self) -> Result<(), ConfigError> {
        let exposed = !is_loopback_host(&self.server.host);
        if !exposed && !self.is_production() {
            return Ok(());
        }
        let why = if exposed {
            format!("the service listens on {}", self.server.host)
        } else {
            "ADS_STATS_ENV=production".to_string()
        };
        let secret = self.auth.jwt_secret.expose();
        let problem = if secret.trim().is_empty() {
            "is missing"
        } else if secret == DEFAULT_JWT_SECRET {
            "is the shipped default"
        } else if secret.len() < MIN_JWT_SECRET_BYTES {
            "is shorter than 32 bytes"
        } else {
            return Ok(());
        };
        Err(ConfigError::new(
            "auth.jwt_secret",
            format!(
                "{problem} and {why}; set JWT_SECRET to a random value of at least \
                 {MIN_JWT_SECRET_BYTES} bytes (e.g. `openssl rand -hex 32`)"
            ),
        ))
    }
}

/// The shortest JWT secret accepted on a reachable or production service: HS256 keys shorter
/// than the hash output (32 bytes) are guessable offline from one token.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// The shortest scrape token accepted: a short one could be guessed by trying.
pub const MIN_METRICS_TOKEN_BYTES: usize = 16;

/// An empty token turns the check off; any other must be one that a scraper can send in an
/// `Authorization: Bearer` header (visible ASCII, no spaces: anything else would never match and
/// lock every scraper out) and long enough not to be guessed.
fn check_metrics_token(token: &str) -> Result<(), ConfigError> {
    const KEY: &str = "metrics.bearer_token";
    if token.is_empty() {
        return Ok(());
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::new(
            KEY,
            "may only hold visible ASCII characters without spaces (it is sent in an HTTP header)",
        ));
    }
    if token.len() < MIN_METRICS_TOKEN_BYTES {
        return Err(ConfigError::new(
            KEY,
            format!(
                "is shorter than {MIN_METRICS_TOKEN_BYTES} bytes; use a random value such as \
                 `openssl rand -hex 32`, or leave it empty for no token"
            ),
        ));
    }
    Ok(())
}

/// `127.0.0.1`, `::1`, any 127.x address and `localhost` answer only on this machine.
/// Fills in the settings whose default depends on another one (`stats.lookback_days` on
/// `provider`) where no layer set them, so `ads-stats config` prints the value the service runs
/// with. An invalid `provider` is left for extraction to report.
fn with_provider_defaults(figment: Figment) -> Figment {
    if figment.find_value("stats.lookback_days").is_ok() {
        return figment;
    }
    let Ok(provider) = figment.extract_inner::<ProviderKind>("provider") else {
        return figment;
    };
    figment.join(figment::providers::Serialized::default(
        "stats.lookback_days",
        default_lookback_days(provider),
    ))
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn positive(key: &str, value: usize) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::new(key, "must be at least 1"));
    }
    Ok(())
}

fn nonzero(key: &str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(ConfigError::new(key, "must be longer than 0s"));
    }
    Ok(())
}

fn figment_error(error: figment::Error) -> ConfigError {
    use figment::error::Kind;
    let mut path = error.path.clone();
    let problem = match &error.kind {
        Kind::UnknownField(field, _) => {
            if path.last() != Some(field) {
                path.push(field.clone());
            }
            "is not a known key".to_string()
        }
        Kind::MissingField(field) => {
            if path.last().map(String::as_str) != Some(field.as_ref()) {
                path.push(field.to_string());
            }
            "is missing".to_string()
        }
        other => other.to_string(),
    };
    let key = if path.is_empty() {
        "config".to_string()
    } else {
        path.join(".")
    };
    let source = match &error.metadata {
        Some(meta) => match &meta.source {
            Some(source) => format!(" (from {source})"),
            None => format!(" (from {})", meta.name),
        },
        None => String::new(),
    };
    ConfigError::new(key, format!("{problem}{source}"))
}

/// A duration as settings and the command line write it: "30s", "5m", "2h", "7d" (whitespace
/// around it ignored). The error is one sentence naming the value.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration ({e}); use e.g. \"30s\""))
}

/// Durations in settings are human strings ("30s", "5m") or whole seconds.
mod duration {
    use serde::{de, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a duration such as \"30s\", \"5m\", \"7d\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                super::parse_duration(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Ok(Duration::from_secs(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                u64::try_from(v)
                    .map(Duration::from_secs)
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_pick_the_backend() {
        assert!(matches!(
            DatabaseUrl::parse("postgres://postgres@127.0.0.1:5432/x"),
            Ok(DatabaseUrl::Postgres(_))
        ));
        assert!(matches!(
            DatabaseUrl::parse("postgresql://u@h/db"),
            Ok(DatabaseUrl::Postgres(_))
        ));
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/a.db"),
            Ok(DatabaseUrl::Sqlite("data/a.db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("/tmp/x.db"),
            Ok(DatabaseUrl::Sqlite("/tmp/x.db".into()))
        );
        assert!(DatabaseUrl::parse("mysql://h/db").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
        assert!(DatabaseUrl::parse("postgres://h:notaport/db").is_err());
    }

    #[test]
    fn compiled_in_defaults_are_valid() {
        let s = Settings::defaults_with(|_| {}).expect("defaults load");
        assert_eq!(s.server.port, 3000);
        assert_eq!(s.jobs.concurrency, 5);
        assert_eq!(s.jobs.max_in_flight, 50);
        assert_eq!(s.jobs.in_flight(), 50);
        assert_eq!(s.stats.aggregation, Aggregation::Sum);
        assert_eq!(s.jobs.timeout, Duration::from_secs(300));
    }

    #[test]
    fn max_in_flight_is_zero_or_at_least_the_write_slots() {
        let key = |adjust: fn(&mut Settings)| Settings::defaults_with(adjust).map_err(|e| e.key);
        assert_eq!(
            key(|s| s.jobs.max_in_flight = 4).unwrap_err(),
            "jobs.max_in_flight"
        );
        assert!(key(|s| s.jobs.max_in_flight = 5).is_ok());
        let off = Settings::defaults_with(|s| s.jobs.max_in_flight = 0).unwrap();
        assert_eq!(off.jobs.in_flight(), 5);
    }

    #[test]
    fn stats_defaults_and_their_limits() {
        let s = Settings::defaults_with(|_| {}).unwrap();
        assert_eq!(s.stats.lookback_days, None);
        assert_eq!(s.lookback_days(), 0, "the mock's default");
        assert_eq!(s.stats.lookback_hour, 4);
        assert_eq!(s.stats.raw_retention, Duration::from_secs(35 * 86_400));
        let key = |adjust: fn(&mut Settings)| Settings::defaults_with(adjust).map_err(|e| e.key);
        // A lookback only makes sense where a re-synced day replaces the old snapshot.
        assert_eq!(
            key(|s| s.stats.lookback_days = Some(3)).unwrap_err(),
            "stats.lookback_days"
        );
        assert!(key(|s| {
            s.stats.aggregation = Aggregation::Latest;
            s.stats.lookback_days = Some(93);
        })
        .is_ok());
        assert_eq!(
            key(|s| {
                s.stats.aggregation = Aggregation::Latest;
                s.stats.lookback_days = Some(94);
            })
            .unwrap_err(),
            "stats.lookback_days"
        );
        assert!(key(|s| s.stats.lookback_hour = 0).is_ok());
        assert!(key(|s| s.stats.lookback_hour = 23).is_ok());
        assert_eq!(
            key(|s| s.stats.lookback_hour = 24).unwrap_err(),
            "stats.lookback_hour"
        );
        assert_eq!(
            key(|s| s.stats.raw_retention = Duration::from_secs(86_400)).unwrap_err(),
            "stats.raw_retention"
        );
        assert!(key(|s| s.stats.raw_retention = MIN_RAW_RETENTION).is_ok());
    }

    #[test]
    fn lookback_days_defaults_by_provider_and_an_explicit_value_wins() {
        let meta = |s: &mut Settings| {
            s.provider = ProviderKind::Meta;
            s.stats.aggregation = Aggregation::Latest;
        };
        // A Meta service with every other setting at its default starts, with 28 days.
        let s = Settings::defaults_with(meta).unwrap();
        assert_eq!(s.lookback_days(), 28);
        let s = Settings::defaults_with(|s| {
            meta(s);
            s.stats.lookback_days = Some(0);
        })
        .unwrap();
        assert_eq!(
            s.lookback_days(),
            0,
            "an explicit 0 turns Meta's lookback off"
        );
        let s = Settings::defaults_with(|s| {
            meta(s);
            s.stats.lookback_days = Some(7);
        })
        .unwrap();
        assert_eq!(s.lookback_days(), 7);
        // Meta under `sum` is refused naming the aggregation, not the lookback it implies.
        let err = Settings::defaults_with(|s| s.provider = ProviderKind::Meta).unwrap_err();
        assert_eq!(err.key, "stats.aggregation");

        // Loading resolves the default into the layers, so `ads-stats config` shows it.
        let layered = |toml: &str| {
            let figment = with_provider_defaults(
                Figment::from(Toml::string(DEFAULT_TOML)).merge(Toml::string(toml)),
            );
            figment.extract_inner::<u32>("stats.lookback_days").unwrap()
        };
        assert_eq!(layered(""), 0);
        assert_eq!(
            layered("provider = \"meta\"\n[stats]\naggregation = \"latest\"\n"),
            28
        );
        assert_eq!(
            layered("provider = \"meta\"\n[stats]\naggregation = \"latest\"\nlookback_days = 3\n"),
            3
        );
        assert_eq!(layered("[stats]\nlookback_days = 5\n"), 5);
    }

    #[test]
    fn every_file_in_config_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("config dir") {
            let path = entry.expect("entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                continue;
            }
            seen += 1;
            let figment = Figment::from(Toml::string(DEFAULT_TOML)).merge(Toml::file(&path));
            let mut settings: Settings = figment
                .extract()
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
            settings.auth.jwt_secret = Secret::new(REAL_SECRET);
            settings
                .validate()
                .unwrap_or_else(|e| panic!("{} is invalid: {e}", path.display()));
        }
        assert!(seen >= 2, "expected default.toml and production.toml");
    }

    const REAL_SECRET: &str = "0123456789abcdef0123456789abcdef-private";

    #[test]
    fn production_refuses_the_default_secret() {
        let mut s = Settings::defaults_with(|_| {}).unwrap();
        s.environment = "production".into();
        let err = s.validate().unwrap_err();
        assert_eq!(err.key, "auth.jwt_secret");
        s.auth.jwt_secret = Secret::new("");
        assert_eq!(s.validate().unwrap_err().key, "auth.jwt_secret");
        s.auth.jwt_secret = Secret::new("something-long-and-private");
        assert_eq!(s.validate().unwrap_err().key, "auth.jwt_secret");
        s.auth.jwt_secret = Secret::new(REAL_SECRET);
        s.validate().expect("a real secret passes");
    }

    #[test]
    fn a_reachable_service_refuses_a_weak_secret_in_any_environment() {
        for host in ["0.0.0.0", "::", "10.1.2.3", "ads.example.com"] {
            let mut s = Settings::defaults_with(|_| {}).unwrap();
            s.server.host = host.into();
            assert!(!s.is_production());
            let err = s.validate().unwrap_err();
            assert_eq!(err.key, "auth.jwt_secret", "{host}");
            assert!(err.problem.contains("default"), "{}", err.problem);
            s.auth.jwt_secret = Secret::new("a".repeat(MIN_JWT_SECRET_BYTES - 1));
            assert!(s.validate().unwrap_err().problem.contains("32 bytes"));
            s.auth.jwt_secret = Secret::new(REAL_SECRET);
            s.validate().expect("a long secret passes");
        }
        for host in ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"] {
            let mut s = Settings::defaults_with(|_| {}).unwrap();
            s.server.host = host.into();
            s.validate()
                .expect("loopback keeps the development default");
        }
    }

    #[test]
    fn the_refusal_never_prints_the_secret() {
        let mut s = Settings::defaults_with(|_| {}).unwrap();
        s.server.host = "0.0.0.0".into();
        s.auth.jwt_secret = Secret::new("short-but-secret");
        let err = s.validate().unwrap_err().to_string();
        assert!(!err.contains("short-but-secret"), "{err}");
    }

    #[test]
    fn a_metrics_token_is_empty_or_usable_and_never_printed() {
        let mut s = Settings::defaults_with(|_| {}).unwrap();
        assert!(s.metrics.enabled);
        assert_eq!(s.metrics.bearer_token.expose(), "", "no token by default");
        for bad in [
            "short-secret",
            "has a space in it, long enough",
            "tab\tinside-long-enough",
        ] {
            s.metrics.bearer_token = Secret::new(bad);
            let err = s.validate().unwrap_err();
            assert_eq!(err.key, "metrics.bearer_token", "{bad}");
            assert!(!err.to_string().contains(bad), "{err}");
        }
        s.metrics.bearer_token = Secret::new("0123456789abcdef");
        s.validate().expect("16 visible bytes pass");
    }

    #[test]
    fn figment_errors_name_the_key() {
        let figment = Figment::from(Toml::string(DEFAULT_TOML))
            .merge(Toml::string("[jobs]\nconcurency = 3\n"));
        let err = figment
            .extract::<Settings>()
            .map_err(figment_error)
            .unwrap_err();
        assert_eq!(err.key, "jobs.concurency");

        let figment = Figment::from(Toml::string(DEFAULT_TOML))
            .merge(Toml::string("[server]\nport = 70000\n"));
        let err = figment
            .extract::<Settings>()
            .map_err(figment_error)
            .unwrap_err();
        assert_eq!(err.key, "server.port");

        let figment = Figment::from(Toml::string(DEFAULT_TOML))
            .merge(Toml::string("[stats]\naggregation = \"avg\"\n"));
        let err = figment
            .extract::<Settings>()
            .map_err(figment_error)
            .unwrap_err();
        assert_eq!(err.key, "stats.aggregation");
    }
}
