//! One tick: read the eligible connections, plan their jobs, enqueue them in one transaction,
//! and log and count the outcome. [`Scheduler::tick`] is the function that runs one tick.

use std::collections::BTreeSet;
use std::time::Instant;

use chrono::{DateTime, Days, NaiveDate, Utc};

use super::plan::{PlanRules, TickPlan};
use super::Scheduler;
use crate::config::ProviderKind;
use crate::db;
use crate::jobs::queue::{EnqueueError, Trigger};
use crate::jobs::TickSummary;

impl Scheduler {
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
}
