//! The test harness: a fresh database per test on either backend, the real application on port 0,
//! request helpers, fixtures, and providers that misbehave on purpose.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ads_stats::app::{Application, StartOptions};
use ads_stats::auth::TokenVerifier;
use ads_stats::config::Settings;
use ads_stats::db::catalog::{insert_catalog, Catalog};
use ads_stats::db::models::*;
use ads_stats::db::{Db, DbConn};
use ads_stats::db_run;
use ads_stats::domain::Level;
use ads_stats::jobs::Trigger;
use ads_stats::pipeline::SyncRequest;
use ads_stats::providers::{FetchRequest, MockProvider, ProviderError, ProviderStat, StatProvider};
use chrono::NaiveDate;
use diesel::sql_types::{BigInt, Date, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

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
        // One bound, as these tests were written for: `jobs.concurrency` jobs claimed at once.
        // tests/api/slow_provider.rs sets `jobs.max_in_flight` to test the separate bounds.
        s.jobs.max_in_flight = 0;
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
        wait_until_idle(&self.db, limit).await
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
        ads_stats::db::writes::tier_counts(&mut conn, seller)
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

/// Waits until no job record is QUEUED or RUNNING (at most `limit`), whoever runs the jobs: this
/// process or a [`ServiceProcess`] on the same database.
pub async fn wait_until_idle(db: &Db, limit: Duration) {
    let started = Instant::now();
    loop {
        let (queued, running) = {
            let mut conn = db.conn().await.expect("conn");
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

/// `n` sellers named `{prefix}-0000`, `{prefix}-0001`, …, each with the [`seller_catalog`]
/// hierarchy (every row ACTIVE, so every campaign, ad set and ad delivers).
pub fn generated_catalog(prefix: &str, n: usize) -> Catalog {
    (0..n)
        .map(|i| seller_catalog(&format!("{prefix}-{i:04}")))
        .reduce(merge)
        .unwrap_or_default()
}

// ---------- the books: every successful run counted exactly once ----------

#[derive(QueryableByName)]
struct DailyBook {
    #[diesel(sql_type = Text)]
    seller_id: String,
    #[diesel(sql_type = Text)]
    level: String,
    #[diesel(sql_type = Text)]
    entity_id: String,
    #[diesel(sql_type = Date)]
    stat_date: NaiveDate,
    #[diesel(sql_type = BigInt)]
    raw_count: i64,
    #[diesel(sql_type = BigInt)]
    spend_cents: i64,
}

#[derive(QueryableByName)]
struct RawBook {
    #[diesel(sql_type = Text)]
    level: String,
    #[diesel(sql_type = Text)]
    entity_id: String,
    #[diesel(sql_type = Date)]
    stat_date: NaiveDate,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = BigInt)]
    spend_cents: i64,
}

/// What [`assert_books_balance`] looked at.
#[derive(Debug, Clone, Copy)]
pub struct Books {
    pub jobs: usize,
    pub raw_rows: i64,
    pub daily_rows: usize,
    /// Job records that needed more than one attempt.
    pub retried_jobs: usize,
    pub max_attempts: i32,
}

impl std::fmt::Display for Books {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} job records ({} retried, at most {} attempts), {} raw rows, {} daily rows",
            self.jobs, self.retried_jobs, self.max_attempts, self.raw_rows, self.daily_rows
        )
    }
}

/// Checks, after a run that `catalog` was synced with (one-day jobs, `stats.aggregation = sum`):
/// - every job record is SUCCEEDED;
/// - every daily row has `raw_count` = its raw rows (same level, entity, date) = the SUCCEEDED
///   records of its seller, level and date, and `spend_cents` = the sum of its raw rows';
/// - every raw row was folded into a daily row, and every SUCCEEDED record's seller, level and date
///   has a daily row for each of the seller's entities of that level;
/// - the raw rows the SUCCEEDED records report add up to the raw rows there are.
///
/// Nothing lost and nothing counted twice. Lists every violation (the first 20) on failure.
pub async fn assert_books_balance(db: &Db, catalog: &Catalog) -> Books {
    let mut pooled = db.conn().await.expect("conn");
    let conn = &mut pooled;
    let jobs = ads_stats::db::jobs::all(conn).await.expect("jobs");
    let daily: Vec<DailyBook> = db_run!(conn, {
        diesel::sql_query(
            "SELECT seller_id, level, entity_id, stat_date, raw_count, spend_cents \
             FROM ad_stats_daily",
        )
        .load(conn)
        .await
    })
    .expect("daily rows");
    let raw: Vec<RawBook> = db_run!(conn, {
        diesel::sql_query(
            "SELECT level, entity_id, stat_date, COUNT(*) AS n, \
                    CAST(SUM(spend_cents) AS BIGINT) AS spend_cents \
             FROM ad_stats_raw GROUP BY level, entity_id, stat_date",
        )
        .load(conn)
        .await
    })
    .expect("raw rows");

    let mut problems = Vec::new();
    for job in jobs
        .iter()
        .filter(|j| j.status != ads_stats::db::jobs::SUCCEEDED)
    {
        problems.push(format!(
            "job record {} ({}) is {} after {} attempts, last error {:?}",
            job.id, job.job_id, job.status, job.attempts, job.last_error
        ));
    }
    let mut succeeded: HashMap<(&str, &str, NaiveDate), i64> = HashMap::new();
    let mut reported_raw = 0;
    for job in jobs
        .iter()
        .filter(|j| j.status == ads_stats::db::jobs::SUCCEEDED)
    {
        assert_eq!(job.date_from, job.date_to, "one-day jobs only: {job:?}");
        *succeeded
            .entry((&job.seller_id, &job.level, job.date_from))
            .or_default() += 1;
        reported_raw += job.raw_rows.unwrap_or(0);
    }
    let raw_by_key: HashMap<(&str, &str, NaiveDate), &RawBook> = raw
        .iter()
        .map(|r| ((r.level.as_str(), r.entity_id.as_str(), r.stat_date), r))
        .collect();
    let mut daily_per_run: HashMap<(&str, &str, NaiveDate), i64> = HashMap::new();
    for d in &daily {
        *daily_per_run
            .entry((&d.seller_id, &d.level, d.stat_date))
            .or_default() += 1;
        let (raw_rows, raw_spend) = raw_by_key
            .get(&(d.level.as_str(), d.entity_id.as_str(), d.stat_date))
            .map_or((0, 0), |r| (r.n, r.spend_cents));
        let runs = succeeded
            .get(&(d.seller_id.as_str(), d.level.as_str(), d.stat_date))
            .copied()
            .unwrap_or(0);
        if d.raw_count != raw_rows || raw_rows != runs || d.spend_cents != raw_spend {
            problems.push(format!(
                "{} {} {} on {}: raw_count {}, raw rows {raw_rows}, SUCCEEDED runs {runs}, \
                 spend {} vs raw spend {raw_spend}",
                d.seller_id, d.level, d.entity_id, d.stat_date, d.raw_count, d.spend_cents
            ));
        }
    }
    let daily_keys: HashSet<(&str, &str, NaiveDate)> = daily
        .iter()
        .map(|d| (d.level.as_str(), d.entity_id.as_str(), d.stat_date))
        .collect();
    for r in raw.iter() {
        if !daily_keys.contains(&(r.level.as_str(), r.entity_id.as_str(), r.stat_date)) {
            problems.push(format!(
                "{} raw rows of {} {} on {} were never folded into a daily row",
                r.n, r.level, r.entity_id, r.stat_date
            ));
        }
    }
    let entities = entities_per_seller_and_level(catalog);
    for (&(seller, level, date), _) in succeeded.iter() {
        let expected = entities.get(&(seller, level)).copied().unwrap_or(0);
        let found = daily_per_run
            .get(&(seller, level, date))
            .copied()
            .unwrap_or(0);
        if found != expected {
            problems.push(format!(
                "{seller} {level} on {date}: daily rows for {found} of its {expected} entities"
            ));
        }
    }
    let raw_rows: i64 = raw.iter().map(|r| r.n).sum();
    if reported_raw != raw_rows {
        problems.push(format!(
            "SUCCEEDED records report {reported_raw} raw rows; the table holds {raw_rows}"
        ));
    }
    assert!(
        problems.is_empty(),
        "the books do not balance ({} problems, {} job records, {raw_rows} raw rows):\n{}",
        problems.len(),
        jobs.len(),
        problems
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    Books {
        jobs: jobs.len(),
        raw_rows,
        daily_rows: daily.len(),
        retried_jobs: jobs.iter().filter(|j| j.attempts > 1).count(),
        max_attempts: jobs.iter().map(|j| j.attempts).max().unwrap_or(0),
    }
}

/// How many entities of each level a seller of `catalog` has (all of them deliver).
fn entities_per_seller_and_level(catalog: &Catalog) -> HashMap<(&str, &'static str), i64> {
    let mut counts = HashMap::new();
    let levels = [
        (
            Level::Campaign,
            catalog
                .campaigns
                .iter()
                .map(|c| c.seller_id.as_str())
                .collect::<Vec<_>>(),
        ),
        (
            Level::Adset,
            catalog
                .adsets
                .iter()
                .map(|a| a.seller_id.as_str())
                .collect(),
        ),
        (
            Level::Ad,
            catalog.ads.iter().map(|a| a.seller_id.as_str()).collect(),
        ),
    ];
    for (level, sellers) in levels {
        for seller in sellers {
            *counts.entry((seller, level.as_str())).or_default() += 1;
        }
    }
    counts
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

    async fn fetch(&self, request: &FetchRequest<'_>) -> Result<Vec<ProviderStat>, ProviderError> {
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
        MockProvider.fetch(request).await
    }
}

// ---------- the real binary ----------

/// The `ads-stats` binary with an environment free of the developer's own settings.
pub fn ads_stats() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ads-stats"));
    for (key, _) in std::env::vars() {
        if key.starts_with("ADS_STATS_")
            || [
                "DATABASE_URL",
                "JWT_SECRET",
                "PORT",
                "RUST_LOG",
                "NOTIFY_SOCKET",
            ]
            .contains(&key.as_str())
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
    port: u16,
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
                        let _ = tx.send(listening_port(&line));
                    }
                }
                log.push_str(&line);
                log.push('\n');
            }
            log
        });
        let up = tokio::time::timeout(Duration::from_secs(30), up_rx).await;
        let Ok(Ok(Some(port))) = up else {
            let _ = child.kill().await;
            panic!("ads-stats did not start: {}", log.await.unwrap_or_default());
        };
        Self { child, log, port }
    }

    /// `http://127.0.0.1:{port}{path}` on the running service.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
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

/// The port in `… ads-stats listening address=127.0.0.1:PORT …`.
fn listening_port(line: &str) -> Option<u16> {
    let address = line
        .split_whitespace()
        .find_map(|f| f.strip_prefix("address="))?;
    address.rsplit(':').next()?.parse().ok()
}

/// Lines of a service log that report a panic, for assertions that there are none.
pub fn panics_in(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains("panicked")).collect()
}

/// A small seeded generator (SplitMix64) so random schedules can be replayed from a printed seed.
pub struct SeededRng(u64);

impl SeededRng {
    /// The seed from `env_var` when set (to replay a failure), otherwise from the clock.
    pub fn from_env_or_clock(env_var: &str) -> (Self, u64) {
        let seed = std::env::var(env_var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64)
            });
        (Self(seed), seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A duration in `[low, high)`, in whole milliseconds.
    pub fn duration_between(&mut self, low: Duration, high: Duration) -> Duration {
        let (low, high) = (low.as_millis() as u64, high.as_millis() as u64);
        Duration::from_millis(low + self.next_u64() % (high - low).max(1))
    }
}

// ---------- a network that fails ----------

/// A TCP relay (in front of PostgreSQL) that a test can cut like a network failure and heal
/// again on the same port, so clients configured with its address reconnect by themselves.
pub struct CuttableProxy {
    port: u16,
    target: String,
    relay: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

impl CuttableProxy {
    /// Relays `127.0.0.1:{port}` to `target` (`host:port`).
    pub async fn start(target: impl Into<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let port = listener.local_addr().expect("bound address").port();
        let target = target.into();
        let relay = Some(relay(listener, target.clone()));
        Self {
            port,
            target,
            relay,
        }
    }

    /// A proxy in front of the PostgreSQL server that `url` names.
    pub async fn in_front_of(url: &str) -> Self {
        Self::start(host_port(url)).await
    }

    /// `url` with its `host:port` replaced by the proxy's.
    pub fn reroute(&self, url: &str) -> String {
        url.replacen(&host_port(url), &format!("127.0.0.1:{}", self.port), 1)
    }

    /// Closes the listening port and every relayed connection; returns once all are closed.
    /// New connections are refused until [`CuttableProxy::heal`].
    pub async fn cut(&mut self) {
        if let Some((stop, task)) = self.relay.take() {
            stop.cancel();
            task.await.expect("relay stops cleanly");
        }
    }

    /// Listens again on the same port (retrying for a few seconds should the port be busy).
    pub async fn heal(&mut self) {
        assert!(self.relay.is_none(), "heal after a cut");
        let address = format!("127.0.0.1:{}", self.port);
        let started = Instant::now();
        let listener = loop {
            match TcpListener::bind(&address).await {
                Ok(listener) => break listener,
                Err(e) if started.elapsed() < Duration::from_secs(5) => {
                    eprintln!("proxy cannot listen on {address} yet ({e}); retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("the proxy could not listen on {address} again: {e}"),
            }
        };
        self.relay = Some(relay(listener, self.target.clone()));
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        if let Some((stop, _)) = &self.relay {
            stop.cancel();
        }
    }
}

fn relay(
    listener: TcpListener,
    target: String,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut links = JoinSet::new();
            loop {
                let accepted = tokio::select! {
                    _ = stop.cancelled() => break,
                    accepted = listener.accept() => accepted,
                };
                let Ok((mut inbound, _)) = accepted else {
                    // Out of file descriptors or the like: do not spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let target = target.clone();
                links.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                while links.try_join_next().is_some() {}
            }
            drop(listener);
            // Aborts every relay and waits for it, so both ends of each link are closed.
            links.shutdown().await;
        }
    });
    (stop, task)
}

/// `host:port` of a `scheme://user@host:port/db…` URL.
pub fn host_port(url: &str) -> String {
    let after_at = url.split('@').next_back().expect("split yields one part");
    after_at
        .split('/')
        .next()
        .expect("split yields one part")
        .to_string()
}

/// The sellers the scheduler's own read picks (`scheduled_connections`), one each, in order.
pub async fn scheduled_sellers(conn: &mut DbConn) -> Vec<String> {
    let mut sellers: Vec<String> = ads_stats::db::catalog::scheduled_connections(conn, None)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.seller_id)
        .collect();
    sellers.dedup(); // one row per connection, ordered by seller
    sellers
}
