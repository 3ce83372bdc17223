//! The metrics that answer "which sellers' numbers are stale, and why?": provider requests by
//! outcome and their latency, recorded where the pipeline calls the provider, and the
//! connection, freshness and schedule gauges a scrape reads from the database.
//!
//! Registered into the one registry by [`super::metrics::Metrics::new`]; the other parts record
//! through the `Metrics` handle, never through this type.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::providers::ProviderError;

/// A provider request takes tens of milliseconds (the mock) to the Meta client's timeout with
/// its pages and retries (tens of seconds).
const PROVIDER_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How a provider request ended, as the `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderOutcome {
    /// The provider answered with data.
    Ok,
    /// The provider limited us (an account's or the app's usage, a rate limit): the job waits.
    Throttled,
    /// The token expired, was revoked or lacks a permission: only an operator helps.
    Auth,
    /// Anything else: network, timeouts, 5xx, a rejected or malformed answer.
    Error,
}

impl ProviderOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderOutcome::Ok => "ok",
            ProviderOutcome::Throttled => "throttled",
            ProviderOutcome::Auth => "auth",
            ProviderOutcome::Error => "error",
        }
    }

    /// The outcome of a request that failed with `error`.
    pub fn of(error: &ProviderError) -> Self {
        match error {
            ProviderError::Throttled { .. }
            | ProviderError::AppThrottled { .. }
            | ProviderError::RateLimited(_) => ProviderOutcome::Throttled,
            ProviderError::TokenExpired { .. } | ProviderError::PermissionDenied { .. } => {
                ProviderOutcome::Auth
            }
            ProviderError::Request(_)
            | ProviderError::NotConnected { .. }
            | ProviderError::Rejected(_)
            | ProviderError::Malformed(_)
            | ProviderError::Settings(_) => ProviderOutcome::Error,
        }
    }
}

/// What a scrape read from the database about connections and the schedule.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpsGauges {
    /// (provider, status, count) for every pair that has connections.
    pub connections: Vec<(String, String, i64)>,
    /// ACTIVE connections paused by a provider's usage limits now.
    pub paused: i64,
    /// Age of the oldest "latest successful sync of today" among ACTIVE connections.
    pub freshness_seconds: f64,
    /// Scheduled jobs of an earlier cron mark still run or wait for a worker after a newer mark
    /// ticked.
    pub schedule_behind: bool,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderOutcomeLabels {
    provider: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabels {
    provider: String,
    status: String,
}

#[derive(Clone)]
struct ProviderBuckets;

impl MetricConstructor<Histogram> for ProviderBuckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(PROVIDER_BUCKETS)
    }
}

/// A gauge that is absent from a scrape while its value is unknown (the database did not answer).
type MaybeGauge<N = i64, A = std::sync::atomic::AtomicI64> =
    Family<Vec<(&'static str, &'static str)>, Gauge<N, A>>;
const NO_LABELS: Vec<(&'static str, &'static str)> = Vec::new();

pub(super) struct OpsMetrics {
    provider_requests: Family<ProviderOutcomeLabels, Counter>,
    provider_duration: Family<ProviderLabels, Histogram, ProviderBuckets>,
    connections: Family<ConnectionLabels, Gauge>,
    /// Every (provider, status) pair a scrape has shown: a pair whose last connection left it
    /// shows 0 rather than vanishing, so an alert on it resolves instead of going stale.
    connection_pairs: Mutex<HashSet<ConnectionLabels>>,
    paused: MaybeGauge,
    freshness: MaybeGauge<f64, AtomicU64>,
    behind: MaybeGauge,
    http_errors: Family<CodeLabels, Counter>,
}

impl OpsMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let provider_requests = Family::<ProviderOutcomeLabels, Counter>::default();
        registry.register(
            "provider_requests",
            "Provider requests (one per fetch of a job, and per account read), by provider and outcome (ok, throttled, auth, error)",
            provider_requests.clone(),
        );
        let provider_duration = Family::new_with_constructor(ProviderBuckets);
        registry.register_with_unit(
            "provider_request_duration",
            "Wall time of a provider request (a fetch with all its pages, or an account read), by provider",
            Unit::Seconds,
            provider_duration.clone(),
        );
        let connections = Family::<ConnectionLabels, Gauge>::default();
        registry.register(
            "connections",
            "Ad connections in the database, by provider and status (ACTIVE, EXPIRED, REVOKED…), read at scrape time",
            connections.clone(),
        );
        let paused = MaybeGauge::default();
        registry.register(
            "connections_paused",
            "ACTIVE ad connections paused by a provider's usage limits now, read at scrape time",
            paused.clone(),
        );
        let freshness = MaybeGauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "stats_freshness",
            "Age of the oldest latest successful sync of today among ACTIVE connections (a connection without one counts from the start of its local day), read at scrape time",
            Unit::Seconds,
            freshness.clone(),
        );
        let behind = MaybeGauge::default();
        registry.register(
            "schedule_behind",
            "1 when scheduled jobs of an earlier cron mark still run, or wait for a worker although due, after a newer mark was ticked, else 0; read at scrape time",
            behind.clone(),
        );
        let http_errors = Family::<CodeLabels, Counter>::default();
        registry.register(
            "http_errors",
            "HTTP answers with an error body, by its code (database_busy, database_unavailable, queue_full…)",
            http_errors.clone(),
        );
        // The database's 503s, which the rules alert on, exist from the first scrape.
        for code in ["database_busy", "database_unavailable"] {
            let _ = http_errors.get_or_create(&CodeLabels { code });
        }
        // The configured provider's series exist from the first scrape, so `rate()` sees the
        // first request rather than a series that appears out of nowhere.
        for provider in ["mock", "meta"] {
            for outcome in ["ok", "throttled", "auth", "error"] {
                let _ =
                    provider_requests.get_or_create(&ProviderOutcomeLabels { provider, outcome });
            }
        }
        Self {
            provider_requests,
            provider_duration,
            connections,
            connection_pairs: Mutex::default(),
            paused,
            freshness,
            behind,
            http_errors,
        }
    }

    pub(super) fn http_error(&self, code: &'static str) {
        self.http_errors.get_or_create(&CodeLabels { code }).inc();
    }

    pub(super) fn provider_request(
        &self,
        provider: &'static str,
        outcome: ProviderOutcome,
        duration: Duration,
    ) {
        self.provider_requests
            .get_or_create(&ProviderOutcomeLabels {
                provider,
                outcome: outcome.as_str(),
            })
            .inc();
        self.provider_duration
            .get_or_create(&ProviderLabels { provider })
            .observe(duration.as_secs_f64());
    }

    /// `None`: the database did not answer, and the gauges are left out of this scrape.
    pub(super) fn set(&self, gauges: Option<&OpsGauges>) {
        let Some(gauges) = gauges else {
            self.connections.clear();
            self.paused.clear();
            self.freshness.clear();
            self.behind.clear();
            return;
        };
        let Ok(mut pairs) = self.connection_pairs.lock() else {
            return;
        };
        let now: HashSet<ConnectionLabels> = gauges
            .connections
            .iter()
            .map(|(provider, status, _)| ConnectionLabels {
                // Stored upper case (`META`); the label matches the provider metrics' `meta`.
                provider: provider.to_ascii_lowercase(),
                status: status.clone(),
            })
            .collect();
        for gone in pairs.difference(&now) {
            self.connections.get_or_create(gone).set(0);
        }
        for (provider, status, n) in &gauges.connections {
            let labels = ConnectionLabels {
                provider: provider.to_ascii_lowercase(),
                status: status.clone(),
            };
            self.connections.get_or_create(&labels).set(*n);
            pairs.insert(labels);
        }
        self.paused.get_or_create(&NO_LABELS).set(gauges.paused);
        self.freshness
            .get_or_create(&NO_LABELS)
            .set(gauges.freshness_seconds);
        self.behind
            .get_or_create(&NO_LABELS)
            .set(i64::from(gauges.schedule_behind));
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDateTime;

    use super::*;
    use crate::config::Secret;

    #[test]
    fn unknown_gauges_are_left_out_and_gone_statuses_show_zero() {
        let metrics = crate::telemetry::Metrics::new();
        let text = || {
            metrics
                .encode(crate::telemetry::metrics::Format::Prometheus)
                .unwrap()
        };
        let expired = |n: i64| OpsGauges {
            connections: vec![
                ("META".into(), "ACTIVE".into(), 3),
                ("META".into(), "EXPIRED".into(), n),
            ],
            paused: 1,
            freshness_seconds: 90.5,
            schedule_behind: true,
        };
        metrics.set_ops(Some(&expired(2)));
        let scraped = text();
        for line in [
            "ads_stats_connections{provider=\"meta\",status=\"EXPIRED\"} 2",
            "ads_stats_connections_paused 1",
            "ads_stats_stats_freshness_seconds 90.5",
            "ads_stats_schedule_behind 1",
        ] {
            assert!(
                scraped.lines().any(|l| l == line),
                "no `{line}` in\n{scraped}"
            );
        }
        // The database did not answer: nothing shown rather than stale numbers.
        metrics.set_ops(None);
        let scraped = text();
        for name in [
            "ads_stats_connections{",
            "ads_stats_connections_paused ",
            "ads_stats_stats_freshness_seconds ",
            "ads_stats_schedule_behind ",
        ] {
            assert!(!scraped.lines().any(|l| l.starts_with(name)), "{scraped}");
        }
        // The EXPIRED connection got its token back: the pair shows 0.
        let mut fixed = expired(0);
        fixed.connections.pop();
        metrics.set_ops(Some(&fixed));
        let scraped = text();
        let line = "ads_stats_connections{provider=\"meta\",status=\"EXPIRED\"} 0";
        assert!(scraped.lines().any(|l| l == line), "{scraped}");
    }

    #[test]
    fn provider_errors_map_to_the_four_outcomes() {
        let until = NaiveDateTime::default();
        let c = || "c1".to_string();
        let d = || "why".to_string();
        let cases = [
            (ProviderError::RateLimited(d()), "throttled"),
            (
                ProviderError::Throttled {
                    connection_id: c(),
                    until: None,
                    detail: d(),
                },
                "throttled",
            ),
            (
                ProviderError::AppThrottled {
                    connection_id: c(),
                    until,
                    detail: d(),
                },
                "throttled",
            ),
            (
                ProviderError::TokenExpired {
                    connection_id: c(),
                    sealed_token: Secret::new("x"),
                    detail: d(),
                },
                "auth",
            ),
            (
                ProviderError::PermissionDenied {
                    connection_id: c(),
                    sealed_token: Secret::new("x"),
                    detail: d(),
                },
                "auth",
            ),
            (ProviderError::Request(d()), "error"),
            (
                ProviderError::NotConnected {
                    connection_id: c(),
                    detail: d(),
                },
                "error",
            ),
            (ProviderError::Rejected(d()), "error"),
            (ProviderError::Malformed(d()), "error"),
        ];
        for (error, outcome) in cases {
            assert_eq!(ProviderOutcome::of(&error).as_str(), outcome, "{error}");
        }
    }
}
