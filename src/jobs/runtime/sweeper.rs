//! The sweeper: takes back orphaned jobs, claims (PostgreSQL) or re-offers (SQLite) due jobs,
//! refills freed slots, and prunes old job records and raw rows.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::attempt::run_claimed;
use super::slots::Slots;
use super::{Context, SWEEPER};
use crate::db::jobs::Lease;
use crate::db::{self, DbError};

/// How often finished records and old raw rows are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// When the sweeper last pruned, and whether old raw rows were left for the next poll.
#[derive(Default)]
struct Prunes {
    jobs: Option<Instant>,
    raw: Option<Instant>,
    raw_backlog: bool,
}

pub(super) async fn sweep(
    ctx: Context,
    stop: CancellationToken,
    slots: Slots,
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
async fn refill_freed_slots(ctx: &Context, slots: &Slots, hard_stop: &CancellationToken) {
    if ctx.db.backend_name() != "postgres" || !ctx.queue.is_idle() || slots.free() == 0 {
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
    slots: &Slots,
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
    slots: &Slots,
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
    while let Some(permit) = slots.try_acquire() {
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
    for (record, mut slot) in claimed.into_iter().zip(permits) {
        let (ctx, hard_stop) = (ctx.clone(), hard_stop.clone());
        tokio::spawn(async move {
            run_claimed(&ctx, record, &mut slot, &hard_stop).await;
            drop(slot);
            ctx.slot_freed.notify_one();
        });
    }
    Ok(())
}
