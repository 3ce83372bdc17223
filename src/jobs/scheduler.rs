//! The cron scheduler: on each tick, one sync job per eligible seller and level for today.
//!
//! It only enqueues. Ticks run one after another: a slow tick delays the next instead of
//! overlapping it, and jobs still active from the previous tick are absorbed by deduplication.
//!
//! Every instance runs a scheduler; `scheduler_ticks` makes each cron mark one tick cluster-wide:
//! an instance ticks a mark only when its INSERT of the mark wins, and a tick left unfinished by
//! an instance that died is taken over and done again by another (deduplication makes the redo
//! add only the jobs the dead instance had not recorded).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

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
    /// This instance's name in `scheduler_ticks`.
    instance: String,
    /// A tick unfinished for this long is taken to be abandoned (`jobs.rescue_after`).
    rescue_after: Duration,
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

    /// Ticks `mark` unless another instance does (or did): the instance whose INSERT of the mark
    /// into `scheduler_ticks` wins ticks it, and records the outcome there.
    pub async fn tick_mark(
        &self,
        mark: DateTime<Utc>,
    ) -> Result<Option<TickSummary>, EnqueueError> {
        let at = mark_key(mark);
        let won = {
            let mut conn = self.db.conn().await?;
            db::ticks::claim(&mut conn, at, &self.instance).await?
        };
        if !won {
            tracing::debug!(mark = %mark, "another instance ticks this mark");
            return Ok(None);
        }
        self.tick_claimed(mark).await.map(Some)
    }

    /// Ticks a mark this instance holds in `scheduler_ticks`, then marks it finished. A tick that
    /// fails stays unfinished and is taken over after `jobs.rescue_after` without a heartbeat.
    async fn tick_claimed(&self, mark: DateTime<Utc>) -> Result<TickSummary, EnqueueError> {
        // The tick's heartbeat goes on while it enqueues, so a slow tick (thousands of sellers)
        // is not mistaken for an abandoned one and done twice.
        let beat = async {
            let every = self.rescue_after / 4;
            loop {
                tokio::time::sleep(every).await;
                let beaten = async {
                    let mut conn = self.db.conn().await?;
                    Ok::<_, db::DbError>(
                        db::ticks::beat(&mut conn, mark_key(mark), &self.instance).await?,
                    )
                };
                if let Err(e) = beaten.await {
                    tracing::warn!(error = %e, mark = %mark, "tick heartbeat failed; retrying");
                }
            }
        };
        let summary = tokio::select! {
            summary = self.tick(mark) => summary?,
            never = beat => never,
        };
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let mut conn = self.db.conn().await?;
        let finished = db::ticks::finish(
            &mut conn,
            mark_key(mark),
            &self.instance,
            count(summary.sellers),
            count(summary.enqueued),
            count(summary.deduplicated),
        )
        .await?;
        if !finished {
            tracing::warn!(mark = %mark, "another instance took this tick over meanwhile");
        }
        Ok(summary)
    }

    /// Takes over and redoes ticks other instances started and abandoned (died mid-tick).
    async fn redo_abandoned(&self) -> Result<(), EnqueueError> {
        let marks = {
            let mut conn = self.db.conn().await?;
            db::ticks::take_over_abandoned(&mut conn, &self.instance, self.rescue_after).await?
        };
        for at in marks {
            let mark = at.and_utc();
            tracing::warn!(mark = %mark, "redoing a tick its instance left unfinished");
            self.tick_claimed(mark).await?;
        }
        Ok(())
    }

    /// Ticks on the cron schedule until `stop` is cancelled. With `tick_now`, ticks once at start.
    /// Between marks it looks for abandoned ticks every quarter of `jobs.rescue_after`.
    pub async fn run(self, stop: CancellationToken, tick_now: bool, faults: Arc<TaskFaults>) {
        if tick_now {
            self.tick_logged(Utc::now()).await;
        }
        let recheck = self.rescue_after / 4;
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
            // Wake for the mark, and meanwhile to look for ticks other instances abandoned.
            loop {
                let wait = (next - Utc::now()).to_std().unwrap_or_default();
                let due = wait <= recheck;
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = faults.armed(SCHEDULER) => panic!("injected scheduler crash"),
                    _ = tokio::time::sleep(wait.min(recheck)) => {}
                }
                if due {
                    self.tick_logged(next).await;
                    break;
                }
                if let Err(e) = self.redo_abandoned().await {
                    tracing::error!(error = %e, "redoing an abandoned tick failed");
                }
            }
            if stop.is_cancelled() {
                break;
            }
        }
        if let Ok(mut status) = self.status.write() {
            status.next_tick = None;
        }
        tracing::info!("scheduler stopped");
    }

    async fn tick_logged(&self, at: DateTime<Utc>) {
        if let Err(e) = self.tick_mark(at).await {
            tracing::error!(error = %e, "scheduler tick failed");
        }
    }
}

/// A mark as `scheduler_ticks` keys it: UTC at the microsecond precision both backends keep, so
/// the claim and the finish of one tick name the same row.
fn mark_key(mark: DateTime<Utc>) -> chrono::NaiveDateTime {
    use chrono::SubsecRound;
    mark.naive_utc().trunc_subsecs(6)
}
