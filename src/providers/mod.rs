//! Where stats come from. The pipeline only knows [`StatProvider`]; the configured provider is
//! built by [`from_settings`], so a Meta Insights provider can be added without touching the pipeline.

pub mod mock;

use std::sync::Arc;
use std::time::Duration;

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
        ProviderKind::Mock if settings.mock.latency.is_zero() => Arc::new(MockProvider),
        ProviderKind::Mock => Arc::new(Delayed {
            inner: MockProvider,
            latency: settings.mock.latency,
        }),
    }
}

/// A provider whose every request first waits `latency` (`mock.latency`): a stand-in for a real
/// provider's network time, so benchmarks show what slow requests do to a tick.
struct Delayed<P> {
    inner: P,
    latency: Duration,
}

#[async_trait::async_trait]
impl<P: StatProvider> StatProvider for Delayed<P> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn fetch(
        &self,
        seller_id: &str,
        level: Level,
        entities: &[EntityBudget],
        date: NaiveDate,
    ) -> Result<Vec<ProviderStat>, ProviderError> {
        tokio::time::sleep(self.latency).await;
        self.inner.fetch(seller_id, level, entities, date).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn mock_latency_delays_each_request_and_keeps_the_numbers() {
        let settings = Settings::defaults_with(|s| s.mock.latency = Duration::from_millis(60))
            .expect("settings");
        let slow = from_settings(&settings);
        let entities = [EntityBudget {
            entity_id: "cmp-1".into(),
            daily_budget_cents: 10_000,
        }];
        let date = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        let started = std::time::Instant::now();
        let delayed = slow
            .fetch("s1", Level::Campaign, &entities, date)
            .await
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(60));
        let direct = MockProvider
            .fetch("s1", Level::Campaign, &entities, date)
            .await
            .unwrap();
        assert_eq!(delayed, direct);
        assert_eq!(slow.name(), MockProvider.name());
    }
}
