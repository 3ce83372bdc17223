//! What one sync does: find the delivering entities, ask the provider, then in one transaction
//! append raw rows, fold them into daily rows and roll campaigns up to sellpages.
//!
//! [`Pipeline::fetch`] does the slow outbound part holding no database connection;
//! [`Pipeline::commit`] writes everything (and, for a queued job, its completion mark) atomically;
//! [`Pipeline::commit_batch`] does it for several jobs in one transaction (a group commit).

mod accounts;
mod commit;
pub mod entities;
mod faults;
mod fetch;
mod request;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::db::Db;
use crate::domain::Aggregation;
use crate::providers::StatProvider;
use crate::telemetry::Metrics;

pub use faults::{FaultPoint, Faults};

pub use crate::domain::MAX_RANGE_DAYS;
pub use accounts::log_account_read;
pub use request::{Fetched, PipelineError, SyncRequest, SyncSummary};

#[derive(Clone)]
pub struct Pipeline {
    db: Db,
    provider: Arc<dyn StatProvider>,
    aggregation: Aggregation,
    faults: Arc<Faults>,
    /// `meta.account_refresh`: how long an account read holds before the next is due.
    account_refresh: Duration,
    /// Where provider requests are counted (a registry nobody scrapes until `with_metrics`).
    metrics: Metrics,
    /// What [`Pipeline::commit_batch`] committed, for tests and benchmarks.
    group_commits: Arc<GroupCommits>,
}

/// Group commits of several jobs: those that committed (how many, how many jobs, the largest)
/// and those rolled back, whose jobs were then written one by one.
#[derive(Debug, Default)]
struct GroupCommits {
    batches: AtomicU64,
    jobs: AtomicU64,
    largest: AtomicU64,
    rolled_back: AtomicU64,
}

impl GroupCommits {
    fn record(&self, jobs: usize) {
        let jobs = jobs as u64;
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.jobs.fetch_add(jobs, Ordering::Relaxed);
        self.largest.fetch_max(jobs, Ordering::Relaxed);
    }

    fn rolled_back(&self) {
        self.rolled_back.fetch_add(1, Ordering::Relaxed);
    }
}

/// A snapshot of the group commits so far ([`Pipeline::group_commits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupCommitCounts {
    /// Transactions that committed two jobs or more.
    pub batches: u64,
    /// Jobs those transactions committed.
    pub jobs: u64,
    /// The most jobs one of them committed.
    pub largest: u64,
    /// Group commits rolled back (a job of them failed), whose jobs were then written alone.
    pub rolled_back: u64,
}

impl Pipeline {
    pub fn new(db: Db, provider: Arc<dyn StatProvider>, aggregation: Aggregation) -> Self {
        Self {
            db,
            provider,
            aggregation,
            faults: Arc::default(),
            account_refresh: Duration::from_secs(24 * 3600),
            metrics: Metrics::new(),
            group_commits: Arc::default(),
        }
    }

    /// Counts provider requests in the service's metrics.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Sets `meta.account_refresh` (24 hours until then).
    pub fn with_account_refresh(mut self, refresh: Duration) -> Self {
        self.account_refresh = refresh;
        self
    }

    /// Test hook: failures to inject inside the write transaction.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Test and benchmark hook: the group commits of several jobs that committed so far (one
    /// job written alone is not one), to show that contended writes share transactions.
    pub fn group_commits(&self) -> GroupCommitCounts {
        let c = &self.group_commits;
        GroupCommitCounts {
            batches: c.batches.load(Ordering::Relaxed),
            jobs: c.jobs.load(Ordering::Relaxed),
            largest: c.largest.load(Ordering::Relaxed),
            rolled_back: c.rolled_back.load(Ordering::Relaxed),
        }
    }

    /// Fetches and writes in one go, outside the job queue (the `sync` command).
    pub async fn run(&self, request: &SyncRequest) -> Result<SyncSummary, PipelineError> {
        let fetched = self.fetch(request).await?;
        self.commit(fetched, None).await
    }

    /// The provider's name (`ad_stats_raw.provider`, the metrics' `provider` label).
    pub fn provider_name(&self) -> &'static str {
        self.provider.name()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
