//! Where stats come from. The pipeline only knows [`StatProvider`]; the configured provider is
//! built by [`from_settings`], so a Meta Insights provider can be added without touching the pipeline.

pub mod mock;

use std::sync::Arc;

use chrono::NaiveDate;

use crate::config::{ProviderKind, Settings};
use crate::domain::{EntityBudget, Level, Metrics};

pub use mock::MockProvider;

/// One provider reading for one entity and day.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderStat {
    pub entity_id: String,
    pub metrics: Metrics,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("provider request failed: {0}")]
    Request(String),
    #[error("provider rate limit: {0}")]
    RateLimited(String),
}

/// A source of ad statistics. Implementations must return exactly one reading per entity asked for.
#[async_trait::async_trait]
pub trait StatProvider: Send + Sync {
    /// Recorded in `ad_stats_raw.provider`.
    fn name(&self) -> &'static str;

    async fn fetch(
        &self,
        seller_id: &str,
        level: Level,
        entities: &[EntityBudget],
        date: NaiveDate,
    ) -> Result<Vec<ProviderStat>, ProviderError>;
}

/// The provider chosen by `provider` in the settings.
pub fn from_settings(settings: &Settings) -> Arc<dyn StatProvider> {
    match settings.provider {
        ProviderKind::Mock => Arc::new(MockProvider),
    }
}
