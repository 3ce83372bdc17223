//! The cron scheduler: on each tick, one sync job per eligible seller and level for today.
//!
//! It only enqueues. Ticks run one after another: a slow tick delays the next instead of
//! overlapping it, and jobs still active from the previous tick are absorbed by deduplication.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use cron::Schedule;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::queue::{EnqueueError, JobQueue, Trigger};
use super::supervisor::TaskFaults;
use crate::db::{self, Db};
use crate::domain::Level;
use crate::pipeline::SyncRequest;
use crate::telemetry::metrics::Metrics;

/// The scheduler's task name, as `/health` shows it.
pub const SCHEDULER: &str = "scheduler";

/// What the health probe shows about the scheduler.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SchedulerStatus {
    pub enabled: bool,
    #[serde(rename = "lastTick")]
    pub last_tick: Option<DateTime<Utc>>,
    #[serde(rename = "nextTick")]
    pub next_tick: Option<DateTime<Utc>>,
    /// How long the last tick took to enqueue (the dashboard shows it; `/health` does not).
    #[serde(skip)]
    pub last_tick_duration: Option<std::time::Duration>,
}

/// The outcome of one tick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickSummary {
    pub sellers: usize,
    pub enqueued: usize,
    pub deduplicated: usize,
}

#[derive(Clone)]
pub struct Scheduler {
    db: Db,
    queue: JobQueue,
    schedule: Schedule,
    timezone: Tz,
    status: Arc<RwLock<SchedulerStatus>>,
    metrics: Metrics,
}

impl Scheduler {
    pub fn new(
        db: Db,
        queue: JobQueue,
        schedule: Schedule,
        timezone: Tz,
        enabled: bool,
        metrics: Metrics,
    ) -> Self {
        let status = SchedulerStatus {
            enabled,
            ..Default::default()
        };
        Self {
            db,
            queue,
            schedule,
            timezone,
            status: Arc::new(RwLock::new(status)),
            metrics,
        }
    }

    pub fn status(&self) -> SchedulerStatus {
        self.status.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// "Today" for scheduled syncs and for manual ones without a date.
    pub fn today(&self, now: DateTime<Utc>) -> NaiveDate {
        now.with_timezone(&self.timezone).date_naive()
    }

    /// Enqueues today's jobs for every eligible seller, as of `now`. Logs one line and counts the
    /// tick, failed or not, in the metrics.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<TickSummary, EnqueueError> {
        let started = Instant::now();
        let result = self.enqueue_today(now, started).await;
        self.metrics
            .tick_finished(now, started.elapsed(), result.is_ok());
        result
    }

    async fn enqueue_today(
        &self,
        now: DateTime<Utc>,
        started: Instant,
    ) -> Result<TickSummary, EnqueueError> {
        let today = self.today(now);
        let sellers = {
            let mut conn = self.db.conn().await?;
            db::catalog::eligible_seller_ids(&mut conn).await?
        };
        let requests: Vec<SyncRequest> = sellers
            .iter()
            .flat_map(|seller| {
                Level::ALL.map(|level| SyncRequest::one_day(seller.clone(), level, today))
            })
            .collect();
        let enqueued = self
            .queue
            .enqueue_nowait(&requests, Trigger::Schedule)
            .await?;
        let created = enqueued.iter().filter(|e| e.created).count();
        let summary = TickSummary {
            sellers: sellers.len(),
            enqueued: created,
            deduplicated: enqueued.len() - created,
        };
        if let Ok(mut status) = self.status.write() {
            status.last_tick = Some(now);
            status.last_tick_duration = Some(started.elapsed());
        }
        tracing::info!(
            date = %today, sellers = summary.sellers, jobs_enqueued = summary.enqueued,
            jobs_deduplicated = summary.deduplicated, duration_ms = started.elapsed().as_millis() as u64,
            "scheduler tick"
        );
        Ok(summary)
    }

    /// Ticks on the cron schedule until `stop` is cancelled. With `tick_now`, ticks once at start.
    pub async fn run(self, stop: CancellationToken, tick_now: bool, faults: Arc<TaskFaults>) {
        if tick_now {
            self.tick_logged(Utc::now()).await;
        }
        loop {
            let now = Utc::now().with_timezone(&self.timezone);
            let Some(next) = self.schedule.after(&now).next() else {
                // Not a failure (a one-off expression with a year has run out): idle until the
                // stop, so the supervisor does not take it for a crash.
                tracing::warn!("the cron expression has no future ticks; the scheduler idles");
                if let Ok(mut status) = self.status.write() {
                    status.next_tick = None;
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = faults.armed(SCHEDULER) => panic!("injected scheduler crash"),
                }
            };
            let next = next.with_timezone(&Utc);
            if let Ok(mut status) = self.status.write() {
                status.next_tick = Some(next);
            }
            let wait = (next - Utc::now()).to_std().unwrap_or_default();
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = faults.armed(SCHEDULER) => panic!("injected scheduler crash"),
                _ = tokio::time::sleep(wait) => {}
            }
            self.tick_logged(next).await;
        }
        if let Ok(mut status) = self.status.write() {
            status.next_tick = None;
        }
        tracing::info!("scheduler stopped");
    }

    async fn tick_logged(&self, at: DateTime<Utc>) {
        if let Err(e) = self.tick(at).await {
            tracing::error!(error = %e, "scheduler tick failed");
        }
    }
}
