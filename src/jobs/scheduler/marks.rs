//! The cluster-wide bookkeeping of cron marks in `scheduler_ticks`: the instance whose INSERT of
//! a mark wins ticks it, heartbeats it while it enqueues and records the outcome; a mark left
//! unfinished by an instance that died is taken over and ticked again.

use chrono::{DateTime, Utc};

use super::Scheduler;
use crate::db;
use crate::jobs::queue::EnqueueError;
use crate::jobs::TickSummary;

impl Scheduler {
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
    pub(super) async fn redo_abandoned(&self) -> Result<(), EnqueueError> {
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
}

/// A mark as `scheduler_ticks` keys it: UTC at the microsecond precision both backends keep, so
/// the claim and the finish of one tick name the same row.
fn mark_key(mark: DateTime<Utc>) -> chrono::NaiveDateTime {
    use chrono::SubsecRound;
    mark.naive_utc().trunc_subsecs(6)
}
