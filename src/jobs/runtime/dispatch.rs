//! The dispatcher: ids off the channel, each a turn for one free slot (in flight and provider)
//! to claim the next due record in claim order.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::attempt::run_claimed;
use super::slots::Slots;
use super::{Context, DISPATCHER};
use crate::db::models::JobRecord;
use crate::db::{self, DbError};
use crate::jobs::queue::JobQueue;

/// Hands ids from the channel to workers, one per free slot.
///
/// It takes an id before it waits for a slot, so that an idle dispatcher holds no slot: on
/// PostgreSQL the sweeper fills every free slot with jobs claimed from the table.
pub(super) async fn dispatch(
    ctx: Context,
    receiver: Arc<tokio::sync::Mutex<mpsc::Receiver<i64>>>,
    slots: Slots,
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
            slot = slots.acquire() => slot,
        };
        let ctx = ctx.clone();
        let hard_stop = hard_stop.clone();
        tokio::spawn(async move {
            let mut slot = slot;
            let claimed = claim(&ctx, record_id).await;
            drop(held);
            match claimed {
                Ok(Some(record)) => run_claimed(&ctx, record, &mut slot, &hard_stop).await,
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

/// Claims the next due job in claim order, not necessarily `_delivered`: an id on the channel is
/// a turn to run a job, and the turn goes to the most urgent due record (see
/// [`crate::jobs::Priority`]). The delivered record, if passed over, stays QUEUED for a later turn
/// or the sweeper.
async fn claim(ctx: &Context, _delivered: i64) -> Result<Option<JobRecord>, DbError> {
    let mut conn = ctx.db.conn().await?;
    Ok(db::jobs::claim_next(&mut conn, &ctx.worker).await?)
}
