//! One claimed job from start to outcome: fetch without a write slot, write with one, then
//! record what happened (succeeded, retry, failed, deferred, handed back).

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::group_commit::{self, Written};
use super::heartbeat::RunningGuard;
use super::slots::Slot;
use super::Context;
use crate::db::jobs::Lease;
use crate::db::models::JobRecord;
use crate::db::{self, DbError};
use crate::pipeline::{PipelineError, SyncRequest};
use crate::providers::ReportRuns;
use crate::telemetry::metrics::JobOutcome;

/// Runs a record this instance has claimed and records the outcome, in the attempt's span.
pub(super) async fn run_claimed(
    ctx: &Context,
    record: JobRecord,
    slot: &mut Slot,
    hard_stop: &CancellationToken,
) {
    let span = crate::telemetry::traces::job_span(crate::telemetry::traces::JobSpan {
        job_id: &record.job_id,
        level: &record.level,
        seller_id: &record.seller_id,
        attempt: record.attempts,
        trigger: &record.triggered_by,
        trace_parent: record.trace_parent.as_deref(),
    });
    run_in_span(ctx, record, slot, hard_stop)
        .instrument(span)
        .await
}

async fn run_in_span(
    ctx: &Context,
    record: JobRecord,
    slot: &mut Slot,
    hard_stop: &CancellationToken,
) {
    let record_id = record.id;
    let lease = Lease {
        record_id,
        worker: ctx.worker.clone(),
        attempt: record.attempts,
    };
    // Dropped on every way out, panics included, so the heartbeat never vouches for a job
    // nobody runs (the sweeper then takes it back after `jobs.rescue_after`).
    let _heartbeat = RunningGuard::new(ctx, record_id);
    let started = Instant::now();
    let outcome = attempt(ctx, &record, &lease, slot, hard_stop).await;
    crate::telemetry::traces::record_job_outcome(outcome.name());
    let elapsed = started.elapsed();
    let duration_ms = elapsed.as_millis() as u64;
    let now = db::now_utc();
    let result = match outcome {
        Outcome::Succeeded(summary) => {
            tracing::info!(
                job.id = %record.job_id, job.attempt = record.attempts, entities = summary.entities,
                raw_rows = summary.raw_rows, daily_rows = summary.daily_rows,
                sellpage_rows = summary.sellpage_rows, duration_ms, "job succeeded"
            );
            ctx.metrics
                .rows_written(summary.raw_rows, summary.daily_rows, summary.sellpage_rows);
            ctx.metrics
                .rollup_currency_conflicts(summary.currency_conflicts);
            ctx.metrics
                .unmatched_rows(ctx.pipeline.provider_name(), summary.unmatched_rows);
            ctx.metrics
                .job_finished(&record.level, JobOutcome::Succeeded, elapsed);
            Ok(true)
        }
        Outcome::Released => {
            tracing::info!(job.id = %record.job_id, "job handed back to the queue at shutdown");
            ctx.metrics
                .job_finished(&record.level, JobOutcome::Released, elapsed);
            record_outcome(ctx, hard_stop, || {
                let (db, lease) = (ctx.db.clone(), lease.clone());
                async move {
                    let mut conn = db.conn().await?;
                    Ok(db::jobs::release(&mut conn, &lease, now).await?)
                }
            })
            .await
        }
        Outcome::LeaseLost => {
            tracing::warn!(job.id = %record.job_id, "job was taken back meanwhile; its writes were rolled back");
            ctx.metrics
                .job_finished(&record.level, JobOutcome::LeaseLost, elapsed);
            Ok(true)
        }
        Outcome::Deferred {
            public,
            detail,
            until,
        } => {
            tracing::info!(
                job.id = %record.job_id, job.attempt = record.attempts, run_at = %until, reason = %detail,
                "ad account paused by the provider's limits; job waits without using an attempt"
            );
            ctx.metrics
                .job_finished(&record.level, JobOutcome::Released, elapsed);
            record_outcome(ctx, hard_stop, || {
                let (db, lease, public) = (ctx.db.clone(), lease.clone(), public.clone());
                async move {
                    let mut conn = db.conn().await?;
                    Ok(db::jobs::defer(&mut conn, &lease, &public, until, now).await?)
                }
            })
            .await
        }
        Outcome::Failed {
            public,
            detail,
            permanent,
            not_before,
        } => {
            let retry_at = (record.attempts < record.max_attempts && !permanent).then(|| {
                let attempt = record.attempts as u32;
                let delay = crate::jobs::with_jitter(
                    crate::jobs::backoff(ctx.settings.backoff, attempt),
                    record.id,
                    attempt,
                );
                let at =
                    now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1));
                // A throttled account: not before the pause Meta announced is over.
                not_before.map_or(at, |nb| at.max(nb))
            });
            match retry_at {
                Some(at) => tracing::warn!(
                    job.id = %record.job_id, job.attempt = record.attempts, error = %detail,
                    retry_at = %at, duration_ms, "job attempt failed; will retry"
                ),
                None => tracing::error!(
                    job.id = %record.job_id, job.attempt = record.attempts, error = %detail,
                    duration_ms, "job failed for good"
                ),
            }
            let outcome = match retry_at {
                Some(_) => JobOutcome::Retried,
                None => JobOutcome::Failed,
            };
            ctx.metrics.job_finished(&record.level, outcome, elapsed);
            record_outcome(ctx, hard_stop, || {
                let (db, lease, public) = (ctx.db.clone(), lease.clone(), public.clone());
                async move {
                    let mut conn = db.conn().await?;
                    Ok(
                        db::jobs::mark_attempt_failed(&mut conn, &lease, &public, retry_at, now)
                            .await?,
                    )
                }
            })
            .await
        }
    };
    match result {
        Ok(true) => {}
        // A commit whose answer was lost (the connection broke after COMMIT was sent) may have
        // landed: the job is then SUCCEEDED already, and the guarded update rightly changes nothing.
        Ok(false) => tracing::info!(
            job.id = %record.job_id,
            "job outcome already recorded (its lease moved on); nothing to change"
        ),
        // The record stays RUNNING without a heartbeat; the sweeper takes it back after
        // `jobs.rescue_after`.
        Err(e) => {
            tracing::error!(job.id = %record.job_id, error = %e, "could not record job outcome")
        }
    }
}

/// Writes a failed or released job's new state, retrying while the database is unavailable or
/// busy, so a short outage ends in an ordinary retry with backoff rather than a record left
/// RUNNING until `jobs.rescue_after`. Gives up at half of `jobs.rescue_after` (before the sweeper
/// would take the record back anyway) or at the end of the shutdown grace.
async fn record_outcome<W, F>(
    ctx: &Context,
    hard_stop: &CancellationToken,
    write: W,
) -> Result<bool, DbError>
where
    W: Fn() -> F,
    F: std::future::Future<Output = Result<bool, DbError>>,
{
    let give_up = Instant::now() + ctx.settings.rescue_after / 2;
    let mut pause = Duration::from_millis(100);
    loop {
        match write().await {
            Err(e) if e.is_transient() && Instant::now() < give_up && !hard_stop.is_cancelled() => {
                tracing::debug!(error = %e, "cannot record a job outcome yet; retrying");
                tokio::select! {
                    _ = hard_stop.cancelled() => {}
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            done => return done,
        }
    }
}

enum Outcome {
    Succeeded(crate::pipeline::SyncSummary),
    Released,
    LeaseLost,
    /// Nothing was asked (the ad account is paused): back to QUEUED until `until`, the attempt
    /// not counted.
    Deferred {
        public: String,
        detail: String,
        until: chrono::NaiveDateTime,
    },
    /// `public` is what the job record shows the seller; `detail` goes to the log only.
    Failed {
        public: String,
        detail: String,
        /// A retry cannot succeed: the job fails at once.
        permanent: bool,
        /// A retry must not run before this (the end of a provider's announced pause).
        not_before: Option<chrono::NaiveDateTime>,
    },
}

impl Outcome {
    /// `job.outcome` on the attempt's span.
    fn name(&self) -> &'static str {
        match self {
            Outcome::Succeeded(_) => "succeeded",
            Outcome::Released => "released",
            Outcome::LeaseLost => "lease_lost",
            Outcome::Deferred { .. } => "deferred",
            Outcome::Failed { .. } => "failed",
        }
    }

    fn failed(error: &PipelineError) -> Self {
        // A paused account (nothing asked), or one the provider throttled with a known pause
        // (the request was refused, not answered wrongly): the job waits for the pause without
        // using an attempt. The pause is at least `MIN_PAUSE` and every deferral logs a line, so
        // a throttled account neither spins nor waits silently.
        if let Some(until) = error.defer_until() {
            return Outcome::Deferred {
                public: error.public_message().to_string(),
                detail: error.to_string(),
                until,
            };
        }
        Outcome::Failed {
            public: error.public_message().to_string(),
            detail: error.to_string(),
            permanent: error.is_permanent(),
            not_before: error.retry_not_before(),
        }
    }
}

async fn attempt(
    ctx: &Context,
    record: &JobRecord,
    lease: &Lease,
    slot: &mut Slot,
    hard_stop: &CancellationToken,
) -> Outcome {
    let Ok(level) = record.level.parse() else {
        return Outcome::failed(&PipelineError::InvalidRequest(format!(
            "unknown level {}",
            record.level
        )));
    };
    let request = SyncRequest {
        seller_id: record.seller_id.clone(),
        level,
        date_from: record.date_from,
        date_to: record.date_to,
    };
    // A report the provider started in an earlier attempt (Meta's async run) is resumed: the
    // claim read what the record keeps.
    let known = record.report_run_id.as_deref();
    let keeper = crate::jobs::run_keeper::LeasedRunKeeper {
        db: ctx.db.clone(),
        lease: lease.clone(),
    };
    let report_runs = ReportRuns {
        known,
        keeper: Some(&keeper),
    };
    let timeout = ctx.settings.timeout;
    let fetched = tokio::select! {
        biased;
        _ = hard_stop.cancelled() => return Outcome::Released,
        fetched = tokio::time::timeout(timeout, ctx.pipeline.fetch_resuming(&request, report_runs)) => fetched,
    };
    // A failed fetch gives its provider slot back at once, not after its outcome is recorded
    // (which waits out a database outage); a successful one in `group_commit::write`.
    if !matches!(fetched, Ok(Ok(_))) {
        slot.fetched();
    }
    let fetched = match fetched {
        Ok(Ok(fetched)) => fetched,
        Ok(Err(e)) => return Outcome::failed(&e),
        Err(_) => {
            let text = format!("timed out after {}s (jobs.timeout)", timeout.as_secs_f32());
            return Outcome::Failed {
                public: text.clone(),
                detail: text,
                permanent: false,
                not_before: None,
            };
        }
    };
    // A write slot only now: the wait on the provider above held none. Jobs that find every
    // slot taken share the next free one's transaction (group commit).
    match group_commit::write(ctx, fetched, lease, slot, hard_stop).await {
        Written::Done(Ok(summary)) => Outcome::Succeeded(summary),
        Written::Done(Err(PipelineError::LeaseLost)) => Outcome::LeaseLost,
        Written::Done(Err(e)) => Outcome::failed(&e),
        Written::Released => Outcome::Released,
        Written::Lost => {
            let text = "the write of the job stopped without an answer".to_string();
            Outcome::Failed {
                public: text.clone(),
                detail: text,
                permanent: false,
                not_before: None,
            }
        }
    }
}
