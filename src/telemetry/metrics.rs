//! Prometheus metrics: the process's one registry, and [`Metrics`], the small cloneable handle the
//! other parts record through.
//!
//! Nothing outside this file formats exposition text or touches the registry: the job runtime, the
//! scheduler and the HTTP middleware call the handle's `record` methods, and `GET /metrics` asks it
//! to [`Metrics::encode`]. Values that only mean something at scrape time (queue depth, pool
//! state) are handed in by the scrape itself, so no background task polls for them.
//!
//! Names follow Prometheus conventions: every name starts with `ads_stats_`, counters end in
//! `_total`, durations are `_seconds` and timestamps `_timestamp_seconds`. Label values come from
//! small fixed sets (levels, outcomes, route patterns, status codes), never from ids.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::ops::{OpsGauges, OpsMetrics, ProviderOutcome};

/// Job durations run from milliseconds (a small mock sync) to `jobs.timeout` (5 minutes by default).
const JOB_BUCKETS: [f64; 14] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
/// A tick is a query and one insert transaction: milliseconds, seconds when the database struggles.
const TICK_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];
/// Prometheus's own default buckets: what dashboards for HTTP latency expect.
const HTTP_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The route label of a request that matched no route: paths of 404s are whatever a client (or a
/// scanner) typed, and as labels they would grow the series without bound.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// How a job's run ended, as the `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// Stats written and the job marked SUCCEEDED.
    Succeeded,
    /// The attempt failed and a retry is scheduled.
    Retried,
    /// The attempt failed and it was the last one: the job is FAILED.
    Failed,
    /// Handed back to the queue at shutdown, the attempt not counted.
    Released,
    /// Taken back by the sweeper while running (this process looked dead); its writes were
    /// rolled back and another run owns the job.
    LeaseLost,
}

impl JobOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Succeeded => "succeeded",
            JobOutcome::Retried => "retried",
            JobOutcome::Failed => "failed",
            JobOutcome::Released => "released",
            JobOutcome::LeaseLost => "lease_lost",
        }
    }
}

/// Which format a scraper asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The classic Prometheus text format, version 0.0.4: what every scraper reads.
    Prometheus,
    /// OpenMetrics 1.0 text, which Prometheus asks for first in its `Accept` header.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The connection pool as a scrape sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolGauges {
    /// Connections open now.
    pub size: usize,
    /// Open connections idle in the pool.
    pub available: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
    /// Most connections the pool may open (`database.pool_size`).
    pub max_size: usize,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    level: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TickLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabels {
    tier: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

/// A gauge that is absent from a scrape while its value is unknown (the queue counts when the
/// database does not answer), rather than showing a stale number as if it were current.
type MaybeGauge = Family<Vec<(&'static str, &'static str)>, Gauge>;
const NO_LABELS: Vec<(&'static str, &'static str)> = Vec::new();

#[derive(Clone)]
struct Buckets(&'static [f64]);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

/// The handle every part records through; clones share one registry.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    jobs_finished: Family<JobLabels, Counter>,
    job_duration: Family<JobLabels, Histogram, Buckets>,
    jobs_queued: MaybeGauge,
    jobs_running: MaybeGauge,
    ticks: Family<TickLabels, Counter>,
    last_tick: Gauge<f64, std::sync::atomic::AtomicU64>,
    tick_duration: Histogram,
    rows_written: Family<TierLabels, Counter>,
    rollup_currency_conflicts: Counter,
    unmatched_rows: Family<ProviderLabels, Counter>,
    http_requests: Family<RequestLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram, Buckets>,
    pool_size: Gauge,
    pool_available: Gauge,
    pool_waiting: Gauge,
    pool_max_size: Gauge,
    ops: OpsMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A fresh registry with every metric registered (at zero), so a dashboard sees each series
    /// from the first scrape on rather than only after its first event.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ads_stats");
        let jobs_finished = Family::<JobLabels, Counter>::default();
        registry.register(
            "jobs_finished",
            "Job runs finished, by level and outcome (succeeded, retried, failed, released, lease_lost)",
            jobs_finished.clone(),
        );
        let job_duration = Family::new_with_constructor(Buckets(&JOB_BUCKETS));
        registry.register_with_unit(
            "job_duration",
            "Wall time of a job run, from claim to outcome, by level and outcome",
            Unit::Seconds,
            job_duration.clone(),
        );
        let jobs_queued = MaybeGauge::default();
        registry.register(
            "jobs_queued",
            "Job records QUEUED in the database (every instance), read at scrape time; absent when the database did not answer",
            jobs_queued.clone(),
        );
        let jobs_running = MaybeGauge::default();
        registry.register(
            "jobs_running",
            "Job records RUNNING in the database (every instance), read at scrape time; absent when the database did not answer",
            jobs_running.clone(),
        );
        let ticks = Family::<TickLabels, Counter>::default();
        registry.register(
            "scheduler_ticks",
            "Scheduler ticks, by outcome (ok, failed)",
            ticks.clone(),
        );
        let last_tick = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register_with_unit(
            "scheduler_last_tick_timestamp",
            "Cron mark of the last successful scheduler tick, in Unix time; 0 before the first",
            Unit::Seconds,
            last_tick.clone(),
        );
        let tick_duration = Histogram::new(TICK_BUCKETS);
        registry.register_with_unit(
            "scheduler_tick_duration",
            "Wall time of a scheduler tick",
            Unit::Seconds,
            tick_duration.clone(),
        );
        let rows_written = Family::<TierLabels, Counter>::default();
        registry.register(
            "rows_written",
            "Rows written by succeeded jobs, by tier (raw, daily, sellpage)",
            rows_written.clone(),
        );
        let rollup_currency_conflicts = Counter::default();
        registry.register(
            "rollup_currency_conflicts",
            "Sellpage dates left out of the rollup because their campaigns report in several currencies",
            rollup_currency_conflicts.clone(),
        );
        let unmatched_rows = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "provider_unmatched_rows",
            "Provider rows of succeeded jobs that matched no entity's external_id (left out, never written), by provider",
            unmatched_rows.clone(),
        );
        let http_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route pattern and status",
            http_requests.clone(),
        );
        let http_duration = Family::new_with_constructor(Buckets(&HTTP_BUCKETS));
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request, by method and route pattern",
            Unit::Seconds,
            http_duration.clone(),
        );
        let pool_size = Gauge::default();
        registry.register(
            "db_pool_size",
            "Database connections open now",
            pool_size.clone(),
        );
        let pool_available = Gauge::default();
        registry.register(
            "db_pool_available",
            "Open database connections idle in the pool",
            pool_available.clone(),
        );
        let pool_waiting = Gauge::default();
        registry.register(
            "db_pool_waiting",
            "Callers waiting for a database connection",
            pool_waiting.clone(),
        );
        let pool_max_size = Gauge::default();
        registry.register(
            "db_pool_max_size",
            "Most database connections the pool may open (database.pool_size)",
            pool_max_size.clone(),
        );
        let ops = OpsMetrics::register(&mut registry);
        // Series with a fixed, small label set start at zero, so `rate()` and `increase()` see
        // the first event rather than a series that appears out of nowhere.
        for tier in ["raw", "daily", "sellpage"] {
            let _ = rows_written.get_or_create(&TierLabels { tier });
        }
        for outcome in ["ok", "failed"] {
            let _ = ticks.get_or_create(&TickLabels { outcome });
        }
        for provider in ["mock", "meta"] {
            let _ = unmatched_rows.get_or_create(&ProviderLabels { provider });
        }
        Self {
            inner: Arc::new(Inner {
                registry,
                jobs_finished,
                job_duration,
                jobs_queued,
                jobs_running,
                ticks,
                last_tick,
                tick_duration,
                rows_written,
                rollup_currency_conflicts,
                unmatched_rows,
                http_requests,
                http_duration,
                pool_size,
                pool_available,
                pool_waiting,
                pool_max_size,
                ops,
            }),
        }
    }

    /// One job run ended. `level` is the record's level (`CAMPAIGN`, `ADSET`, `AD`).
    pub fn job_finished(&self, level: &str, outcome: JobOutcome, duration: Duration) {
        let labels = JobLabels {
            level: level.to_string(),
            outcome: outcome.as_str(),
        };
        self.inner.jobs_finished.get_or_create(&labels).inc();
        self.inner
            .job_duration
            .get_or_create(&labels)
            .observe(duration.as_secs_f64());
    }

    /// Rows a succeeded job wrote to each tier.
    pub fn rows_written(&self, raw: usize, daily: usize, sellpage: usize) {
        for (tier, rows) in [("raw", raw), ("daily", daily), ("sellpage", sellpage)] {
            self.inner
                .rows_written
                .get_or_create(&TierLabels { tier })
                .inc_by(rows as u64);
        }
    }

    /// Sellpage dates a succeeded job left out of the rollup (campaigns in several currencies).
    pub fn rollup_currency_conflicts(&self, n: usize) {
        self.inner.rollup_currency_conflicts.inc_by(n as u64);
    }

    /// Rows a provider sent that matched none of our entities, in a succeeded job. `provider`
    /// is the provider's name (`mock`, `meta`).
    pub fn unmatched_rows(&self, provider: &'static str, rows: u64) {
        self.inner
            .unmatched_rows
            .get_or_create(&ProviderLabels { provider })
            .inc_by(rows);
    }

    /// A scheduler tick for the cron mark `at` ended; the last-tick time moves only on success,
    /// as `/health`'s `lastTick` does.
    pub fn tick_finished(&self, at: DateTime<Utc>, duration: Duration, succeeded: bool) {
        let outcome = if succeeded { "ok" } else { "failed" };
        self.inner
            .ticks
            .get_or_create(&TickLabels { outcome })
            .inc();
        self.inner.tick_duration.observe(duration.as_secs_f64());
        if succeeded {
            self.inner
                .last_tick
                .set(at.timestamp_millis() as f64 / 1000.0);
        }
    }

    /// One HTTP request answered. `route` is the matched route pattern (`None` when no route
    /// matched); `method` is folded into a fixed set for the same reason.
    pub fn http_request(&self, method: &str, route: Option<&str>, status: u16, duration: Duration) {
        let method = known_method(method);
        let route = route.unwrap_or(UNMATCHED_ROUTE).to_string();
        self.inner
            .http_duration
            .get_or_create(&RouteLabels {
                method,
                route: route.clone(),
            })
            .observe(duration.as_secs_f64());
        self.inner
            .http_requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .inc();
    }

    /// An HTTP answer carried the error `code` (`database_busy`, `queue_full`…).
    pub fn http_error(&self, code: &'static str) {
        self.inner.ops.http_error(code);
    }

    /// The queue counts a scrape read (`None`: the database did not answer, so the two gauges
    /// are left out of this scrape).
    pub fn set_queue(&self, counts: Option<(i64, i64)>) {
        match counts {
            Some((queued, running)) => {
                self.inner.jobs_queued.get_or_create(&NO_LABELS).set(queued);
                self.inner
                    .jobs_running
                    .get_or_create(&NO_LABELS)
                    .set(running);
            }
            None => {
                self.inner.jobs_queued.clear();
                self.inner.jobs_running.clear();
            }
        }
    }

    /// One provider request ended (a job's fetch, or an account read). `provider` is the
    /// provider's name (`mock`, `meta`).
    pub fn provider_request(
        &self,
        provider: &'static str,
        outcome: ProviderOutcome,
        duration: Duration,
    ) {
        self.inner.ops.provider_request(provider, outcome, duration);
    }

    /// The connection and schedule gauges a scrape read (`None`: the database did not answer,
    /// so they are left out of this scrape, as the queue counts are).
    pub fn set_ops(&self, gauges: Option<&OpsGauges>) {
        self.inner.ops.set(gauges);
    }

    /// The pool's state as a scrape read it.
    pub fn set_pool(&self, pool: PoolGauges) {
        let as_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.inner.pool_size.set(as_i64(pool.size));
        self.inner.pool_available.set(as_i64(pool.available));
        self.inner.pool_waiting.set(as_i64(pool.waiting));
        self.inner.pool_max_size.set(as_i64(pool.max_size));
    }

    /// Every metric in the exposition `format`.
    pub fn encode(&self, format: Format) -> Result<String, fmt::Error> {
        let mut text = String::new();
        match format {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::encode(
                &mut text,
                &self.inner.registry,
            )?,
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut text, &self.inner.registry)?
            }
        }
        Ok(text)
    }
}

/// Methods outside the standard set (anyone can send `FOO /`) share one label value.
fn known_method(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, start: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(start))
    }

    #[test]
    fn names_follow_prometheus_conventions() {
        let metrics = Metrics::new();
        metrics.job_finished("CAMPAIGN", JobOutcome::Succeeded, Duration::from_millis(30));
        metrics.rows_written(4, 4, 2);
        metrics.tick_finished(
            DateTime::from_timestamp(1_700_000_000, 500_000_000).unwrap(),
            Duration::from_millis(3),
            true,
        );
        metrics.http_request("GET", Some("/health"), 200, Duration::from_millis(1));
        metrics.set_queue(Some((3, 1)));
        metrics.set_pool(PoolGauges {
            size: 2,
            available: 1,
            waiting: 0,
            max_size: 10,
        });
        let text = metrics.encode(Format::Prometheus).unwrap();
        for expected in [
            "ads_stats_jobs_finished_total{level=\"CAMPAIGN\",outcome=\"succeeded\"} 1",
            "ads_stats_job_duration_seconds_count{level=\"CAMPAIGN\",outcome=\"succeeded\"} 1",
            "ads_stats_rows_written_total{tier=\"raw\"} 4",
            "ads_stats_rows_written_total{tier=\"sellpage\"} 2",
            "ads_stats_scheduler_ticks_total{outcome=\"ok\"} 1",
            "ads_stats_scheduler_ticks_total{outcome=\"failed\"} 0",
            "ads_stats_scheduler_last_tick_timestamp_seconds 1700000000.5",
            "ads_stats_scheduler_tick_duration_seconds_count 1",
            "ads_stats_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 1",
            "ads_stats_http_request_duration_seconds_count{method=\"GET\",route=\"/health\"} 1",
            "ads_stats_jobs_queued 3",
            "ads_stats_jobs_running 1",
            "ads_stats_db_pool_size 2",
            "ads_stats_db_pool_available 1",
            "ads_stats_db_pool_waiting 0",
            "ads_stats_db_pool_max_size 10",
        ] {
            assert!(
                text.lines().any(|l| l == expected),
                "no `{expected}` in:\n{text}"
            );
        }
        assert!(line(&text, "# TYPE ads_stats_job_duration_seconds histogram").is_some());
    }

    #[test]
    fn unknown_queue_counts_leave_the_gauges_out() {
        let metrics = Metrics::new();
        metrics.set_queue(Some((3, 1)));
        metrics.set_queue(None);
        let text = metrics.encode(Format::Prometheus).unwrap();
        assert!(line(&text, "ads_stats_jobs_queued ").is_none(), "{text}");
        assert!(line(&text, "ads_stats_jobs_running ").is_none(), "{text}");
    }

    #[test]
    fn unmatched_routes_and_odd_methods_share_one_label() {
        let metrics = Metrics::new();
        metrics.http_request("BREW", None, 404, Duration::from_millis(1));
        let text = metrics.encode(Format::Prometheus).unwrap();
        let expected =
            "ads_stats_http_requests_total{method=\"OTHER\",route=\"unmatched\",status=\"404\"} 1";
        assert!(text.lines().any(|l| l == expected), "{text}");
    }

    #[test]
    fn openmetrics_ends_with_eof() {
        let text = Metrics::new().encode(Format::OpenMetrics).unwrap();
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
