//! Wiring: one pool, the job runtime, the scheduler and the HTTP server in one process, and the
//! order they stop in.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::{ServerHandle, Service};
use actix_web::{App, HttpServer};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::auth::TokenVerifier;
use crate::config::{parse_cron, DatabaseUrl, Settings};
use crate::db::{Db, DbError};
use crate::http::{self, AppState};
use crate::jobs::{
    supervise, JobQueue, JobRuntime, RuntimeSettings, Scheduler, TaskFaults, TaskHealth, TaskState,
    SCHEDULER,
};
use crate::pipeline::Pipeline;
use crate::providers::StatProvider;
use crate::telemetry::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error("invalid setting: {0}")]
    Settings(String),
    #[error("{0} is in use by another ads-stats process; one process serves an SQLite file (use PostgreSQL to run several)")]
    AlreadyRunning(String),
}

/// How to start beyond what the settings say.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartOptions {
    /// Run one scheduler tick right away instead of waiting for the first cron mark.
    pub tick_now: bool,
}

/// A running service. Dropping it leaves the tasks running; call [`Application::shutdown`].
pub struct Application {
    port: u16,
    db: Db,
    pipeline: Pipeline,
    queue: JobQueue,
    scheduler: Scheduler,
    server: ServerHandle,
    server_task: JoinHandle<std::io::Result<()>>,
    runtime: JobRuntime,
    scheduler_stop: CancellationToken,
    scheduler_task: Option<JoinHandle<()>>,
    state: Arc<AppState>,
    faults: Arc<TaskFaults>,
    /// SQLite only: the lock that keeps a second process (and its scheduler) off the file.
    exclusive: Option<std::fs::File>,
}

impl Application {
    /// Connects, migrates (when `database.run_migrations`), binds, and starts the workers, the
    /// scheduler (when `scheduler.enabled`) and the HTTP server.
    pub async fn start(
        settings: &Settings,
        provider: Arc<dyn StatProvider>,
        options: StartOptions,
    ) -> Result<Self, StartupError> {
        let exclusive = match settings.database_url() {
            DatabaseUrl::Sqlite(path) => Some(lock_exclusively(&path)?),
            DatabaseUrl::Postgres(_) => None,
        };
        let db = Db::connect(&settings.database)?;
        if settings.database.run_migrations {
            let applied = db.run_migrations(&settings.database_url()).await?;
            tracing::info!(applied, backend = db.backend_name(), "migrations checked");
        }
        // In the background: a database that is slow to answer never delays the start.
        tokio::spawn({
            let db = db.clone();
            async move { db.warm_up().await }
        });
        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&address).map_err(|source| StartupError::Bind {
            address: address.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or(settings.server.port);

        let metrics = Metrics::new();
        let pipeline = Pipeline::new(db.clone(), provider, settings.stats.aggregation)
            .with_account_refresh(settings.meta.account_refresh)
            .with_metrics(metrics.clone());
        let (queue, receiver) = JobQueue::new(
            db.clone(),
            settings.jobs.queue_capacity,
            settings.jobs.max_attempts,
        );
        let queue = queue.with_max_active_per_seller(settings.jobs.max_active_per_seller);
        let tasks = TaskHealth::default();
        let faults = Arc::new(TaskFaults::default());
        let runtime = JobRuntime::start(
            db.clone(),
            pipeline.clone(),
            queue.clone(),
            receiver,
            RuntimeSettings::from(&settings.jobs).with_raw_retention(settings.stats.raw_retention),
            tasks.clone(),
            faults.clone(),
            metrics.clone(),
        );
        let schedule = parse_cron(&settings.scheduler.cron).map_err(StartupError::Settings)?;
        let scheduler = Scheduler::new(
            db.clone(),
            queue.clone(),
            schedule,
            settings.scheduler_timezone(),
            settings.scheduler.enabled,
            metrics.clone(),
            runtime.worker().to_string(),
            settings.jobs.rescue_after,
        )
        .with_lookback_days(settings.lookback_days())
        .with_lookback_hour(settings.stats.lookback_hour)
        .with_provider(settings.provider);
        let scheduler_stop = CancellationToken::new();
        let scheduler_task = settings.scheduler.enabled.then(|| {
            let (scheduler, stop, faults) =
                (scheduler.clone(), scheduler_stop.clone(), faults.clone());
            // Only the first run ticks at once; a restarted scheduler waits for the next mark.
            let tick_now = Arc::new(std::sync::atomic::AtomicBool::new(options.tick_now));
            supervise(
                SCHEDULER,
                tasks.clone(),
                scheduler_stop.clone(),
                move || {
                    let first = tick_now.swap(false, std::sync::atomic::Ordering::SeqCst);
                    scheduler.clone().run(stop.clone(), first, faults.clone())
                },
            )
        });
        if !settings.scheduler.enabled {
            tasks.set(SCHEDULER, TaskState::Stopped);
        }

        let state = Arc::new(AppState {
            db: db.clone(),
            queue: queue.clone(),
            scheduler: scheduler.clone(),
            verifier: TokenVerifier::new(&settings.auth),
            max_body_bytes: settings.server.max_body_bytes,
            body_timeout: settings.server.body_timeout,
            sync_limiter: http::KeyedRateLimiter::per_minute(
                settings.rate_limit.manual_syncs_per_minute,
            ),
            tasks: tasks.clone(),
            health_probe: http::HealthProbe::new(db.clone(), tokio::runtime::Handle::current()),
            runtime: tokio::runtime::Handle::current(),
            metrics: metrics.clone(),
            metrics_enabled: settings.metrics.enabled,
            metrics_token: settings.metrics.bearer_token.clone(),
            dashboard: http::Dashboard::from_settings(settings),
            seller_gate: http::SellerGate::new(),
            trusted_proxies: settings.server.trusted_proxies.clone(),
        });
        let server_state = state.clone();
        let trusted_proxies = settings.server.trusted_proxies.clone();
        let server = HttpServer::new(move || {
            let metrics = metrics.clone();
            let trusted_proxies = trusted_proxies.clone();
            App::new()
                .wrap_fn(move |req, srv| {
                    let started = Instant::now();
                    let method = req.method().to_string();
                    let path = req.path().to_string();
                    // Behind a trusted load balancer, the address it forwarded for, not its own.
                    let client = http::client_ip(req.peer_addr(), req.headers(), &trusted_proxies)
                        .map(|ip| ip.to_string())
                        .unwrap_or_default();
                    // Off (and free) unless traces are exported.
                    let span = http::request_span(&req);
                    let response = span.in_scope(|| srv.call(req));
                    let metrics = metrics.clone();
                    let request_span = span.clone();
                    async move {
                        let response = response.await?;
                        let status = response.status().as_u16();
                        // The route pattern, never the path: ids in paths would make a series
                        // per job.
                        let route = response.request().match_pattern();
                        metrics.http_request(&method, route.as_deref(), status, started.elapsed());
                        crate::telemetry::traces::record_http_response(&request_span, &method, route.as_deref(), status);
                        if let Some(code) = response.response().extensions().get::<http::ErrorCode>() {
                            metrics.http_error(code.0);
                        }
                        let duration_ms = started.elapsed().as_millis() as u64;
                        // Load balancers probe /health every few seconds; keep those quiet
                        // unless they fail.
                        if path == "/health" && status == 200 {
                            tracing::debug!(http.method = %method, http.path = %path, http.status = status, client.ip = %client, duration_ms, "request");
                        } else {
                            tracing::info!(http.method = %method, http.path = %path, http.status = status, client.ip = %client, duration_ms, "request");
                        }
                        Ok(response)
                    }
                    .instrument(span)
                })
                .configure(http::configure(server_state.clone()))
        })
        .disable_signals()
        .shutdown_timeout(settings.server.shutdown_timeout.as_secs())
        .listen(listener)
        .map_err(|source| StartupError::Bind {
            address: address.clone(),
            source,
        })?
        .run();
        let handle = server.handle();
        let server_task = tokio::spawn(server);
        tracing::info!(
            address = %format!("{}:{port}", settings.server.host), backend = db.backend_name(),
            scheduler = settings.scheduler.enabled, version = crate::build_info::VERSION,
            commit = crate::build_info::COMMIT, "ads-stats listening"
        );
        Ok(Self {
            port,
            db,
            pipeline,
            queue,
            scheduler,
            server: handle,
            server_task,
            runtime,
            scheduler_stop,
            scheduler_task,
            state,
            faults,
            exclusive,
        })
    }

    /// The bound port (useful with `server.port = 0`).
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    pub fn queue(&self) -> &JobQueue {
        &self.queue
    }

    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// This instance's name: what job records it runs show in `locked_by` (`instance` in the
    /// job status API). A new one at every start.
    pub fn instance(&self) -> &str {
        self.runtime.worker()
    }

    /// Whether each background task (dispatcher, sweeper, scheduler) is running.
    pub fn tasks(&self) -> &TaskHealth {
        &self.state.tasks
    }

    /// Test hook: make a background task crash, as a bug would.
    pub fn task_faults(&self) -> &TaskFaults {
        &self.faults
    }

    /// Database probes `/health` has run since start.
    pub fn health_probes_run(&self) -> u64 {
        self.state.health_probe.probes_run()
    }

    /// Runs until `stop` is cancelled, then shuts down.
    pub async fn run_until(self, stop: CancellationToken) {
        stop.cancelled().await;
        self.shutdown().await;
    }

    /// Stops taking work at once, then lets in-flight requests and running jobs finish side by
    /// side (running jobs get `jobs.shutdown_grace`; jobs not started stay QUEUED).
    pub async fn shutdown(self) {
        tracing::info!("shutting down");
        // Intake stops at once (no new connection, no tick, no job started); then the HTTP drain
        // and the running jobs' grace run side by side, so a stop takes at most the longer of
        // `server.shutdown_timeout` and `jobs.shutdown_grace`, not their sum. A sync accepted by
        // a request still draining is recorded QUEUED and runs at the next start.
        self.scheduler_stop.cancel();
        let http = async {
            self.server.stop(true).await;
            let _ = self.server_task.await;
        };
        let jobs = async {
            if let Some(task) = self.scheduler_task {
                let _ = task.await;
            }
            self.runtime.shutdown().await;
        };
        tokio::join!(http, jobs);
        drop(self.exclusive);
        tracing::info!("stopped");
    }
}

/// Takes an exclusive lock on `<file>.lock` beside the SQLite file, held until the process stops
/// or the application shuts down. The operating system drops it when the process dies, so a crash
/// never leaves it behind.
fn lock_exclusively(db: &std::path::Path) -> Result<std::fs::File, StartupError> {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    let path = std::path::PathBuf::from(name);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            DbError::Unavailable(format!("cannot create {}: {e}", parent.display()))
        })?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| DbError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(StartupError::AlreadyRunning(db.display().to_string()))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(StartupError::Db(DbError::Unavailable(
            format!("cannot lock {}: {e}", path.display()),
        ))),
    }
}

/// A token cancelled at the first SIGTERM or SIGINT: the one signal handler of the process.
/// The handlers are registered before this returns, so a signal that arrives as soon as the
/// service logs that it listens is already caught.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::spawn(async move {
                    tokio::select! {
                        _ = term.recv() => tracing::info!("SIGTERM received"),
                        _ = int.recv() => tracing::info!("SIGINT received"),
                    }
                    cancel.cancel();
                });
                return token;
            }
            _ => tracing::warn!("cannot install signal handlers; falling back to Ctrl-C only"),
        }
    }
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("SIGINT received");
        cancel.cancel();
    });
    token
}
