//! The cron loop: sleeps until the next mark of the schedule, ticks it, and meanwhile looks for
//! ticks other instances abandoned, until the stop.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::{Scheduler, SCHEDULER};
use crate::jobs::supervisor::TaskFaults;

impl Scheduler {
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
