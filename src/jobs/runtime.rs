//! Workers: take record ids off the channel, each a turn to claim the next due record in claim
//! order (class, then `run_at`, then id; see [`super::Priority`]), run the pipeline, and record
//! the outcome. Two bounds: a claimed job holds one of `jobs.max_in_flight` slots from its claim
//! to its outcome, and one of `jobs.concurrency` write slots only for its write transaction, so
//! jobs waiting on a slow provider do not keep the database work waiting. Beside them a sweeper finds due jobs (retries, jobs left by a restart, and on
//! PostgreSQL jobs any instance enqueued, claimed straight from the table), takes back jobs
//! orphaned by a dead process and prunes old records; a heartbeat task vouches for this
//! instance's running jobs until the last of them has drained.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::queue::JobQueue;
use super::supervisor::{supervise, TaskFaults, TaskHealth};
use crate::db::jobs::Lease;
use crate::db::models::JobRecord;
use crate::db::{self, Db, DbError};
use crate::pipeline::{Pipeline, PipelineError, SyncRequest};
use crate::providers::ReportRuns;
use crate::telemetry::metrics::{JobOutcome, Metrics};

/// The `jobs.*` settings the runtime uses.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// Jobs in their write transaction at once.
    pub concurrency: usize,
    /// Jobs claimed at once (the effective `jobs.max_in_flight`, at least `concurrency`).
    pub max_in_flight: usize,
    pub backoff: Duration,
    pub timeout: Duration,
    pub shutdown_grace: Duration,
    pub retention: Duration,
    pub poll_interval: Duration,
    pub rescue_after: Duration,
    /// `stats.raw_retention`: raw rows fetched longer ago are deleted by the sweeper.
    pub raw_retention: Duration,
}

impl RuntimeSettings {
    pub fn with_raw_retention(mut self, raw_retention: Duration) -> Self {
        self.raw_retention = raw_retention;
        self
    }
}

impl From<&crate::config::JobSettings> for RuntimeSettings {
    fn from(s: &crate::config::JobSettings) -> Self {
        Self {
            concurrency: s.concurrency,
            max_in_flight: s.in_flight().max(s.concurrency),
            backoff: s.backoff,
            timeout: s.timeout,
            shutdown_grace: s.shutdown_grace,
            retention: s.retention,
            poll_interval: s.poll_interval,
            rescue_after: s.rescue_after,
            // The shipped default until the caller passes `stats.raw_retention`.
            raw_retention: Duration::from_secs(35 * 86_400),
        }
    }
}

#[derive(Clone)]
struct Context {
    db: Db,
    pipeline: Pipeline,
    queue: JobQueue,
    settings: RuntimeSettings,
    /// This process's name in `locked_by`.
    worker: String,
    /// Records this process is running right now: what the heartbeat vouches for.
    running: Arc<Mutex<HashSet<i64>>>,
    faults: Arc<TaskFaults>,
    metrics: Metrics,
    /// Signalled each time a job gives its slot back, so the sweeper refills it at once.
    slot_freed: Arc<Notify>,
    /// One permit per write slot (`jobs.concurrency`): a job holds one only for its commit.
    writes: Arc<Semaphore>,
}

/// The task that hands queued job ids to workers, as `/health` names it.
pub const DISPATCHER: &str = "dispatcher";
/// The task that re-offers due jobs, rescues orphans, beats the heartbeat and prunes records.
pub const SWEEPER: &str = "sweeper";

/// The running workers and sweeper; [`JobRuntime::shutdown`] stops them gracefully.
pub struct JobRuntime {
    stop: CancellationToken,
    /// Cancelled when the shutdown grace is over: jobs still fetching are handed back.
    hard_stop: CancellationToken,
    /// One permit per in-flight slot (`jobs.max_in_flight`); a claimed job holds one until its
    /// outcome is recorded. Outside the dispatcher, so a dispatcher that is restarted neither
    /// forgets nor aborts the jobs already running.
    slots: Arc<Semaphore>,
    settings: RuntimeSettings,
    dispatcher: tokio::task::JoinHandle<()>,
    sweeper: tokio::task::JoinHandle<()>,
    /// Cancelled once every running job has drained: only then may the heartbeat stop.
    drained: CancellationToken,
    heartbeat: tokio::task::JoinHandle<()>,
    worker: String,
}

impl JobRuntime {
    // Wiring: app.rs hands each part in once; a struct of them would only rename this list.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        db: Db,
        pipeline: Pipeline,
        queue: JobQueue,
        receiver: mpsc::Receiver<i64>,
        settings: RuntimeSettings,
        health: TaskHealth,
        faults: Arc<TaskFaults>,
        metrics: Metrics,
    ) -> Self {
        let worker = format!("ads-stats-{}", uuid::Uuid::new_v4().simple());
        tracing::info!(
            worker = %worker, concurrency = settings.concurrency,
            max_in_flight = settings.max_in_flight, "job workers started"
        );
        let ctx = Context {
            db,
            pipeline,
            queue,
            settings: settings.clone(),
            worker,
            running: Arc::default(),
            faults,
            metrics,
            slot_freed: Arc::default(),
            writes: Arc::new(Semaphore::new(settings.concurrency)),
        };
        let stop = CancellationToken::new();
        let hard_stop = CancellationToken::new();
        let slots = Arc::new(Semaphore::new(settings.max_in_flight));
        // A restarted dispatcher takes the same channel up again: ids already in it are not lost.
        let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
        let dispatcher = {
            let (ctx, stop, hard_stop, slots) =
                (ctx.clone(), stop.clone(), hard_stop.clone(), slots.clone());
            supervise(DISPATCHER, health.clone(), stop.clone(), move || {
                dispatch(
                    ctx.clone(),
                    receiver.clone(),
                    slots.clone(),
                    stop.clone(),
                    hard_stop.clone(),
                )
            })
        };
        let sweeper = {
            let (ctx, stop, hard_stop, slots) =
                (ctx.clone(), stop.clone(), hard_stop.clone(), slots.clone());
            supervise(SWEEPER, health, stop.clone(), move || {
                sweep(ctx.clone(), stop.clone(), slots.clone(), hard_stop.clone())
            })
        };
        // Not stopped with the other tasks: running jobs keep their lease through the shutdown
        // grace, or another instance would take them back and run them a second time.
        let drained = CancellationToken::new();
        let worker = ctx.worker.clone();
        let heartbeat = tokio::spawn(beat(ctx, drained.clone()));
        Self {
            stop,
            hard_stop,
            slots,
            settings,
            dispatcher,
            sweeper,
            drained,
            heartbeat,
            worker,
        }
    }

    /// This instance's name, as job records show it in `locked_by` (`instance` in the API).
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// No new job starts; running jobs get `jobs.shutdown_grace` to finish. Jobs still fetching
    /// or waiting for a write slot after that are handed back as QUEUED (their attempt not
    /// counted); jobs already writing finish their transaction. Jobs never started stay QUEUED for the next start.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.sweeper.await;
        let _ = self.dispatcher.await;
        let in_flight = self.settings.max_in_flight;
        let all = u32::try_from(in_flight).unwrap_or(u32::MAX);
        let running = in_flight - self.slots.available_permits();
        if running > 0 {
            tracing::info!(
                running,
                grace_s = self.settings.shutdown_grace.as_secs_f32(),
                "waiting for running jobs"
            );
        }
        let drained =
            tokio::time::timeout(self.settings.shutdown_grace, self.slots.acquire_many(all)).await;
        if drained.is_err() {
            tracing::warn!(
                left = in_flight - self.slots.available_permits(),
                "shutdown grace over: handing unfinished jobs back to the queue"
            );
            self.hard_stop.cancel();
            let _ = self.slots.acquire_many(all).await;
        }
        self.drained.cancel();
        let _ = self.heartbeat.await;
    }
}

/// Hands ids from the channel to workers, one per free slot.
///
/// It takes an id before it waits for a slot, so that an idle dispatcher holds no slot: on
/// PostgreSQL the sweeper fills every free slot with jobs claimed from the table.
async fn dispatch(
    ctx: Context,
    receiver: Arc<tokio::sync::Mutex<mpsc::Receiver<i64>>>,
    slots: Arc<Semaphore>,
    stop: CancellationToken,
    hard_stop: CancellationToken,
) {
    let mut receiver = receiver.lock().await;
    loop {
        let record_id = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = ctx.faults.armed(DISPATCHER) => panic!("injected dispatcher crash"),
            id = receiver.recv() => match id { Some(id) => id, None => break },
        };
        // Dropped on every way out (a stop, a panic): the id leaves the channel's books, so the
        // sweeper can offer the still QUEUED record again.
        let held = Delivered {
            queue: ctx.queue.clone(),
            record_id,
        };
        let slot = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = ctx.faults.armed(DISPATCHER) => panic!("injected dispatcher crash"),
            slot = slots.clone().acquire_owned() => match slot { Ok(s) => s, Err(_) => break },
        };
        let ctx = ctx.clone();
        let hard_stop = hard_stop.clone();
        tokio::spawn(async move {
            let claimed = claim(&ctx, record_id).await;
            drop(held);
            match claimed {
                Ok(Some(record)) => run_claimed(&ctx, record, &hard_stop).await,
                Ok(None) => {}
                // The sweeper offers it again once the database answers.
                Err(e) => tracing::warn!(job.record = record_id, error = %e, "could not claim job"),
            }
            drop(slot);
            ctx.slot_freed.notify_one();
        });
    }
    if stop.is_cancelled() {
        receiver.close();
    }
}

/// An id taken off the channel and not yet claimed.
struct Delivered {
    queue: JobQueue,
    record_id: i64,
}

impl Drop for Delivered {
    fn drop(&mut self) {
        self.queue.claimed(self.record_id);
    }
}

/// Runs a record this instance has claimed and records the outcome.
async fn run_claimed(ctx: &Context, record: JobRecord, hard_stop: &CancellationToken) {
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
    let outcome = attempt(ctx, &record, &lease, hard_stop).await;
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
                let delay = super::with_jitter(
                    super::backoff(ctx.settings.backoff, attempt),
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
    // A report the provider started in an earlier attempt (Meta's async run) is resumed.
    let known = match super::run_keeper::known(&ctx.db, record.id).await {
        Ok(known) => known,
        Err(e) => return Outcome::failed(&PipelineError::Db(e)),
    };
    let keeper = super::run_keeper::LeasedRunKeeper {
        db: ctx.db.clone(),
        lease: lease.clone(),
    };
    let report_runs = ReportRuns {
        known: known.as_deref(),
        keeper: Some(&keeper),
    };
    let timeout = ctx.settings.timeout;
    let fetched = tokio::select! {
        biased;
        _ = hard_stop.cancelled() => return Outcome::Released,
        fetched = tokio::time::timeout(timeout, ctx.pipeline.fetch_resuming(&request, report_runs)) => fetched,
    };
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
    // A write slot only now: the wait on the provider above held none. The job stays in the
    // heartbeat while it waits for one, so its lease outlives a long wait.
    let Some(_write) = write_slot(ctx, hard_stop).await else {
        return Outcome::Released;
    };
    // The write transaction is short and bounded by the database's own timeouts; it is never
    // cancelled half-way, so a job's writes and its completion mark commit together or not at all.
    match ctx.pipeline.commit(fetched, Some(lease)).await {
        Ok(summary) => Outcome::Succeeded(summary),
        Err(PipelineError::LeaseLost) => Outcome::LeaseLost,
        Err(e) => Outcome::failed(&e),
    }
}

/// One of the `jobs.concurrency` write slots, or `None` at a hard stop: a job that has fetched
/// but not written is handed back like one still fetching.
async fn write_slot(
    ctx: &Context,
    hard_stop: &CancellationToken,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    tokio::select! {
        biased;
        _ = hard_stop.cancelled() => None,
        // The semaphore is never closed.
        permit = ctx.writes.clone().acquire_owned() => permit.ok(),
    }
}

/// Claims the next due job in claim order, not necessarily `_delivered`: an id on the channel is
/// a turn to run a job, and the turn goes to the most urgent due record (see
/// [`crate::jobs::Priority`]). The delivered record, if passed over, stays QUEUED for a later turn
/// or the sweeper.
async fn claim(ctx: &Context, _delivered: i64) -> Result<Option<JobRecord>, DbError> {
    let mut conn = ctx.db.conn().await?;
    Ok(db::jobs::claim_next(&mut conn, &ctx.worker).await?)
}

/// Keeps a record in this process's heartbeat while it lives.
struct RunningGuard {
    running: Arc<Mutex<HashSet<i64>>>,
    record_id: i64,
}

impl RunningGuard {
    fn new(ctx: &Context, record_id: i64) -> Self {
        if let Ok(mut set) = ctx.running.lock() {
            set.insert(record_id);
        }
        Self {
            running: ctx.running.clone(),
            record_id,
        }
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        if let Ok(mut set) = self.running.lock() {
            set.remove(&self.record_id);
        }
    }
}

/// How often finished records and old raw rows are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// When the sweeper last pruned, and whether old raw rows were left for the next poll.
#[derive(Default)]
struct Prunes {
    jobs: Option<Instant>,
    raw: Option<Instant>,
    raw_backlog: bool,
}

async fn sweep(
    ctx: Context,
    stop: CancellationToken,
    slots: Arc<Semaphore>,
    hard_stop: CancellationToken,
) {
    let mut prunes = Prunes::default();
    let mut failing = false;
    'sweeping: loop {
        // One line when sweeping starts failing and one when it recovers, not one per poll.
        match sweep_once(&ctx, &stop, &slots, &hard_stop, &mut prunes).await {
            Err(e) if !failing => {
                tracing::warn!(error = %e, "job sweep failed; retrying every poll interval");
                failing = true;
            }
            Ok(()) if failing => {
                tracing::info!("job sweep recovered");
                failing = false;
            }
            _ => {}
        }
        let next_sweep = tokio::time::Instant::now() + ctx.settings.poll_interval;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break 'sweeping,
                _ = ctx.faults.armed(SWEEPER) => panic!("injected sweeper crash"),
                _ = tokio::time::sleep_until(next_sweep) => break,
                _ = ctx.slot_freed.notified() => refill_freed_slots(&ctx, &slots, &hard_stop).await,
            }
        }
    }
}

/// On PostgreSQL, a slot a finished job gave back is refilled from the table at once when this
/// instance has nothing of its own waiting: without it an instance would take at most its free
/// slots once per `jobs.poll_interval`, and a tick bigger than the channel (or queued by another
/// instance) would crawl at `concurrency` jobs per poll. Failures wait for the next full sweep.
async fn refill_freed_slots(ctx: &Context, slots: &Arc<Semaphore>, hard_stop: &CancellationToken) {
    if ctx.db.backend_name() != "postgres" || !ctx.queue.is_idle() || slots.available_permits() == 0
    {
        return;
    }
    let refilled = async {
        let mut conn = ctx.db.conn().await?;
        claim_or_offer_due(ctx, &mut conn, slots, hard_stop).await
    }
    .await;
    if let Err(e) = refilled {
        tracing::debug!(error = %e, "could not refill a freed job slot; the next sweep will");
    }
}

async fn sweep_once(
    ctx: &Context,
    stop: &CancellationToken,
    slots: &Arc<Semaphore>,
    hard_stop: &CancellationToken,
    prunes: &mut Prunes,
) -> Result<(), DbError> {
    let mut conn = ctx.db.conn().await?;
    let rescued = db::jobs::rescue_orphans(&mut conn, ctx.settings.rescue_after).await?;
    if rescued > 0 {
        tracing::warn!(rescued, "took back jobs whose process stopped");
    }
    if !stop.is_cancelled() {
        claim_or_offer_due(ctx, &mut conn, slots, hard_stop).await?;
    }
    if prunes.jobs.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
        let now = db::now_utc();
        let before = now - chrono::Duration::from_std(ctx.settings.retention).unwrap_or_default();
        let pruned = db::jobs::prune(&mut conn, before).await?;
        if pruned > 0 {
            tracing::info!(pruned, "pruned finished job records");
        }
        prunes.jobs = Some(Instant::now());
    }
    // A backlog (the first run after an upgrade, a long outage) goes a few batches per poll,
    // each its own short statement, so syncs keep writing in between.
    if prunes.raw_backlog || prunes.raw.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
        prune_raw(ctx, &mut conn, prunes).await?;
    }
    Ok(())
}

/// Deletes raw rows fetched before `stats.raw_retention`, a bounded number of small batches.
async fn prune_raw(
    ctx: &Context,
    conn: &mut db::DbConn,
    prunes: &mut Prunes,
) -> Result<(), DbError> {
    use db::retention::{RAW_BATCHES_PER_SWEEP, RAW_DELETE_BATCH};
    let retention =
        chrono::Duration::from_std(ctx.settings.raw_retention).unwrap_or(chrono::Duration::MAX);
    let now = db::now_utc();
    let Some(before) = now.checked_sub_signed(retention) else {
        return Ok(());
    };
    // PostgreSQL: the days ahead get their partitions, the days past the retention are dropped
    // whole; the batched deletes below then only see the DEFAULT partition.
    let work = db::retention::maintain_raw_partitions(conn, now, before).await?;
    if !work.created.is_empty() || !work.dropped.is_empty() {
        tracing::info!(
            created = ?work.created, dropped = ?work.dropped,
            "raw partitions: created the days ahead, dropped the days past stats.raw_retention"
        );
    }
    let pruned =
        db::retention::prune_raw(conn, before, RAW_DELETE_BATCH, RAW_BATCHES_PER_SWEEP).await?;
    if pruned.deleted > 0 {
        tracing::info!(
            deleted = pruned.deleted,
            batches = pruned.batches,
            more = pruned.more,
            "deleted raw rows past stats.raw_retention"
        );
    }
    prunes.raw = Some(Instant::now());
    prunes.raw_backlog = pruned.more;
    Ok(())
}

/// On PostgreSQL, claims due jobs straight from the table, as many as this instance has free
/// slots, and runs them: a job enqueued by a busy (or dead) instance runs wherever there is room.
/// On SQLite, offers due ids to the channel as before: one process owns the file.
async fn claim_or_offer_due(
    ctx: &Context,
    conn: &mut db::DbConn,
    slots: &Arc<Semaphore>,
    hard_stop: &CancellationToken,
) -> Result<(), DbError> {
    if ctx.db.backend_name() != "postgres" {
        let room = ctx.queue.free_slots();
        if room > 0 {
            for id in db::jobs::due(conn, db::now_utc(), room as i64).await? {
                ctx.queue.offer(id);
            }
        }
        return Ok(());
    }
    // Slots first: a claimed job must never wait for one (its heartbeat would vouch for a job
    // nobody runs yet).
    let mut permits = Vec::new();
    while let Ok(permit) = slots.clone().try_acquire_owned() {
        permits.push(permit);
    }
    if permits.is_empty() {
        return Ok(());
    }
    let limit = permits.len() as i64;
    // Unclaimed slots go back when `permits` drops.
    let claimed = db::jobs::claim_due(conn, &ctx.worker, limit)
        .await?
        .unwrap_or_default();
    if claimed.len() > permits.len() {
        // The claim's LIMIT is the free slots; more means a bug, and a record claimed without a
        // slot would sit RUNNING until rescued: hand the surplus straight back.
        tracing::error!(
            claimed = claimed.len(),
            slots = permits.len(),
            "claimed more jobs than free slots; handing the surplus back"
        );
        for record in &claimed[permits.len()..] {
            let lease = Lease {
                record_id: record.id,
                worker: ctx.worker.clone(),
                attempt: record.attempts,
            };
            db::jobs::release(conn, &lease, db::now_utc()).await?;
        }
    }
    for (record, slot) in claimed.into_iter().zip(permits) {
        let (ctx, hard_stop) = (ctx.clone(), hard_stop.clone());
        tokio::spawn(async move {
            run_claimed(&ctx, record, &hard_stop).await;
            drop(slot);
            ctx.slot_freed.notify_one();
        });
    }
    Ok(())
}

/// Refreshes the heartbeat of this instance's running jobs every quarter of
/// `jobs.rescue_after` until `drained` (every job has finished, the shutdown grace included).
/// Not supervised: it holds nothing that can panic; a failed beat is logged and the next one
/// tries again, three more before another instance would take the jobs back.
async fn beat(ctx: Context, drained: CancellationToken) {
    let every = ctx.settings.rescue_after / 4;
    let mut failing = false;
    loop {
        let ids: Vec<i64> = ctx
            .running
            .lock()
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        if !ids.is_empty() {
            let beaten = async {
                let mut conn = ctx.db.conn().await?;
                Ok::<_, DbError>(db::jobs::heartbeat(&mut conn, &ctx.worker, &ids).await?)
            }
            .await;
            match beaten {
                Err(e) if !failing => {
                    tracing::warn!(error = %e, "heartbeat failed; retrying");
                    failing = true;
                }
                Ok(_) if failing => {
                    tracing::info!("heartbeat recovered");
                    failing = false;
                }
                _ => {}
            }
        }
        tokio::select! {
            _ = drained.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
