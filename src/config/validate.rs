//! The checks serde cannot make: ranges, settings that depend on each other, URLs, the cron
//! expression and time zone, and secrets that must not be the shipped default.

use std::time::Duration;

use super::{
    parse_cron, placeholder, Aggregation, ConfigError, DatabaseUrl, ProviderKind, Settings,
    MIN_RAW_RETENTION,
};

/// The JWT secret shipped in `config/default.toml`; production refuses it.
pub const DEFAULT_JWT_SECRET: &str = "dev-only-insecure-secret";

impl Settings {
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
        check_otlp_endpoint(&self.telemetry.otlp_endpoint)?;
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
pub(super) fn is_loopback_host(host: &str) -> bool {
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub(super) fn positive(key: &str, value: usize) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::new(key, "must be at least 1"));
    }
    Ok(())
}

pub(super) fn nonzero(key: &str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(ConfigError::new(key, "must be longer than 0s"));
    }
    Ok(())
}

/// `telemetry.otlp_endpoint`: empty (off), or an http(s) URL with a host and no credentials
/// (`ads-stats config` prints it; a collector's token goes in `OTEL_EXPORTER_OTLP_HEADERS`).
fn check_otlp_endpoint(endpoint: &str) -> Result<(), ConfigError> {
    const KEY: &str = "telemetry.otlp_endpoint";
    let endpoint = endpoint.trim();
    if endpoint.is_empty() {
        return Ok(());
    }
    let url = reqwest::Url::parse(endpoint).map_err(|e| {
        ConfigError::new(
            KEY,
            format!("is not a URL ({e}); expected e.g. http://127.0.0.1:4318"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::new(
            KEY,
            "must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:4318",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::new(
            KEY,
            "must not carry credentials; pass a collector token in OTEL_EXPORTER_OTLP_HEADERS",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(KEY, "must have no query or fragment"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Secret, REAL_SECRET};

    #[test]
    fn otlp_endpoint_is_off_or_a_plain_http_url() {
        let key = |endpoint: &'static str| {
            Settings::defaults_with(move |s| s.telemetry.otlp_endpoint = endpoint.into())
                .map(|s| s.telemetry.traces_url())
                .map_err(|e| (e.key, e.problem))
        };
        assert_eq!(key("").unwrap(), None, "off by default");
        assert_eq!(
            key("http://127.0.0.1:4318").unwrap().as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(
            key("https://otel.internal:4318/").unwrap().as_deref(),
            Some("https://otel.internal:4318/v1/traces")
        );
        assert_eq!(
            key("http://collector/v1/traces").unwrap().as_deref(),
            Some("http://collector/v1/traces"),
            "a full URL is kept"
        );
        for bad in [
            "127.0.0.1:4318",
            "localhost:4318",
            "grpc://127.0.0.1:4317",
            "http://",
            "http://user:pw@collector:4318",
            "http://collector:4318?x=1",
            "not a url",
        ] {
            let (k, problem) = key(bad).unwrap_err();
            assert_eq!(k, "telemetry.otlp_endpoint", "{bad}");
            assert!(!problem.contains('\n'), "one line: {problem}");
            assert!(!problem.contains("pw"), "no credentials echoed: {problem}");
        }
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
        // The provider bound follows: never more requests waiting than jobs claimed.
        assert_eq!(off.jobs.provider_requests(), 5);
        let all = Settings::defaults_with(|s| s.jobs.max_provider_requests = 0).unwrap();
        assert_eq!(all.jobs.provider_requests(), all.jobs.in_flight());
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
}
