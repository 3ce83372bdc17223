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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Days, NaiveDate, NaiveDateTime, Timelike, Utc};
use chrono_tz::Tz;
use cron::Schedule;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::queue::{EnqueueError, JobQueue, Trigger};
use super::supervisor::TaskFaults;
use crate::config::ProviderKind;
use crate::db::catalog::ScheduledConnection;
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

    /// Enqueues today's jobs for every eligible seller, as of `now`. Logs one line and counts the
    /// tick, failed or not, in the metrics.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<TickSummary, EnqueueError> {
        let started = Instant::now();
        let span = crate::telemetry::traces::tick_span(now);
        let result = tracing::Instrument::instrument(self.enqueue_today(now, started), span).await;
        self.metrics
            .tick_finished(now, started.elapsed(), result.is_ok());
        result
    }

    async fn enqueue_today(
        &self,
        now: DateTime<Utc>,
        started: Instant,
    ) -> Result<TickSummary, EnqueueError> {
        let connections = {
            let mut conn = self.db.conn().await?;
            db::catalog::scheduled_connections(&mut conn, self.recent_since(now)).await?
        };
        let plan = TickPlan::new(&connections, now, &self.rules());
        let (enqueued, lookback) = self
            .queue
            .enqueue_nowait_planned(Trigger::Schedule, async |conn: &mut db::DbConn| {
                plan.requests(conn).await
            })
            .await?;
        let created = enqueued.iter().filter(|e| e.created).count();
        let summary = TickSummary {
            sellers: plan.sellers,
            enqueued: created,
            deduplicated: enqueued.len() - created,
            lookback,
        };
        if let Ok(mut status) = self.status.write() {
            status.last_tick = Some(now);
            status.last_tick_duration = Some(started.elapsed());
        }
        let dates: BTreeSet<String> = plan
            .current
            .iter()
            .map(|(_, from, to)| {
                if from == to {
                    to.to_string()
                } else {
                    format!("{from}..{to}")
                }
            })
            .collect();
        let dates: Vec<String> = dates.into_iter().collect();
        tracing::info!(
            dates = %dates.join(","), sellers = summary.sellers, jobs_enqueued = summary.enqueued,
            jobs_deduplicated = summary.deduplicated, lookback_jobs = summary.lookback,
            duration_ms = started.elapsed().as_millis() as u64,
            "scheduler tick"
        );
        Ok(summary)
    }

    fn rules(&self) -> PlanRules {
        PlanRules {
            lookback_days: self.lookback_days,
            lookback_hour: self.lookback_hour,
            meta: self.provider == ProviderKind::Meta,
        }
    }

    /// With Meta, the earliest date a scheduled job of any zone can reach as of `now`: sellers
    /// whose Meta campaigns have a daily row since then stay scheduled after their campaigns
    /// stop delivering (see [`db::catalog::scheduled_connections`]). A local date is at most one
    /// day before UTC's; the jobs reach back to yesterday, or the lookback's first day.
    fn recent_since(&self, now: DateTime<Utc>) -> Option<NaiveDate> {
        if self.provider != ProviderKind::Meta {
            return None;
        }
        let back = 1 + u64::from(self.lookback_days.max(1));
        now.date_naive().checked_sub_days(Days::new(back))
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

/// The settings a tick plans with.
struct PlanRules {
    lookback_days: u32,
    lookback_hour: u32,
    /// `provider = "meta"`: `META` connections start their jobs at their local yesterday.
    meta: bool,
}

/// What one tick asks for, worked out from the connections read before its transaction.
struct TickPlan {
    sellers: usize,
    /// (seller, from, to) of the current jobs: today, or yesterday..today for a Meta
    /// connection; one job per level each.
    current: BTreeSet<(String, NaiveDate, NaiveDate)>,
    /// Connections whose lookback is due, by their local today, with their seller.
    lookback_due: BTreeMap<NaiveDate, Vec<(String, String)>>,
    lookback_days: u32,
}

impl TickPlan {
    fn new(connections: &[ScheduledConnection], now: DateTime<Utc>, rules: &PlanRules) -> Self {
        let mut current = BTreeSet::new();
        let mut lookback_due: BTreeMap<NaiveDate, Vec<(String, String)>> = BTreeMap::new();
        let mut sellers = BTreeSet::new();
        for c in connections {
            let local = connection_now(now, c);
            let date = local.date();
            sellers.insert(c.seller_id.as_str());
            // Meta finishes a day's numbers hours after its midnight (and attributes late
            // conversions to it): its connections' jobs keep yesterday in their range until the
            // local day moves on, under one job id per local day (deduplicated like today's).
            let settles_late = rules.meta && c.provider.eq_ignore_ascii_case("META");
            let from = if settles_late {
                date.pred_opt().unwrap_or(date)
            } else {
                date
            };
            current.insert((c.seller_id.clone(), from, date));
            // The marker is compared, not trusted: a day already done, or a later one (the zone
            // was moved west), queues nothing. Before `lookback_hour` the day is not due yet.
            if rules.lookback_days > 0
                && local.hour() >= rules.lookback_hour
                && c.lookback_queued_on.is_none_or(|d| d < date)
            {
                lookback_due
                    .entry(date)
                    .or_default()
                    .push((c.connection_id.clone(), c.seller_id.clone()));
            }
        }
        // A seller with a Meta and another connection in one zone: yesterday..today covers
        // today, one job set is enough.
        let covered: Vec<(String, NaiveDate, NaiveDate)> = current
            .iter()
            .filter(|(seller, from, to)| {
                from == to
                    && current
                        .iter()
                        .any(|(s, f, t)| s == seller && f < from && t == to)
            })
            .cloned()
            .collect();
        for c in covered {
            current.remove(&c);
        }
        Self {
            sellers: sellers.len(),
            current,
            lookback_due,
            lookback_days: rules.lookback_days,
        }
    }

    /// Inside the enqueue transaction: claims the due lookbacks (only connections this
    /// transaction marks get one) and returns the current requests plus the lookback ones, and
    /// how many of them are lookback jobs.
    async fn requests(
        &self,
        conn: &mut db::DbConn,
    ) -> Result<(Vec<SyncRequest>, usize), EnqueueError> {
        let mut requests: Vec<SyncRequest> = self
            .current
            .iter()
            .flat_map(|(seller, from, to)| {
                Level::ALL.map(|level| SyncRequest {
                    seller_id: seller.clone(),
                    level,
                    date_from: *from,
                    date_to: *to,
                })
            })
            .collect();
        let mut ranges = BTreeSet::new();
        for (date, due) in &self.lookback_due {
            let ids: Vec<String> = due.iter().map(|(id, _)| id.clone()).collect();
            let claimed: BTreeSet<String> = db::catalog::claim_lookback(conn, *date, &ids)
                .await?
                .into_iter()
                .collect();
            let (Some(from), Some(to)) = (
                date.checked_sub_days(Days::new(u64::from(self.lookback_days))),
                date.pred_opt(),
            ) else {
                continue;
            };
            for (id, seller) in due {
                if claimed.contains(id) {
                    // Connections of one seller in the same zone share one job set.
                    ranges.insert((seller.clone(), from, to));
                }
            }
        }
        let lookback = ranges.len() * Level::ALL.len();
        for (seller, from, to) in ranges {
            requests.extend(Level::ALL.map(|level| SyncRequest {
                seller_id: seller.clone(),
                level,
                date_from: from,
                date_to: to,
            }));
        }
        Ok((requests, lookback))
    }
}

/// The time zone named `name`, or `None` when it is not an IANA name.
pub fn parse_zone(name: &str) -> Option<Tz> {
    name.trim().parse().ok()
}

/// The distinct local dates at `now` of the zones, ascending; UTC's date when there is none (a
/// seller without an active connection, refused afterwards). Never empty.
pub fn local_todays(now: DateTime<Utc>, zones: &[String], seller_id: &str) -> Vec<NaiveDate> {
    let mut dates: BTreeSet<NaiveDate> = zones
        .iter()
        .map(|zone| local_today(now, zone, &format!("seller {seller_id}")))
        .collect();
    if dates.is_empty() {
        dates.insert(now.date_naive());
    }
    dates.into_iter().collect()
}

/// The date at `now` in the zone named `zone`. An unknown name counts as UTC, with a warning
/// naming `owner` (a connection, or a seller): one bad row must not stop the tick for everyone (the CLI that writes zones
/// validates them; this guards against rows written by hand).
pub fn local_today(now: DateTime<Utc>, zone: &str, owner: &str) -> NaiveDate {
    local_now(now, zone, owner).date()
}

/// The wall-clock time at `now` in the zone named `zone` (an unknown one as in [`local_today`]).
pub fn local_now(now: DateTime<Utc>, zone: &str, owner: &str) -> NaiveDateTime {
    let tz = parse_zone(zone).unwrap_or_else(|| {
        tracing::warn!(owner, timezone = zone, "unknown time zone; using UTC");
        chrono_tz::UTC
    });
    now.with_timezone(&tz).naive_local()
}

fn connection_now(now: DateTime<Utc>, c: &ScheduledConnection) -> NaiveDateTime {
    local_now(now, &c.timezone, &c.connection_id)
}

/// A mark as `scheduler_ticks` keys it: UTC at the microsecond precision both backends keep, so
/// the claim and the finish of one tick name the same row.
fn mark_key(mark: DateTime<Utc>) -> chrono::NaiveDateTime {
    use chrono::SubsecRound;
    mark.naive_utc().trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn connection(seller: &str, provider: &str, zone: &str) -> ScheduledConnection {
        ScheduledConnection {
            seller_id: seller.into(),
            connection_id: format!("{seller}-{provider}-{zone}"),
            provider: provider.into(),
            timezone: zone.into(),
            lookback_queued_on: None,
        }
    }

    fn d(m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, m, day).unwrap()
    }

    fn rules(meta: bool, lookback_days: u32, lookback_hour: u32) -> PlanRules {
        PlanRules {
            lookback_days,
            lookback_hour,
            meta,
        }
    }

    #[test]
    fn meta_connections_start_at_their_local_yesterday() {
        // 20:00 UTC on the 28th: the 29th in Tokyo, the 28th in Los Angeles.
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 20, 0, 0).unwrap();
        let connections = [
            connection("a", "META", "Asia/Tokyo"),
            connection("b", "META", "America/Los_Angeles"),
            connection("c", "OTHER", "Asia/Tokyo"),
        ];
        let plan = TickPlan::new(&connections, now, &rules(true, 0, 4));
        let current: Vec<_> = plan.current.into_iter().collect();
        assert_eq!(
            current,
            vec![
                ("a".into(), d(11, 28), d(11, 29)),
                ("b".into(), d(11, 27), d(11, 28)),
                ("c".into(), d(11, 29), d(11, 29)),
            ]
        );
        // Under the mock every connection keeps today.
        let plan = TickPlan::new(&connections, now, &rules(false, 0, 4));
        assert!(plan.current.iter().all(|(_, from, to)| from == to));
    }

    #[test]
    fn a_seller_with_meta_and_another_connection_in_one_zone_gets_one_job_set() {
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 20, 0, 0).unwrap();
        let connections = [
            connection("a", "META", "UTC"),
            connection("a", "OTHER", "UTC"),
            connection("a", "OTHER", "Asia/Tokyo"),
        ];
        let plan = TickPlan::new(&connections, now, &rules(true, 0, 4));
        let current: Vec<_> = plan.current.into_iter().collect();
        assert_eq!(
            current,
            vec![
                ("a".into(), d(11, 27), d(11, 28)),
                ("a".into(), d(11, 29), d(11, 29)),
            ]
        );
    }

    #[test]
    fn the_lookback_is_due_from_the_hour_in_the_connection_zone() {
        let due = |h: u32, mi: u32, hour: u32| {
            let now = Utc.with_ymd_and_hms(2026, 11, 28, h, mi, 0).unwrap();
            let connections = [connection("a", "META", "Asia/Tokyo")];
            let plan = TickPlan::new(&connections, now, &rules(true, 28, hour));
            plan.lookback_due.keys().copied().collect::<Vec<_>>()
        };
        // 18:59 UTC is 03:59 on the 29th in Tokyo; 19:00 is 04:00.
        assert_eq!(due(18, 59, 4), vec![]);
        assert_eq!(due(19, 0, 4), vec![d(11, 29)]);
        assert_eq!(due(14, 59, 0), vec![d(11, 28)], "hour 0: from midnight on");
        assert_eq!(due(15, 0, 0), vec![d(11, 29)]);
        assert_eq!(due(14, 0, 23), vec![d(11, 28)], "23:00 in Tokyo");
        assert_eq!(due(13, 59, 23), vec![]);
    }
}
