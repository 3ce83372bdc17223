//! The test harness: a fresh database per test on either backend, the real application on port 0,
//! request helpers, fixtures, and providers that misbehave on purpose.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ads_stats::app::{Application, StartOptions};
use ads_stats::auth::TokenVerifier;
use ads_stats::config::Settings;
use ads_stats::db::catalog::{insert_catalog, Catalog};
use ads_stats::db::models::*;
use ads_stats::db::{Db, DbConn};
use ads_stats::domain::{EntityBudget, Level};
use ads_stats::jobs::Trigger;
use ads_stats::pipeline::SyncRequest;
use ads_stats::providers::{MockProvider, ProviderError, ProviderStat, StatProvider};
use chrono::NaiveDate;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates `mod NAME { sqlite, postgres }` tests that run `async fn NAME(Backend)` on each backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            }
        )*
    };
}

/// A database that exists for one test: a temp SQLite file, or a fresh PostgreSQL schema in the
/// server `TEST_DATABASE_URL` names. Removed when dropped.
pub struct TestDb {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(std::path::PathBuf),
    Schema { server: String, schema: String },
}

pub fn pg_server_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_string())
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("ads-stats-test-{tag}"));
                std::fs::create_dir_all(&dir).expect("temp dir");
                let url = format!("sqlite://{}", dir.join("stats.db").display());
                Self {
                    url,

                    cleanup: Cleanup::Dir(dir),
                }
            }
            Backend::Postgres => {
                let server = pg_server_url();
                let schema = format!("test_{tag}");
                let mut conn = AsyncPgConnection::establish(&server)
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "PostgreSQL tests need a server, and {server} is unreachable ({e}). \
                         Start PostgreSQL or point TEST_DATABASE_URL at one, e.g. \
                         TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres"
                        )
                    });
                conn.batch_execute(&format!("CREATE SCHEMA {schema}"))
                    .await
                    .expect("create test schema");
                let separator = if server.contains('?') { '&' } else { '?' };
                let url = format!("{server}{separator}options=-csearch_path%3D{schema}");
                Self {
                    url,

                    cleanup: Cleanup::Schema { server, schema },
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Schema { server, schema } => {
                let (server, schema) = (server.clone(), schema.clone());
                // Drop runs inside a runtime; a thread with its own runtime can block on the drop.
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    rt.block_on(async {
                        if let Ok(mut conn) = AsyncPgConnection::establish(&server).await {
                            let _ = conn
                                .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                                .await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

/// Settings for tests: the given database, port 0, scheduler off, fast polling and retries.
pub fn test_settings(db_url: &str, adjust: impl FnOnce(&mut Settings)) -> Settings {
    Settings::defaults_with(|s| {
        s.database.url = db_url.to_string();
        s.database.pool_size = 6;
        s.server.port = 0;
        s.scheduler.enabled = false;
        s.jobs.poll_interval = Duration::from_millis(50);
        s.jobs.backoff = Duration::from_millis(50);
        s.jobs.shutdown_grace = Duration::from_secs(5);
        adjust(s);
    })
    .expect("test settings are valid")
}

/// Connects to a test database and applies the migrations.
pub async fn migrated_db(test_db: &TestDb) -> Db {
    let settings = test_settings(&test_db.url, |_| {});
    let db = Db::connect(&settings.database).expect("pool");
    db.run_migrations(&settings.database_url())
        .await
        .expect("migrations apply");
    db
}

pub struct TestApp {
    app: Option<Application>,
    pub address: String,
    pub client: reqwest::Client,
    pub settings: Settings,
    pub db: Db,
    pub test_db: TestDb,
}

type SettingsChange = Box<dyn FnOnce(&mut Settings)>;

pub struct AppBuilder {
    backend: Backend,
    test_db: Option<TestDb>,
    adjust: Vec<SettingsChange>,
    provider: Arc<dyn StatProvider>,
    catalog: Option<Catalog>,
}

pub fn app(backend: Backend) -> AppBuilder {
    AppBuilder {
        backend,
        test_db: None,
        adjust: Vec::new(),
        provider: Arc::new(MockProvider),
        catalog: None,
    }
}

impl AppBuilder {
    pub fn with_settings(mut self, adjust: impl FnOnce(&mut Settings) + 'static) -> Self {
        self.adjust.push(Box::new(adjust));
        self
    }

    pub fn with_provider(mut self, provider: Arc<dyn StatProvider>) -> Self {
        self.provider = provider;
        self
    }

    pub fn with_catalog(mut self, catalog: Catalog) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// Reuses a database (a restart).
    pub fn on_database(mut self, test_db: TestDb) -> Self {
        self.test_db = Some(test_db);
        self
    }

    pub async fn spawn(self) -> TestApp {
        let test_db = match self.test_db {
            Some(db) => db,
            None => TestDb::new(self.backend).await,
        };
        let adjust = self.adjust;
        let settings = test_settings(&test_db.url, move |s| {
            for f in adjust {
                f(s);
            }
        });
        let db = migrated_db(&test_db).await;
        if let Some(catalog) = &self.catalog {
            let mut conn = db.conn().await.expect("conn");
            insert_catalog(&mut conn, catalog)
                .await
                .expect("seed catalog");
        }
        let app = Application::start(&settings, self.provider, StartOptions::default())
            .await
            .expect("application starts");
        TestApp {
            address: format!("http://127.0.0.1:{}", app.port()),
            app: Some(app),
            client: reqwest::Client::new(),
            settings,
            db,
            test_db,
        }
    }
}

impl TestApp {
    pub fn app(&self) -> &Application {
        self.app.as_ref().expect("running")
    }

    pub fn token(&self, seller_id: &str) -> String {
        TokenVerifier::new(&self.settings.auth)
            .issue(seller_id, Duration::from_secs(600))
            .expect("token")
    }

    pub async fn conn(&self) -> DbConn {
        self.db.conn().await.expect("conn")
    }

    /// A request to `path` on the running service, to finish and `send` as the test needs.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.address))
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> reqwest::Response {
        request.send().await.expect("request sent")
    }

    pub async fn post_sync(&self, token: Option<&str>, body: Option<&str>) -> reqwest::Response {
        let mut req = self.request(reqwest::Method::POST, "/api/ads-manager/sync");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        self.send(req).await
    }

    pub async fn get_job(&self, token: &str, job_id: &str) -> reqwest::Response {
        let path = format!("/api/ads-manager/sync/{job_id}");
        self.send(self.request(reqwest::Method::GET, &path).bearer_auth(token))
            .await
    }

    pub async fn health(&self) -> reqwest::Response {
        self.send(self.request(reqwest::Method::GET, "/health"))
            .await
    }

    /// Waits until no job is QUEUED or RUNNING (at most `limit`).
    pub async fn wait_until_idle(&self, limit: Duration) {
        let started = Instant::now();
        loop {
            let (queued, running) = {
                let mut conn = self.conn().await;
                ads_stats::db::jobs::active_counts(&mut conn)
                    .await
                    .expect("counts")
            };
            if queued == 0 && running == 0 {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "jobs still active after {limit:?}: {queued} queued, {running} running"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until `check` holds for the job records (at most `limit`).
    pub async fn wait_for_jobs(
        &self,
        limit: Duration,
        check: impl Fn(&[JobRecord]) -> bool,
    ) -> Vec<JobRecord> {
        let started = Instant::now();
        loop {
            let jobs = self.jobs().await;
            if check(&jobs) {
                return jobs;
            }
            assert!(
                started.elapsed() < limit,
                "job records never reached the expected state: {jobs:#?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Queues today's CAMPAIGN-level sync of `seller` straight through the job queue.
    pub async fn enqueue_campaign_sync(&self, seller: &str) {
        let request = SyncRequest::one_day(seller, Level::Campaign, today());
        self.app()
            .queue()
            .enqueue(&[request], Trigger::Manual)
            .await
            .expect("enqueue");
    }

    /// (raw, daily, sellpage) row counts of one seller.
    pub async fn tier_counts(&self, seller: &str) -> (i64, i64, i64) {
        let mut conn = self.conn().await;
        ads_stats::db::stats::tier_counts(&mut conn, seller)
            .await
            .expect("counts")
    }

    pub async fn jobs(&self) -> Vec<JobRecord> {
        let mut conn = self.conn().await;
        ads_stats::db::jobs::all(&mut conn).await.expect("jobs")
    }

    /// Stops the service the way SIGTERM does and returns the database for inspection or restart.
    pub async fn shutdown(mut self) -> TestDb {
        if let Some(app) = self.app.take() {
            app.shutdown().await;
        }
        self.test_db
    }
}

// ---------- fixtures ----------

pub fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

/// A seller that syncs: an active connection, two sellpages, campaigns on them, ad sets and ads.
/// Ids are prefixed with the seller id so several sellers can share a database.
pub fn seller_catalog(seller: &str) -> Catalog {
    let mut c = Catalog::default();
    add_seller(&mut c, seller, "ACTIVE", "ACTIVE");
    let conn = format!("{seller}-conn");
    for p in 1..=2 {
        c.sellpages.push(NewSellpage {
            id: format!("{seller}-page-{p}"),
            seller_id: seller.into(),
            slug: format!("page-{p}"),
            title: format!("Page {p}"),
        });
    }
    // cmp-1 and cmp-2 on page-1, cmp-3 on page-2, cmp-4 on no page.
    let campaigns = [
        (1, Some(1), 5_000),
        (2, Some(1), 7_000),
        (3, Some(2), 2_500),
        (4, None, 1_000),
    ];
    for (k, page, budget) in campaigns {
        c.campaigns.push(NewCampaign {
            id: format!("{seller}-cmp-{k}"),
            seller_id: seller.into(),
            connection_id: conn.clone(),
            sellpage_id: page.map(|p| format!("{seller}-page-{p}")),
            name: format!("Campaign {k}"),
            status: "ACTIVE".into(),
            daily_budget_cents: budget,
        });
    }
    // cmp-1: one ad set sharing the budget and one with its own; ads under each.
    for (s, own) in [(1, None), (2, Some(1_200))] {
        c.adsets.push(NewAdset {
            id: format!("{seller}-adset-{s}"),
            seller_id: seller.into(),
            campaign_id: format!("{seller}-cmp-1"),
            name: format!("Ad set {s}"),
            status: "ACTIVE".into(),
            daily_budget_cents: own,
        });
    }
    for (a, adset) in [(1, 1), (2, 1), (3, 2)] {
        c.ads.push(NewAd {
            id: format!("{seller}-ad-{a}"),
            seller_id: seller.into(),
            adset_id: format!("{seller}-adset-{adset}"),
            name: format!("Ad {a}"),
            status: "ACTIVE".into(),
        });
    }
    c
}

/// Adds a seller with one connection and, when the connection is given, nothing else.
pub fn add_seller(c: &mut Catalog, seller: &str, status: &str, connection_status: &str) {
    c.sellers.push(NewSeller {
        id: seller.into(),
        name: format!("Seller {seller}"),
        status: status.into(),
    });
    c.connections.push(NewAdConnection {
        id: format!("{seller}-conn"),
        seller_id: seller.into(),
        provider: "META".into(),
        external_account_id: format!("act_{seller}"),
        status: connection_status.into(),
    });
}

pub fn merge(mut a: Catalog, b: Catalog) -> Catalog {
    a.sellers.extend(b.sellers);
    a.connections.extend(b.connections);
    a.sellpages.extend(b.sellpages);
    a.campaigns.extend(b.campaigns);
    a.adsets.extend(b.adsets);
    a.ads.extend(b.ads);
    a
}

// ---------- providers that misbehave on purpose ----------

/// The mock provider with a delay, a number of failures before it works, and a record of how
/// many fetches ran at once.
#[derive(Default)]
pub struct TestProvider {
    pub delay: Duration,
    failures_left: AtomicU32,
    in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    pub calls: AtomicUsize,
}

impl TestProvider {
    pub fn new(delay: Duration, failures: u32) -> Arc<Self> {
        Arc::new(Self {
            delay,
            failures_left: AtomicU32::new(failures),
            ..Default::default()
        })
    }
}

#[async_trait::async_trait]
impl StatProvider for TestProvider {
    fn name(&self) -> &'static str {
        "mock"
    }

    async fn fetch(
        &self,
        seller_id: &str,
        level: Level,
        entities: &[EntityBudget],
        date: NaiveDate,
    ) -> Result<Vec<ProviderStat>, ProviderError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let fail = self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Err(ProviderError::Request(
                "provider is having a bad day".into(),
            ));
        }
        MockProvider.fetch(seller_id, level, entities, date).await
    }
}

// ---------- the real binary ----------

/// The `ads-stats` binary with an environment free of the developer's own settings.
pub fn ads_stats() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ads-stats"));
    for (key, _) in std::env::vars() {
        if key.starts_with("ADS_STATS_")
            || ["DATABASE_URL", "JWT_SECRET", "PORT", "RUST_LOG"].contains(&key.as_str())
        {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd.kill_on_drop(true);
    cmd
}

/// `ads-stats serve` as a child process, started and stopped the way an operator would.
pub struct ServiceProcess {
    child: tokio::process::Child,
    log: tokio::task::JoinHandle<String>,
}

impl ServiceProcess {
    /// Starts `ads-stats serve` on a free port and waits until it logs that it listens.
    pub async fn start(envs: &[(&str, &str)]) -> Self {
        let mut child = ads_stats()
            .arg("serve")
            .env("PORT", "0")
            .envs(envs.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("ads-stats starts");
        let stderr = child.stderr.take().expect("stderr");
        let (up_tx, up_rx) = tokio::sync::oneshot::channel();
        let log = tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            let mut log = String::new();
            let mut up = Some(up_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("ads-stats listening") {
                    if let Some(tx) = up.take() {
                        let _ = tx.send(());
                    }
                }
                log.push_str(&line);
                log.push('\n');
            }
            log
        });
        let up = tokio::time::timeout(Duration::from_secs(30), up_rx).await;
        if !matches!(up, Ok(Ok(()))) {
            let _ = child.kill().await;
            panic!("ads-stats did not start: {}", log.await.unwrap_or_default());
        }
        Self { child, log }
    }

    /// SIGTERM, then the exit status and everything it logged.
    pub async fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("stops within its grace periods")
            .expect("exit status");
        (status, self.log.await.unwrap_or_default())
    }

    /// SIGKILL: the process dies wherever it is, as in a crash or an OOM kill.
    pub async fn crash(mut self) -> String {
        self.child.kill().await.expect("SIGKILL");
        self.log.await.unwrap_or_default()
    }
}
