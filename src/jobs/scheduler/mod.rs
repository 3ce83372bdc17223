//! The cron scheduler: on each tick, one sync job per eligible seller and level for today, where
//! "today" is the local date of each of the seller's ACTIVE ad connections (`ad_connections.
//! timezone`); `scheduler.timezone` only evaluates the cron expression. A Meta connection (with
//! `provider = "meta"`) has its jobs start at its local yesterday instead (`yesterday..today`):
//! Meta finishes a day's numbers hours after midnight. With `stats.lookback_days` = N > 0, the
//! first tick at or after `stats.lookback_hour` of each connection's local day also queues one
//! job per level over the N days before it (late conversions), once per connection and day.
//!
//! It only enqueues. Ticks run one after another: a slow tick delays the next instead of
//! overlapping it, and jobs still active from the previous tick are absorbed by deduplication.
//!
//! Every instance runs a scheduler; `scheduler_ticks` makes each cron mark one tick cluster-wide:
//! an instance ticks a mark only when its INSERT of the mark wins, and a tick left unfinished by
//! an instance that died is taken over and done again by another (deduplication makes the redo
//! add only the jobs the dead instance had not recorded).
//!
//! One file per concern: `cron_loop.rs` (the loop that waits for each mark, [`Scheduler::run`]),
//! `marks.rs` (the cluster-wide bookkeeping of marks in `scheduler_ticks`: claim, heartbeat,
//! finish, redo an abandoned one), `tick.rs` (one tick's enqueue, [`Scheduler::tick`]), `plan.rs`
//! (what one tick asks for: current jobs and due lookbacks), `zones.rs` (local dates).

mod cron_loop;
mod marks;
mod plan;
mod tick;
mod zones;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use cron::Schedule;
use serde::Serialize;

use super::queue::JobQueue;
use crate::config::ProviderKind;
use crate::db::Db;
use crate::telemetry::metrics::Metrics;

pub use zones::{local_now, local_today, local_todays, parse_zone};

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
    /// Lookback jobs among them (created or deduplicated).
    pub lookback: usize,
}

#[derive(Clone)]
pub struct Scheduler {
    db: Db,
    queue: JobQueue,
    schedule: Schedule,
    timezone: Tz,
    status: Arc<RwLock<SchedulerStatus>>,
    metrics: Metrics,
    /// This instance's name in `scheduler_ticks`.
    instance: String,
    /// A tick unfinished for this long is taken to be abandoned (`jobs.rescue_after`).
    rescue_after: Duration,
    /// `stats.lookback_days`; 0: no lookback.
    lookback_days: u32,
    /// `stats.lookback_hour`: the local hour from which a connection's lookback is due.
    lookback_hour: u32,
    /// `provider`: with Meta, `META` connections are synced from their local yesterday and
    /// sellers whose campaigns stopped delivering lately are still synced.
    provider: ProviderKind,
}

impl Scheduler {
    // Wiring: app.rs hands each part in once.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: Db,
        queue: JobQueue,
        schedule: Schedule,
        timezone: Tz,
        enabled: bool,
        metrics: Metrics,
        instance: String,
        rescue_after: Duration,
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
            instance,
            rescue_after,
            lookback_days: 0,
            lookback_hour: 0,
            provider: ProviderKind::Mock,
        }
    }

    /// Re-syncs the `days` days before each connection's local today once a day (0: never).
    pub fn with_lookback_days(mut self, days: u32) -> Self {
        self.lookback_days = days;
        self
    }

    /// Queues a connection's daily lookback at the first tick at or after `hour` (0–23) of its
    /// local day, instead of the first tick after its midnight.
    pub fn with_lookback_hour(mut self, hour: u32) -> Self {
        self.lookback_hour = hour;
        self
    }

    /// The provider the jobs will ask (`provider`): it decides which connections settle late.
    pub fn with_provider(mut self, provider: ProviderKind) -> Self {
        self.provider = provider;
        self
    }

    pub fn status(&self) -> SchedulerStatus {
        self.status.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// The date in `scheduler.timezone` (the dashboard's charts, the demo). Syncs are dated by
    /// their connections' zones instead, see [`local_today`].
    pub fn today(&self, now: DateTime<Utc>) -> NaiveDate {
        now.with_timezone(&self.timezone).date_naive()
    }
}
