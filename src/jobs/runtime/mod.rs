//! Workers: take record ids off the channel, each a turn to claim the next due record in claim
//! order (class, then `run_at`, then id; see [`super::Priority`]), run the pipeline, and record
//! the outcome. Three bounds: a claimed job holds one of `jobs.max_in_flight` slots from its
//! claim to its outcome, one of `jobs.max_provider_requests` only while it waits on the provider,
//! and one of `jobs.concurrency` write slots only for its write transaction, so jobs waiting on a
//! slow provider do not keep the database work waiting; jobs that find every write slot taken are
//! written together in the next free one's transaction (group commit).
//! Beside them a sweeper
//! finds due jobs (retries, jobs left by a restart, and on PostgreSQL jobs any instance enqueued,
//! claimed straight from the table), takes back jobs orphaned by a dead process and prunes old
//! records; a heartbeat task vouches for this instance's running jobs until the last of them has
//! drained.
//!
//! This file starts and stops the tasks; `dispatch`, `attempt`, `sweeper` and `heartbeat` each
//! hold one of them, `slots` the claim bounds, `group_commit` the shared write path.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::queue::JobQueue;
use super::supervisor::{supervise, TaskFaults, TaskHealth};
use crate::db::Db;
use crate::pipeline::Pipeline;
use crate::telemetry::metrics::Metrics;

mod attempt;
mod dispatch;
mod group_commit;
mod heartbeat;
mod slots;
mod sweeper;

use dispatch::dispatch;
use heartbeat::beat;
use slots::Slots;
use sweeper::sweep;

/// The `jobs.*` settings the runtime uses.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// Jobs in their write transaction at once.
    pub concurrency: usize,
    /// Jobs claimed at once (the effective `jobs.max_in_flight`, at least `concurrency`).
    pub max_in_flight: usize,
    /// Jobs waiting on the provider at once (the effective `jobs.max_provider_requests`, at most
    /// `max_in_flight`).
    pub max_provider_requests: usize,
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
            max_provider_requests: s.provider_requests(),
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
    /// Signalled each time a job gives a slot back (its provider slot after the fetch, its
    /// in-flight slot at its outcome), so the sweeper refills it at once.
    slot_freed: Arc<Notify>,
    /// One permit per write slot (`jobs.concurrency`): a job holds one only for its commit.
    writes: Arc<Semaphore>,
    /// Jobs that have fetched and wait for a write slot: the next slot writes them together.
    group: Arc<group_commit::GroupCommit>,
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
    /// The in-flight and provider slots (see [`Slots`]); a claimed job holds its in-flight slot
    /// until its outcome is recorded. Outside the dispatcher, so a dispatcher that is restarted
    /// neither forgets nor aborts the jobs already running.
    slots: Slots,
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
            max_in_flight = settings.max_in_flight,
            max_provider_requests = settings.max_provider_requests, "job workers started"
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
            group: Arc::default(),
        };
        let stop = CancellationToken::new();
        let hard_stop = CancellationToken::new();
        let slots = Slots::new(
            settings.max_in_flight,
            settings.max_provider_requests,
            ctx.slot_freed.clone(),
        );
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
        let running = self.slots.taken();
        if running > 0 {
            tracing::info!(
                running,
                grace_s = self.settings.shutdown_grace.as_secs_f32(),
                "waiting for running jobs"
            );
        }
        let drained =
            tokio::time::timeout(self.settings.shutdown_grace, self.slots.drained()).await;
        if drained.is_err() {
            tracing::warn!(
                left = self.slots.taken(),
                "shutdown grace over: handing unfinished jobs back to the queue"
            );
            self.hard_stop.cancel();
            self.slots.drained().await;
        }
        self.drained.cancel();
        let _ = self.heartbeat.await;
    }
}
