//! `GET /health`: 200 when a database round trip succeeds in time and every background task runs,
//! 503 otherwise; never a hang, and never a burden on the workers.
//!
//! Load balancers, monitors and people all probe it, sometimes by the thousand. At most one
//! database probe is in flight at any moment, and callers within [`SHARE_FOR`] of a finished probe
//! share its result, so a flood of `/health` costs at most one pooled connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use futures_util::future::{BoxFuture, FutureExt, Shared};
use serde_json::json;

use super::errors::ApiError;
use super::AppState;
use crate::db::ops::OpsSnapshot;
use crate::db::ticks::SchedulerTick;
use crate::db::{self, Db, DbError};
use crate::jobs::TaskState;

/// Load balancers give up after a few seconds; answer before they do.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a probe's result answers for everyone.
const SHARE_FOR: Duration = Duration::from_secs(1);

/// A probe that has not answered by then has failed; it frees the single flight for the next.
const PROBE_LIMIT: Duration = Duration::from_secs(10);

/// What the last database probe found. The reasons are fixed text: the cause goes to the log.
#[derive(Debug, Clone)]
enum Probe {
    Ok {
        queued: i64,
        running: i64,
        /// The latest cron mark ticked by any instance (`scheduler_ticks`).
        cluster_tick: Option<Arc<SchedulerTick>>,
        /// Connections, freshness and the schedule, for `/metrics` (and `scheduleBehind`).
        ops: Arc<OpsSnapshot>,
    },
    Failed(Failure),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Busy,
    Unavailable,
    NoAnswer,
}

impl Failure {
    fn reason(self) -> &'static str {
        match self {
            Failure::Busy => "database busy",
            Failure::Unavailable => "database unavailable",
            Failure::NoAnswer => "no answer from the database within 2s",
        }
    }

    /// The same codes and waits as every other route's 503: one definition, in [`ApiError`].
    fn code_and_retry_after(self) -> (&'static str, String) {
        let as_api = match self {
            Failure::Busy => ApiError::DatabaseBusy(String::new()),
            Failure::Unavailable | Failure::NoAnswer => {
                ApiError::DatabaseUnavailable(String::new())
            }
        };
        (as_api.code(), as_api.retry_after().unwrap_or_default())
    }
}

type PendingProbe = Shared<BoxFuture<'static, Probe>>;

#[derive(Default)]
struct ProbeState {
    fresh: Option<(Instant, Probe)>,
    in_flight: Option<PendingProbe>,
    /// The last connection and schedule facts read, reused for [`OPS_SHARE_FOR`].
    ops: Option<(Instant, Arc<OpsSnapshot>)>,
}

/// How long the connection and schedule facts answer for everyone. Their freshness statement
/// costs an index lookup per synced connection and level (tens of milliseconds at a thousand
/// sellers); every probe paying it would tie the database to how often `/health` is asked.
/// Scrapes come every 15 s or more and the alerts wait minutes, so a few seconds late is fine.
const OPS_SHARE_FOR: Duration = Duration::from_secs(5);

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

    /// (queued, running) job records and the connection and schedule facts, by the same
    /// single-flight probe, or `None` when the database did not answer: `/metrics` reads them
    /// through here, so a flood of scrapes and probes together still costs at most one probe's
    /// few small queries per second.
    pub async fn scrape_counts(&self) -> Option<(i64, i64, Arc<OpsSnapshot>)> {
        match self.check().await {
            Probe::Ok {
                queued,
                running,
                ops,
                ..
            } => Some((queued, running, ops)),
            Probe::Failed(_) => None,
        }
    }

    async fn check(&self) -> Probe {
        let pending = {
            let Ok(mut state) = self.state.lock() else {
                return Probe::Failed(Failure::Unavailable);
            };
            if let Some((at, probe)) = &state.fresh {
                if at.elapsed() < SHARE_FOR {
                    return probe.clone();
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
                let probe = Probe::Failed(Failure::NoAnswer);
                if let Ok(mut state) = self.state.lock() {
                    state.fresh = Some((Instant::now(), probe.clone()));
                }
                probe
            }
        }
    }

    fn start(&self) -> PendingProbe {
        self.probes.fetch_add(1, Ordering::Relaxed);
        let (db, state) = (self.db.clone(), self.state.clone());
        let task = self.runtime.spawn(async move {
            // However the probe ends (an answer, its time limit, a panic), the next caller may
            // start a new one.
            let _free = FreeFlight(state.clone());
            let counted = async {
                let mut conn = db.conn().await?;
                let (queued, running) = db::jobs::active_counts(&mut conn).await?;
                let tick = db::ticks::latest(&mut conn).await?;
                let shared = state.lock().ok().and_then(|s| s.ops.clone());
                let ops = match shared {
                    Some((at, ops)) if at.elapsed() < OPS_SHARE_FOR => ops,
                    _ => {
                        let ops = Arc::new(db::ops::snapshot(&mut conn).await?);
                        if let Ok(mut state) = state.lock() {
                            state.ops = Some((Instant::now(), ops.clone()));
                        }
                        ops
                    }
                };
                Ok::<_, DbError>((queued, running, tick, ops))
            };
            // A connection stuck on a silent network would otherwise hold the flight for as long
            // as TCP takes to give up. Dropping the query here is safe: this is the main runtime.
            let probe = match tokio::time::timeout(PROBE_LIMIT, counted).await {
                Ok(Ok((queued, running, tick, ops))) => Probe::Ok {
                    queued,
                    running,
                    cluster_tick: tick.map(Arc::new),
                    ops,
                },
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "health probe failed");
                    Probe::Failed(match e {
                        DbError::Busy(_) => Failure::Busy,
                        _ => Failure::Unavailable,
                    })
                }
                Err(_) => {
                    tracing::warn!("health probe got no answer in time");
                    Probe::Failed(Failure::NoAnswer)
                }
            };
            if let Ok(mut state) = state.lock() {
                state.fresh = Some((Instant::now(), probe.clone()));
            }
            probe
        });
        async move { task.await.unwrap_or(Probe::Failed(Failure::Unavailable)) }
            .boxed()
            .shared()
    }
}

/// A `scheduler_ticks` row as `/health` shows it: times in UTC, counts `null` until finished.
fn cluster_tick_json(tick: &SchedulerTick) -> serde_json::Value {
    let utc = |t: chrono::NaiveDateTime| {
        t.and_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    json!({
        "mark": utc(tick.mark),
        "instance": tick.instance,
        "startedAt": utc(tick.started_at),
        "finishedAt": tick.finished_at.map(utc),
        "sellers": tick.sellers,
        "enqueued": tick.enqueued,
        "deduplicated": tick.deduplicated,
    })
}

/// Clears the in-flight probe when dropped.
struct FreeFlight(Arc<Mutex<ProbeState>>);

impl Drop for FreeFlight {
    fn drop(&mut self) {
        if let Ok(mut state) = self.0.lock() {
            state.in_flight = None;
        }
    }
}

/// For load balancers and people: database, queue, scheduler and background tasks.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses(
        (status = 200, description = "`{\"status\":\"ok\", \"database\":\"ok\", \"version\":…, \"commit\":…, \"queue\":…, \"scheduler\":…, \"tasks\":…}`; `scheduler.clusterLastTick` is the latest cron mark any instance ticked (`scheduler_ticks`), or null", body = serde_json::Value),
        (status = 503, description = "`status` is `degraded` (a background task is restarting) or `unavailable` (the database failed; `error` is `database_busy` or `database_unavailable`)", body = serde_json::Value),
    )
)]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    answer(&state).await
}

/// The same check as `GET /health`, answered without a body (for probes that send HEAD).
#[utoipa::path(
    head,
    path = "/health",
    tag = "operations",
    responses(
        (status = 200, description = "Healthy"),
        (status = 503, description = "Degraded or unavailable"),
    )
)]
pub async fn health_head(state: web::Data<AppState>) -> HttpResponse {
    answer(&state).await
}

async fn answer(state: &AppState) -> HttpResponse {
    let version = crate::build_info::VERSION;
    let commit = crate::build_info::COMMIT;
    let probe = state.health_probe.check().await;
    // One look at the tasks, after the probe, so `status` and `tasks` always agree.
    let snapshot = state.tasks.snapshot();
    let degraded = snapshot.values().any(|t| *t == TaskState::Restarting);
    let tasks: serde_json::Map<String, serde_json::Value> = snapshot
        .into_iter()
        .map(|(name, task)| (name.to_string(), task.as_str().into()))
        .collect();
    match probe {
        Probe::Ok {
            queued,
            running,
            cluster_tick,
            ops,
        } => {
            let mut scheduler =
                serde_json::to_value(state.scheduler.status()).unwrap_or_else(|_| json!({}));
            scheduler["clusterLastTick"] =
                cluster_tick.map_or(serde_json::Value::Null, |t| cluster_tick_json(&t));
            let body = json!({
                "status": if degraded { "degraded" } else { "ok" },
                "database": "ok",
                "version": version,
                "commit": commit,
                "backend": state.db.backend_name(),
                "queue": { "queued": queued, "running": running, "capacity": state.queue.capacity() },
                "scheduler": scheduler,
                // Informative only: a behind schedule is no reason to take this instance out.
                "scheduleBehind": ops.schedule_behind(),
                "tasks": tasks,
            });
            if degraded {
                HttpResponse::ServiceUnavailable()
                    .insert_header((header::RETRY_AFTER, "5"))
                    .json(body)
            } else {
                HttpResponse::Ok().json(body)
            }
        }
        Probe::Failed(failure) => {
            let (code, retry_after) = failure.code_and_retry_after();
            let mut response = HttpResponse::ServiceUnavailable()
                .insert_header((header::RETRY_AFTER, retry_after))
                .json(json!({
                    "status": "unavailable",
                    "error": code,
                    "database": failure.reason(),
                    "version": version,
                    "commit": commit,
                    "tasks": tasks,
                }));
            response.extensions_mut().insert(super::ErrorCode(code));
            response
        }
    }
}
