//! `GET /health`: 200 when a database round trip succeeds in time and every background task runs,
//! 503 otherwise; never a hang, and never a burden on the workers.
//!
//! Load balancers, monitors and people all probe it, sometimes by the thousand. At most one
//! database probe is in flight at any moment, and callers within [`SHARE_FOR`] of a finished probe
//! share its result, so a flood of `/health` costs at most one pooled connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use futures_util::future::{BoxFuture, FutureExt, Shared};
use serde_json::json;

use super::AppState;
use crate::db::{self, Db, DbError};

/// Load balancers give up after a few seconds; answer before they do.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a probe's result answers for everyone.
const SHARE_FOR: Duration = Duration::from_secs(1);

/// What the last database probe found. The reasons are fixed text: the cause goes to the log.
#[derive(Debug, Clone, Copy)]
enum Probe {
    Ok { queued: i64, running: i64 },
    Failed(&'static str),
}

type PendingProbe = Shared<BoxFuture<'static, Probe>>;

#[derive(Default)]
struct ProbeState {
    fresh: Option<(Instant, Probe)>,
    in_flight: Option<PendingProbe>,
}

/// The single-flight database probe behind `/health`.
pub struct HealthProbe {
    db: Db,
    /// The process's main runtime: the probe runs there, so a caller that gives up (timeout,
    /// disconnect) never drops a query half-way on an HTTP worker's runtime.
    runtime: tokio::runtime::Handle,
    state: Arc<Mutex<ProbeState>>,
    probes: Arc<AtomicU64>,
}

impl HealthProbe {
    pub fn new(db: Db, runtime: tokio::runtime::Handle) -> Self {
        Self {
            db,
            runtime,
            state: Arc::default(),
            probes: Arc::default(),
        }
    }

    /// Database probes run since start (what a flood of `/health` really cost).
    pub fn probes_run(&self) -> u64 {
        self.probes.load(Ordering::Relaxed)
    }

    /// (queued, running) job records by the same single-flight probe, or `None` when the database
    /// did not answer: `/metrics` reads the queue through here, so a flood of scrapes and probes
    /// together still costs at most one small query per second.
    pub async fn queue_counts(&self) -> Option<(i64, i64)> {
        match self.check().await {
            Probe::Ok { queued, running } => Some((queued, running)),
            Probe::Failed(_) => None,
        }
    }

    async fn check(&self) -> Probe {
        let pending = {
            let Ok(mut state) = self.state.lock() else {
                return Probe::Failed("internal error");
            };
            if let Some((at, probe)) = state.fresh {
                if at.elapsed() < SHARE_FOR {
                    return probe;
                }
            }
            match &state.in_flight {
                Some(pending) => pending.clone(),
                None => {
                    let pending = self.start();
                    state.in_flight = Some(pending.clone());
                    pending
                }
            }
        };
        match tokio::time::timeout(DATABASE_TIMEOUT, pending).await {
            Ok(probe) => probe,
            Err(_) => {
                // The probe keeps running (still the only one); its answer replaces this one.
                let probe = Probe::Failed("no answer from the database within 2s");
                if let Ok(mut state) = self.state.lock() {
                    state.fresh = Some((Instant::now(), probe));
                }
                probe
            }
        }
    }

    fn start(&self) -> PendingProbe {
        self.probes.fetch_add(1, Ordering::Relaxed);
        let (db, state) = (self.db.clone(), self.state.clone());
        let task = self.runtime.spawn(async move {
            let counted = async {
                let mut conn = db.conn().await?;
                Ok::<_, DbError>(db::jobs::active_counts(&mut conn).await?)
            };
            let probe = match counted.await {
                Ok((queued, running)) => Probe::Ok { queued, running },
                Err(e) => {
                    tracing::warn!(error = %e, "health probe failed");
                    Probe::Failed(match e {
                        DbError::Busy(_) => "database busy",
                        _ => "database unavailable",
                    })
                }
            };
            if let Ok(mut state) = state.lock() {
                state.fresh = Some((Instant::now(), probe));
                state.in_flight = None;
            }
            probe
        });
        async move {
            task.await
                .unwrap_or(Probe::Failed("the health probe stopped"))
        }
        .boxed()
        .shared()
    }
}

pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let version = env!("CARGO_PKG_VERSION");
    let tasks: serde_json::Map<String, serde_json::Value> = state
        .tasks
        .snapshot()
        .into_iter()
        .map(|(name, task)| (name.to_string(), task.as_str().into()))
        .collect();
    match state.health_probe.check().await {
        Probe::Ok { queued, running } => {
            let degraded = state.tasks.degraded();
            let body = json!({
                "status": if degraded { "degraded" } else { "ok" },
                "database": "ok",
                "version": version,
                "backend": state.db.backend_name(),
                "queue": { "queued": queued, "running": running, "capacity": state.queue.capacity() },
                "scheduler": state.scheduler.status(),
                "tasks": tasks,
            });
            if degraded {
                HttpResponse::ServiceUnavailable().json(body)
            } else {
                HttpResponse::Ok().json(body)
            }
        }
        Probe::Failed(reason) => HttpResponse::ServiceUnavailable().json(json!({
            "status": "unavailable",
            "database": reason,
            "version": version,
            "tasks": tasks,
        })),
    }
}
