//! What one sync does: find the delivering entities, ask the provider, then in one transaction
//! append raw rows, fold them into daily rows and roll campaigns up to sellpages.
//!
//! [`Pipeline::fetch`] does the slow outbound part holding no database connection;
//! [`Pipeline::commit`] writes everything (and, for a queued job, its completion mark) atomically.

mod accounts;
mod commit;
pub mod entities;
mod faults;
mod fetch;
mod request;

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
