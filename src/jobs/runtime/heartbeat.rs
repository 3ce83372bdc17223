//! The heartbeat: this instance vouches for the jobs it is running until they have drained.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::Context;
use crate::db::{self, DbError};

/// Keeps a record in this process's heartbeat while it lives.
pub(super) struct RunningGuard {
    running: Arc<Mutex<HashSet<i64>>>,
    record_id: i64,
}

impl RunningGuard {
    pub(super) fn new(ctx: &Context, record_id: i64) -> Self {
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

/// Refreshes the heartbeat of this instance's running jobs every quarter of
/// `jobs.rescue_after` until `drained` (every job has finished, the shutdown grace included).
/// Not supervised: it holds nothing that can panic; a failed beat is logged and the next one
/// tries again, three more before another instance would take the jobs back.
pub(super) async fn beat(ctx: Context, drained: CancellationToken) {
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
