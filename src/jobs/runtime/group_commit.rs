//! Group commit: jobs that have fetched and find every write slot taken share one write
//! transaction. Each job puts its readings in a shared list, then waits for a write slot or for
//! its answer, whichever comes first. Whoever gets a slot takes what is waiting (itself first,
//! when still there) and writes it with [`Pipeline::commit_batch`](crate::pipeline::Pipeline::commit_batch),
//! then answers each job. Uncontended, a job finds a slot at once and writes alone, as before.

use std::sync::Mutex;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::slots::Slot;
use super::Context;
use crate::db::jobs::Lease;
use crate::pipeline::{Fetched, PipelineError, SyncSummary};

/// At most this many jobs in one transaction, so that a large `jobs.max_in_flight` (500 by
/// default) does not make one transaction hold hundreds of SUCCEEDED marks.
pub(super) const MAX_JOBS: usize = 64;

/// At most about this many raw rows in one transaction (a job with more is written alone): a
/// transaction short enough that a rollback and the
/// one-by-one rewrite that follows stay cheap.
pub(super) const MAX_RAW_ROWS: usize = 10_000;

/// Raw rows of fetched jobs waiting to be written above which a job that joins them keeps its
/// provider slot until it is written, so no further job is claimed: what bounds the readings held
/// in memory (about 400 bytes a row) when the provider answers faster than the database writes.
pub(super) const MAX_WAITING_ROWS: usize = 50_000;

/// Jobs that have fetched and wait to be written.
#[derive(Default)]
pub(super) struct GroupCommit {
    pending: Mutex<Vec<Waiting>>,
}

struct Waiting {
    record_id: i64,
    fetched: Fetched,
    lease: Lease,
    answer: oneshot::Sender<Result<SyncSummary, PipelineError>>,
}

impl Waiting {
    fn key(&self) -> (&str, crate::domain::Level) {
        self.fetched.request.group_commit_key()
    }
}

/// How a job's write ended.
pub(super) enum Written {
    /// Written, alone or in a batch, with this outcome.
    Done(Result<SyncSummary, PipelineError>),
    /// A hard stop came before any write began: the job is handed back.
    Released,
    /// The task writing the batch ended without an answer (it panicked). Whether the batch
    /// committed is unknown; the job's record says (its lease guards any further change).
    Lost,
}

impl GroupCommit {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Waiting>> {
        // A panic while holding the lock leaves the list whole (pushes and removals only).
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `record_id` back out of the list; `false` when a batch took it already.
    fn withdraw(&self, record_id: i64) -> bool {
        let mut pending = self.lock();
        let before = pending.len();
        pending.retain(|w| w.record_id != record_id);
        pending.len() < before
    }

    /// The next batch: `first` when still waiting, then the others in the order they came, leaving
    /// out any whose seller and level are already in the batch, up to [`MAX_JOBS`] jobs and
    /// [`MAX_RAW_ROWS`] rows (the first job always goes, whatever its size).
    fn take(&self, first: i64) -> Vec<Waiting> {
        let mut pending = self.lock();
        let mut order: Vec<usize> = Vec::new();
        if let Some(at) = pending.iter().position(|w| w.record_id == first) {
            order.push(at);
        }
        order.extend((0..pending.len()).filter(|&at| pending[at].record_id != first));
        let mut chosen: Vec<usize> = Vec::new();
        let mut rows = 0;
        for at in order {
            let w = &pending[at];
            let size = w.fetched.rows.len();
            let fits = chosen.is_empty()
                || (chosen.len() < MAX_JOBS
                    && rows + size <= MAX_RAW_ROWS
                    && chosen.iter().all(|&c| pending[c].key() != w.key()));
            if fits {
                chosen.push(at);
                rows += size;
            }
            if chosen.len() == MAX_JOBS {
                break;
            }
        }
        // Remove from the back so the positions still to remove stay valid, then restore the
        // chosen order (the first job first).
        let mut by_position = chosen.clone();
        by_position.sort_unstable_by(|a, b| b.cmp(a));
        let mut taken: Vec<(usize, Waiting)> = by_position
            .into_iter()
            .map(|at| (at, pending.remove(at)))
            .collect();
        taken.sort_by_key(|(at, _)| chosen.iter().position(|c| c == at));
        taken.into_iter().map(|(_, w)| w).collect()
    }
}

/// Writes a fetched job: at once when a write slot is free, otherwise in the batch of whichever
/// job gets a slot first. At a hard stop a job not yet taken into a batch is handed back; one
/// taken is never cancelled half-way (its transaction is short and bounded by the database's
/// own timeouts).
pub(super) async fn write(
    ctx: &Context,
    fetched: Fetched,
    lease: &Lease,
    slot: &mut Slot,
    hard_stop: &CancellationToken,
) -> Written {
    let record_id = lease.record_id;
    let (answer, mut answered) = oneshot::channel();
    let waiting_rows = {
        let mut pending = ctx.group.lock();
        pending.push(Waiting {
            record_id,
            fetched,
            lease: lease.clone(),
            answer,
        });
        pending.iter().map(|w| w.fetched.rows.len()).sum::<usize>()
    };
    // The provider slot goes to the next job at once, unless the readings waiting here are
    // already many: then it is given back only with the in-flight slot, at the job's outcome.
    if waiting_rows <= MAX_WAITING_ROWS {
        slot.fetched();
    }
    let outcome = |answer: Result<_, oneshot::error::RecvError>| match answer {
        Ok(result) => Written::Done(result),
        Err(_) => Written::Lost,
    };
    // The job stays in the heartbeat while it waits, so its lease outlives a long wait.
    let slot = tokio::select! {
        biased;
        answer = &mut answered => return outcome(answer),
        _ = hard_stop.cancelled() => {
            if ctx.group.withdraw(record_id) {
                return Written::Released;
            }
            return outcome(answered.await);
        }
        // The semaphore is never closed.
        slot = ctx.writes.clone().acquire_owned() => slot,
    };
    let batch = ctx.group.take(record_id);
    if !batch.is_empty() {
        let (jobs, answers): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .map(|w| ((w.fetched, w.lease), w.answer))
            .unzip();
        // In the span of the job that writes; each job still logs its own outcome in its own.
        let span = crate::telemetry::traces::transaction_span(ctx.db.backend_name(), "job write");
        let results = ctx.pipeline.commit_batch(jobs).instrument(span).await;
        for (answer, result) in answers.into_iter().zip(results) {
            // A job that is gone no longer waits for its answer; nothing to tell it.
            let _ = answer.send(result);
        }
    }
    drop(slot);
    outcome(answered.await)
}
