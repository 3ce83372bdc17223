//! What does a tick cost, and what do more instances buy? Seeds N sellers (10 campaigns x 3 ad
//! sets x 3 ads each) and, in one run, times:
//!
//! 1. the floor: the same raw rows written by one COPY (PostgreSQL; multi-row INSERTs on SQLite)
//!    plus one set-based upsert into the daily table, for a first and a second tick of a day;
//! 2. tick 1 and tick 2 through the real service (the built `ads-stats` binary: its scheduler
//!    fires on a cron mark, its workers run every job), with 1 and 3 instances on PostgreSQL and
//!    1 on SQLite, each tick's ratio to the floor;
//! 3. a slow provider (`mock.latency`): 1 against 3 instances, with default settings (so
//!    `jobs.max_provider_requests` jobs wait on the provider at once, `jobs.concurrency` write);
//! 4. the enqueue of a tick at 100,000 sellers (the scheduler's own timing in `scheduler_ticks`);
//! 5. POST /api/ads-manager/sync under `wrk` with every seller's token while the jobs run.
//!
//! Run it with:
//!
//! ```text
//! BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench tick
//! ... cargo bench --bench tick -- --sellers 1000,10000 --skip-sqlite
//! ... cargo bench --bench tick -- --only-slow --slow-sellers 1000 --latency 1s --slow-instances 1
//! ```
//!
//! Options: --sellers LIST (1000; each size gets its own floor and ratios), --slow-sellers N
//! (200), --latency D (200ms), --load-seconds S (10), --enqueue-sellers N (100000), --instances
//! LIST (1,3: PostgreSQL instance counts), --ticks N (2), --skip-sqlite, --skip-slow,
//! --skip-enqueue, --skip-load, --slow-instances LIST (1,3), --only-slow (the slow-provider case
//! alone).
//! Without BENCH_DATABASE_URL only SQLite is measured. Each scenario gets a database of its own
//! (dropped afterwards), so `pg_stat_database` counts only its commits. Targets are printed next
//! to the figures; nothing here asserts them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ads_stats::config::{parse_duration, Settings};
use ads_stats::db::catalog::{DeliveringAd, DeliveringAdset, DeliveringCampaign};
use ads_stats::db::models::NewRawStat;
use ads_stats::db::{self, Db, DbConn};
use ads_stats::db_run;
use ads_stats::domain::EntityBudget;
use ads_stats::pipeline::entities::{ad_budgets, adset_budgets, campaign_budgets};
use ads_stats::providers::mock::mock_metrics;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};
use diesel::sql_types::{BigInt, Nullable, Timestamp};
use diesel::QueryableByName;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};

const BINARY: &str = env!("CARGO_BIN_EXE_ads-stats");
const CAMPAIGNS: usize = 10;
const ADSETS: usize = 3;
const ADS: usize = 3;

struct Options {
    /// Seller counts to run the ticks at, each with its own floor.
    sellers: Vec<usize>,
    slow_sellers: usize,
    latency: Duration,
    load_seconds: u64,
    enqueue_sellers: usize,
    /// Instance counts to run the PostgreSQL ticks with.
    instances: Vec<usize>,
    ticks: usize,
    sqlite: bool,
    slow: bool,
    /// Instance counts to run the slow-provider tick with.
    slow_instances: Vec<usize>,
    /// Only the slow-provider case: no floor, no fast ticks.
    only_slow: bool,
    enqueue: bool,
    load: bool,
}

impl Options {
    fn parse() -> Self {
        let mut o = Options {
            sellers: vec![1000],
            slow_sellers: 200,
            latency: Duration::from_millis(200),
            load_seconds: 10,
            enqueue_sellers: 100_000,
            instances: vec![1, 3],
            ticks: 2,
            sqlite: true,
            slow: true,
            slow_instances: vec![1, 3],
            only_slow: false,
            enqueue: true,
            load: true,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .unwrap_or_else(|| fail(&format!("{name} needs a value")))
            };
            let number = |text: String, name: &str| {
                text.parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| fail(&format!("{name} takes a whole number above 0")))
            };
            match arg.as_str() {
                "--sellers" => {
                    o.sellers = value("--sellers")
                        .split(',')
                        .map(|n| number(n.trim().to_string(), "--sellers"))
                        .collect()
                }
                "--slow-sellers" => {
                    o.slow_sellers = number(value("--slow-sellers"), "--slow-sellers")
                }
                "--enqueue-sellers" => {
                    o.enqueue_sellers = number(value("--enqueue-sellers"), "--enqueue-sellers")
                }
                "--load-seconds" => {
                    o.load_seconds = number(value("--load-seconds"), "--load-seconds") as u64
                }
                "--latency" => {
                    o.latency = parse_duration(&value("--latency")).unwrap_or_else(|e| fail(&e))
                }
                "--instances" => {
                    o.instances = value("--instances")
                        .split(',')
                        .map(|n| number(n.trim().to_string(), "--instances"))
                        .collect()
                }
                "--slow-instances" => {
                    o.slow_instances = value("--slow-instances")
                        .split(',')
                        .map(|n| number(n.trim().to_string(), "--slow-instances"))
                        .collect()
                }
                "--only-slow" => {
                    o.only_slow = true;
                    o.slow = true;
                    o.sqlite = false;
                    o.enqueue = false;
                    o.load = false;
                }
                "--ticks" => o.ticks = number(value("--ticks"), "--ticks").min(2),
                "--skip-sqlite" => o.sqlite = false,
                "--skip-slow" => o.slow = false,
                "--skip-enqueue" => o.enqueue = false,
                "--skip-load" => o.load = false,
                // cargo bench passes --bench; test filters are not used here.
                "--bench" => {}
                other => fail(&format!("unknown option {other}")),
            }
        }
        o
    }
}

fn fail(message: &str) -> ! {
    eprintln!("tick bench: {message}");
    std::process::exit(2);
}

fn main() {
    let options = Options::parse();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(run(options));
}

async fn run(o: Options) {
    let server = std::env::var("BENCH_DATABASE_URL").ok();
    print_machine(server.as_deref()).await;
    if server.is_none() {
        println!(
            "BENCH_DATABASE_URL is not set: measuring SQLite only. Set it (e.g. \
             postgres://postgres@127.0.0.1:5432/postgres) for PostgreSQL and several instances."
        );
    }
    let mut backends: Vec<Backend> = Vec::new();
    if let Some(server) = &server {
        backends.push(Backend::Postgres(server.clone()));
    }
    if o.sqlite {
        backends.push(Backend::Sqlite);
    }

    // Each size's PostgreSQL tick / floor ratios (1 instance), for the closing line.
    let mut verdicts: Vec<(usize, Vec<f64>)> = Vec::new();
    for &sellers in o.sellers.iter().filter(|_| !o.only_slow) {
        println!(
            "\n== Ticks at {} sellers ({} jobs a tick) ==",
            sellers,
            sellers * 3
        );
        println!(
            "{:<28} {:>6} {:>8} {:>8} {:>9} {:>8} {:>9} {:>9}",
            "run", "jobs", "raw rows", "seconds", "rows/s", "commits", "peak RSS", "x floor"
        );
        let mut pg_tick1 = None;
        let mut sqlite_tick1 = None;
        // PostgreSQL, one instance: each tick over the floor of the same tick (issue 17).
        let mut pg_ratios: Vec<f64> = Vec::new();
        for backend in &backends {
            let floor = {
                let scratch = Scratch::create(backend).await;
                scratch.seed(sellers).await;
                let floor = measure_floor(&scratch, sellers).await;
                scratch.drop_it().await;
                floor
            };
            for (i, f) in floor.iter().enumerate() {
                f.print(&format!("{} floor, tick {}", backend.name(), i + 1), None);
            }
            let instance_counts: &[usize] = match backend {
                Backend::Postgres(_) => &o.instances,
                Backend::Sqlite => &[1],
            };
            for &instances in instance_counts {
                let scratch = Scratch::create(backend).await;
                scratch.seed(sellers).await;
                let ticks = service_ticks(&scratch, instances, Duration::ZERO, o.ticks).await;
                scratch.drop_it().await;
                for (i, t) in ticks.iter().enumerate() {
                    t.print(
                        &format!("{} {instances} inst., tick {}", backend.name(), i + 1),
                        Some(floor[i].seconds),
                    );
                }
                if instances == 1 {
                    match backend {
                        Backend::Postgres(_) => {
                            pg_tick1 = Some(ticks[0].seconds);
                            pg_ratios = ticks
                                .iter()
                                .zip(&floor)
                                .map(|(t, f)| t.seconds / f.seconds)
                                .collect();
                        }
                        Backend::Sqlite => sqlite_tick1 = Some(ticks[0].seconds),
                    }
                }
            }
        }
        println!(
            "target: a tick at most 1.5x the floor on PostgreSQL, at 1,000 and 10,000 sellers (x floor column)"
        );
        if !pg_ratios.is_empty() {
            let ratios: Vec<String> = pg_ratios
                .iter()
                .enumerate()
                .map(|(i, r)| format!("tick {} {r:.2}x", i + 1))
                .collect();
            println!(
                "PostgreSQL tick / floor at {} sellers (1 instance): {} (target: <= 1.5x)",
                sellers,
                ratios.join(", ")
            );
            verdicts.push((sellers, pg_ratios.clone()));
        }
        println!(
        "target: 10,000 sellers a tick well inside the 5-minute cadence (run with --sellers 10000)"
    );
        println!("target: service peak RSS under 64 MiB");
        if let (Some(pg), Some(lite)) = (pg_tick1, sqlite_tick1) {
            println!(
                "SQLite tick 1 / PostgreSQL tick 1 (1 instance): {:.2}x (target: within 3x)",
                lite / pg
            );
        }
    }
    if verdicts.len() > 1 {
        let worst = verdicts
            .iter()
            .flat_map(|(_, r)| r.iter().copied())
            .fold(0.0_f64, f64::max);
        let sizes: Vec<String> = verdicts.iter().map(|(n, _)| n.to_string()).collect();
        println!(
            "\nPostgreSQL, this run: worst tick / floor {worst:.2}x at {} sellers ({})",
            sizes.join(" and "),
            if worst <= 1.5 {
                "target met"
            } else {
                "target missed"
            }
        );
    }

    if o.slow {
        if let Some(Backend::Postgres(_)) = <[Backend]>::first(&backends) {
            let backend = &backends[0];
            println!(
                "\n== Slow provider: mock.latency = {:?}, {} sellers ({} jobs), PostgreSQL ==",
                o.latency,
                o.slow_sellers,
                o.slow_sellers * 3
            );
            let mut seconds = Vec::new();
            for &instances in &o.slow_instances {
                let scratch = Scratch::create(backend).await;
                scratch.seed(o.slow_sellers).await;
                let ticks = service_ticks(&scratch, instances, o.latency, 1).await;
                scratch.drop_it().await;
                ticks[0].print(&format!("postgres {instances} inst., tick 1"), None);
                seconds.push(ticks[0].seconds);
            }
            if let ([1, 3], [one, three]) = (&o.slow_instances[..], &seconds[..]) {
                println!(
                    "3 instances finish {:.2}x faster than 1 (target: about 3x)",
                    one / three
                );
            }
            println!(
                "target: 1,000 sellers at mock.latency = 1s tick in under 120 s on 1 instance \
                 with default settings (--only-slow --slow-sellers 1000 --latency 1s \
                 --slow-instances 1)"
            );
        } else {
            println!("\n(slow provider: needs BENCH_DATABASE_URL)");
        }
    }

    if o.enqueue {
        println!(
            "\n== Enqueue: one tick at {} sellers (one campaign each) ==",
            o.enqueue_sellers
        );
        for backend in &backends {
            let scratch = Scratch::create(backend).await;
            scratch.seed_thin(o.enqueue_sellers).await;
            let (seconds, enqueued) = enqueue_tick(&scratch).await;
            scratch.drop_it().await;
            println!(
                "{:<10} {enqueued} jobs recorded in {seconds:.2}s ({:.0} jobs/s) (target: <= 10 s)",
                backend.name(),
                enqueued as f64 / seconds
            );
        }
    }

    if o.load {
        match <[Backend]>::first(&backends) {
            Some(backend @ Backend::Postgres(_)) => {
                println!(
                    "\n== POST /api/ads-manager/sync under wrk: {} sellers' tokens, 16 connections, {} s paced (about 500 req/s), then {} s saturated, PostgreSQL ==",
                    o.sellers[0], o.load_seconds, o.load_seconds
                );
                let scratch = Scratch::create(backend).await;
                scratch.seed(o.sellers[0]).await;
                load_sync(&scratch, o.sellers[0], o.load_seconds).await;
                scratch.drop_it().await;
            }
            _ => println!("\n(POST /sync load: needs BENCH_DATABASE_URL)"),
        }
    }
}

/// What the figures were measured on.
async fn print_machine(server: Option<&str>) {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "?".into());
    let memory_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or("?".into(), |kib| {
            format!("{:.0} GiB", kib / 1024.0 / 1024.0)
        });
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let version = Command::new(BINARY)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!(
        "ads-stats tick benchmark, {}",
        Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    println!("binary: {version} (release build)");
    println!(
        "machine: {cores} cores ({cpu}), {memory_gib} memory, {}",
        read("/proc/sys/kernel/osrelease").trim()
    );
    if let Some(server) = server {
        let row = admin(server)
            .await
            .query_one("SELECT version()", &[])
            .await
            .expect("version");
        println!("database: {}", row.get::<_, String>(0));
    }
}

// ---------- where each scenario runs ----------

#[derive(Clone)]
enum Backend {
    Postgres(String),
    Sqlite,
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Postgres(_) => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

/// A fresh database (PostgreSQL) or file (SQLite), migrated, with a pool for reading it.
struct Scratch {
    backend: Backend,
    url: String,
    db: Db,
    /// PostgreSQL: the database's name; SQLite: the folder holding the file.
    place: String,
}

impl Scratch {
    async fn create(backend: &Backend) -> Self {
        let (url, place) = match backend {
            Backend::Postgres(server) => {
                let name = format!("ads_stats_bench_{}", uuid::Uuid::new_v4().simple());
                admin(server)
                    .await
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create database");
                // Where the time goes: every statement with its duration in the server's log.
                if std::env::var_os("BENCH_LOG_STATEMENTS").is_some() {
                    admin(server)
                        .await
                        .batch_execute(&format!(
                            "ALTER DATABASE {name} SET log_min_duration_statement = 0"
                        ))
                        .await
                        .expect("log statements");
                }
                (with_database(server, &name), name)
            }
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!(
                    "ads-stats-bench-tick-{}",
                    uuid::Uuid::new_v4().simple()
                ));
                std::fs::create_dir_all(&dir).expect("temp dir");
                let url = format!("sqlite://{}", dir.join("bench.db").display());
                (url, dir.display().to_string())
            }
        };
        let settings = Settings::defaults_with(|s| s.database.url = url.clone()).expect("settings");
        let db = Db::connect(&settings.database).expect("pool");
        db.run_migrations(&settings.database_url())
            .await
            .expect("migrations");
        Scratch {
            backend: backend.clone(),
            url,
            db,
            place,
        }
    }

    async fn conn(&self) -> DbConn {
        self.db.conn().await.expect("connection")
    }

    async fn execute(&self, sql: &str) {
        let mut conn = self.conn().await;
        match &mut conn {
            DbConn::Postgres(c) => c.batch_execute(sql).await,
            DbConn::Sqlite(c) => c.batch_execute(sql).await,
        }
        .unwrap_or_else(|e| panic!("{e}: {sql}"));
    }

    /// N sellers of the benchmark's shape, set-based (row-by-row seeding would take longer than
    /// the ticks). Ids: seller `bs-{i}`, campaign `bm-{i}-{k}`, ad set `ba-{i}-{k}-{s}`, ad
    /// `bd-{i}-{k}-{s}-{a}`; ad sets 1 and 2 share their campaign's budget, ad set 3 has its own.
    async fn seed(&self, sellers: usize) {
        let counter = |name: &str, n: usize| {
            format!("{name}({name}) AS (SELECT 1 UNION ALL SELECT {name} + 1 FROM {name} WHERE {name} < {n})")
        };
        let with = format!(
            "WITH RECURSIVE {}, {}, {}, {}",
            counter("i", sellers),
            counter("k", CAMPAIGNS),
            counter("s", ADSETS),
            counter("a", ADS)
        );
        self.execute(&format!(
            "BEGIN;
             {with} INSERT INTO sellers (id, name, status) SELECT 'bs-' || i, 'Seller ' || i, 'ACTIVE' FROM i;
             {with} INSERT INTO ad_connections (id, seller_id, provider, external_account_id, status)
               SELECT 'bc-' || i, 'bs-' || i, 'META', 'act_' || i, 'ACTIVE' FROM i;
             {with} INSERT INTO sellpages (id, seller_id, slug, title)
               SELECT 'bp-' || i || '-' || s, 'bs-' || i, 'page-' || s, 'Page ' || s FROM i, s WHERE s <= 2;
             {with} INSERT INTO campaigns (id, seller_id, connection_id, sellpage_id, name, status, daily_budget_cents)
               SELECT 'bm-' || i || '-' || k, 'bs-' || i, 'bc-' || i, 'bp-' || i || '-' || (k % 2 + 1),
                      'Campaign ' || k, 'ACTIVE', 4000 + 700 * k FROM i, k;
             {with} INSERT INTO adsets (id, seller_id, campaign_id, name, status, daily_budget_cents)
               SELECT 'ba-' || i || '-' || k || '-' || s, 'bs-' || i, 'bm-' || i || '-' || k, 'Ad set ' || s,
                      'ACTIVE', CASE WHEN s = 3 THEN 1500 + 100 * k ELSE NULL END FROM i, k, s;
             {with} INSERT INTO ads (id, seller_id, adset_id, name, status)
               SELECT 'bd-' || i || '-' || k || '-' || s || '-' || a, 'bs-' || i,
                      'ba-' || i || '-' || k || '-' || s, 'Ad ' || a, 'ACTIVE' FROM i, k, s, a;
             COMMIT; ANALYZE;"
        ))
        .await;
    }

    /// N sellers with one campaign each: enough for the scheduler to queue three jobs each.
    async fn seed_thin(&self, sellers: usize) {
        let with = format!(
            "WITH RECURSIVE i(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM i WHERE i < {sellers})"
        );
        self.execute(&format!(
            "BEGIN;
             {with} INSERT INTO sellers (id, name, status) SELECT 'bs-' || i, 'Seller ' || i, 'ACTIVE' FROM i;
             {with} INSERT INTO ad_connections (id, seller_id, provider, external_account_id, status)
               SELECT 'bc-' || i, 'bs-' || i, 'META', 'act_' || i, 'ACTIVE' FROM i;
             {with} INSERT INTO campaigns (id, seller_id, connection_id, sellpage_id, name, status, daily_budget_cents)
               SELECT 'bm-' || i, 'bs-' || i, 'bc-' || i, NULL, 'Campaign', 'ACTIVE', 5000 FROM i;
             COMMIT; ANALYZE;"
        ))
        .await;
    }

    /// Commits so far in this database (PostgreSQL; SQLite has no such counter).
    async fn commits(&self) -> Option<i64> {
        let Backend::Postgres(server) = &self.backend else {
            return None;
        };
        // Backends report their counts when they end; a fresh session reads a fresh snapshot.
        let row = admin(server)
            .await
            .query_one(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = $1",
                &[&self.place],
            )
            .await
            .expect("pg_stat_database");
        Some(row.get::<_, i64>(0))
    }

    async fn drop_it(self) {
        let Scratch {
            backend, db, place, ..
        } = self;
        drop(db);
        match backend {
            Backend::Postgres(server) => {
                admin(&server)
                    .await
                    .batch_execute(&format!("DROP DATABASE {place} WITH (FORCE)"))
                    .await
                    .expect("drop database");
            }
            Backend::Sqlite => {
                let _ = std::fs::remove_dir_all(place);
            }
        }
    }
}

async fn admin(server: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| fail(&format!("BENCH_DATABASE_URL unreachable: {e}")));
    tokio::spawn(connection);
    client
}

/// The server URL with its database replaced by `name`.
fn with_database(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (server, String::new()),
    };
    let authority_end = base
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| base[start..].find('/').map(|j| start + j))
        .unwrap_or(base.len());
    format!("{}/{name}{query}", &base[..authority_end])
}

// ---------- figures ----------

struct Figures {
    jobs: i64,
    failed: i64,
    raw_rows: i64,
    seconds: f64,
    commits: Option<i64>,
    peak_rss_kib: Option<u64>,
    /// CPU seconds used by the service's processes and by PostgreSQL (all of its processes on
    /// this machine) during the run.
    cpu: Option<(f64, f64)>,
    /// Write transactions that marked the tick's jobs SUCCEEDED: the jobs of one group commit
    /// share its `finished_at`, so this counts the distinct ones.
    writes: Option<i64>,
}

impl Figures {
    fn print(&self, run: &str, floor: Option<f64>) {
        let commits = self.commits.map_or("-".into(), |c| c.to_string());
        let rss = self
            .peak_rss_kib
            .map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
        let ratio = floor.map_or("-".into(), |f| format!("{:.2}", self.seconds / f));
        let cpu = self.cpu.map_or(String::new(), |(service, pg)| {
            format!("  cpu: service {service:.1}s, postgres {pg:.1}s")
        });
        let writes = self.writes.map_or(String::new(), |w| {
            format!(
                ", {w} write transactions ({:.1} jobs each)",
                self.jobs as f64 / w.max(1) as f64
            )
        });
        let failed = if self.failed > 0 {
            format!("  ({} FAILED)", self.failed)
        } else {
            String::new()
        };
        println!(
            "{run:<28} {:>6} {:>8} {:>8.2} {:>9.0} {:>8} {:>9} {:>9}{cpu}{writes}{failed}",
            self.jobs,
            self.raw_rows,
            self.seconds,
            self.raw_rows as f64 / self.seconds,
            commits,
            rss,
            ratio
        );
    }
}

// ---------- the floor ----------

/// The rows a tick writes, computed in memory from the seeded shape and the mock's recipe.
fn tick_rows(sellers: usize, date: NaiveDate, batch: i64, at: NaiveDateTime) -> Vec<NewRawStat> {
    let mut rows = Vec::with_capacity(sellers * (CAMPAIGNS + CAMPAIGNS * ADSETS * (1 + ADS)));
    for i in 1..=sellers {
        let seller = format!("bs-{i}");
        let campaigns: Vec<DeliveringCampaign> = (1..=CAMPAIGNS)
            .map(|k| DeliveringCampaign {
                id: format!("bm-{i}-{k}"),
                daily_budget_cents: 4000 + 700 * k as i64,
                connection_id: format!("bc-{i}"),
                external_id: None,
            })
            .collect();
        let adsets: Vec<DeliveringAdset> = (1..=CAMPAIGNS)
            .flat_map(|k| {
                (1..=ADSETS).map(move |s| DeliveringAdset {
                    id: format!("ba-{i}-{k}-{s}"),
                    campaign_id: format!("bm-{i}-{k}"),
                    daily_budget_cents: (s == 3).then_some(1500 + 100 * k as i64),
                    external_id: None,
                })
            })
            .collect();
        let ads: Vec<DeliveringAd> = adsets
            .iter()
            .flat_map(|set| {
                (1..=ADS).map(move |a| DeliveringAd {
                    id: format!("{}-{a}", set.id.replacen("ba-", "bd-", 1)),
                    adset_id: set.id.clone(),
                    external_id: None,
                })
            })
            .collect();
        let levels: [(&str, Vec<EntityBudget>); 3] = [
            ("CAMPAIGN", campaign_budgets(&campaigns)),
            ("ADSET", adset_budgets(&campaigns, &adsets)),
            ("AD", ad_budgets(&campaigns, &adsets, &ads)),
        ];
        for (level, entities) in levels {
            for e in entities {
                let m = mock_metrics(&seller, &e.entity_id, date, e.daily_budget_cents);
                rows.push(NewRawStat {
                    seller_id: seller.clone(),
                    level: level.into(),
                    entity_id: e.entity_id,
                    stat_date: date,
                    spend_cents: m.spend_cents,
                    impressions: m.impressions,
                    clicks: m.clicks,
                    content_views: m.content_views,
                    add_to_cart: m.add_to_cart,
                    checkouts: m.checkouts,
                    purchases: m.purchases,
                    revenue_cents: m.revenue_cents,
                    cpm: m.cpm,
                    ctr: m.ctr,
                    roas: m.roas,
                    provider: "mock".into(),
                    job_record_id: Some(batch),
                    fetched_at: at,
                });
            }
        }
    }
    rows
}

const COUNTERS: [&str; 8] = [
    "spend_cents",
    "impressions",
    "clicks",
    "content_views",
    "add_to_cart",
    "checkouts",
    "purchases",
    "revenue_cents",
];

/// One set-based upsert of a batch into the daily table, summing as the service's `sum` mode
/// does (ratios recomputed from the totals).
fn floor_upsert_sql(batch: i64) -> String {
    let cols = COUNTERS.join(", ");
    let set: Vec<String> = COUNTERS
        .iter()
        .map(|c| format!("{c} = ad_stats_daily.{c} + excluded.{c}"))
        .collect();
    let total = |c: &str| format!("CAST(ad_stats_daily.{c} + excluded.{c} AS DOUBLE PRECISION)");
    format!(
        "INSERT INTO ad_stats_daily (seller_id, level, entity_id, stat_date, {cols}, cpm, ctr, roas, raw_count, updated_at) \
         SELECT seller_id, level, entity_id, stat_date, {cols}, cpm, ctr, roas, 1, fetched_at \
         FROM ad_stats_raw WHERE job_record_id = {batch} \
         ON CONFLICT (level, entity_id, stat_date) DO UPDATE SET {}, \
         cpm = CASE WHEN ad_stats_daily.impressions + excluded.impressions = 0 THEN 0.0 ELSE {} / 100.0 / {} * 1000.0 END, \
         ctr = CASE WHEN ad_stats_daily.impressions + excluded.impressions = 0 THEN 0.0 ELSE {} / {} * 100.0 END, \
         roas = CASE WHEN ad_stats_daily.spend_cents + excluded.spend_cents = 0 THEN 0.0 ELSE {} / {} END, \
         raw_count = ad_stats_daily.raw_count + 1, updated_at = excluded.updated_at",
        set.join(", "),
        total("spend_cents"),
        total("impressions"),
        total("clicks"),
        total("impressions"),
        total("revenue_cents"),
        total("spend_cents"),
    )
}

/// Tick 1 and tick 2 of a day written the cheapest way each backend has, in one transaction each.
async fn measure_floor(scratch: &Scratch, sellers: usize) -> Vec<Figures> {
    let today = Utc::now().date_naive();
    let mut out = Vec::new();
    for tick in 1..=2 {
        // The batch stands for a job record (`sync_jobs.id`), as a job's rows refer to theirs.
        let batch = tick as i64;
        let rows = tick_rows(sellers, today, batch, db::now_utc());
        let commits_before = scratch.commits().await;
        let started = Instant::now();
        match &scratch.backend {
            Backend::Postgres(server) => {
                let url = with_database(server, &scratch.place);
                copy_and_upsert(&url, &rows, &floor_upsert_sql(batch)).await;
            }
            Backend::Sqlite => {
                let mut conn = scratch.conn().await;
                let upsert = floor_upsert_sql(batch);
                conn.transaction(async |conn: &mut DbConn| {
                    db::writes::insert_raw(conn, &rows).await?;
                    db_run!(conn, { diesel::sql_query(&upsert).execute(conn).await })
                })
                .await
                .expect("sqlite floor");
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let commits = match (commits_before, scratch.commits().await) {
            (Some(b), Some(a)) => Some(a - b),
            _ => None,
        };
        out.push(Figures {
            jobs: 0,
            failed: 0,
            raw_rows: rows.len() as i64,
            seconds,
            commits,
            peak_rss_kib: None,
            cpu: None,
            writes: None,
        });
    }
    out
}

async fn copy_and_upsert(url: &str, rows: &[NewRawStat], upsert: &str) {
    use futures_util::SinkExt;
    let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
        .batch_execute("SET TIME ZONE 'UTC'")
        .await
        .expect("utc");
    let tx = client.transaction().await.expect("begin");
    let sink = tx
        .copy_in(
            "COPY ad_stats_raw (seller_id, level, entity_id, stat_date, spend_cents, impressions, \
             clicks, content_views, add_to_cart, checkouts, purchases, revenue_cents, cpm, ctr, \
             roas, provider, job_record_id, fetched_at) FROM STDIN",
        )
        .await
        .expect("copy");
    let mut text = String::with_capacity(rows.len() * 160);
    for r in rows {
        use std::fmt::Write as _;
        let _ = writeln!(
            text,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{:?}\t{:?}\t{:?}\t{}\t{}\t{}",
            r.seller_id,
            r.level,
            r.entity_id,
            r.stat_date,
            r.spend_cents,
            r.impressions,
            r.clicks,
            r.content_views,
            r.add_to_cart,
            r.checkouts,
            r.purchases,
            r.revenue_cents,
            r.cpm,
            r.ctr,
            r.roas,
            r.provider,
            r.job_record_id
                .map_or("\\N".to_string(), |id| id.to_string()),
            r.fetched_at.format("%Y-%m-%d %H:%M:%S%.6f")
        );
    }
    let mut sink = Box::pin(sink);
    sink.send(bytes::Bytes::from(text))
        .await
        .expect("copy data");
    sink.as_mut().finish().await.expect("copy end");
    tx.batch_execute(upsert).await.expect("upsert");
    tx.commit().await.expect("commit");
}

// ---------- the real service ----------

struct Instance {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Instance {
    fn start(scratch: &Scratch, env: &[(&str, String)], log_dir: &Path, n: usize) -> Self {
        let port = free_port();
        let log = log_dir.join(format!("instance-{n}-{port}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(BINARY);
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &scratch.url)
            .env("PORT", port.to_string())
            .env("ADS_STATS_CONFIG_DIR", log_dir)
            .env("ADS_STATS_SERVER__HOST", "127.0.0.1")
            .env("ADS_STATS_LOG__LEVEL", "warn")
            .env("ADS_STATS_JOBS__SHUTDOWN_GRACE", "2s")
            .env("ADS_STATS_SERVER__SHUTDOWN_TIMEOUT", "2s")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file);
        // Settings to try without editing the benchmark: `ADS_STATS_JOBS__…` and
        // `ADS_STATS_DATABASE__POOL_SIZE` from its own environment reach every instance.
        for (k, v) in std::env::vars().filter(|(k, _)| {
            k.starts_with("ADS_STATS_JOBS__") || k == "ADS_STATS_DATABASE__POOL_SIZE"
        }) {
            command.env(k, v);
        }
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().expect("start ads-stats");
        Instance { child, port, log }
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("child") {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                fail(&format!("ads-stats exited ({status}) at start:\n{log}"));
            }
            if http_get_ok(self.port, "/health") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        fail("ads-stats did not answer /health within 60 s");
    }

    /// The most resident memory the process has used (VmHWM), in KiB.
    fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which sits in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// CPU seconds of every PostgreSQL server process on this machine, by pid.
fn postgres_cpu() -> std::collections::HashMap<u32, f64> {
    let mut out = std::collections::HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "postgres" {
            if let Some(cpu) = cpu_seconds(pid) {
                out.insert(pid, cpu);
            }
        }
    }
    out
}

fn postgres_cpu_since(before: &std::collections::HashMap<u32, f64>) -> f64 {
    postgres_cpu()
        .into_iter()
        .map(|(pid, now)| now - before.get(&pid).copied().unwrap_or(0.0))
        .sum()
}

fn seconds_between(from: NaiveDateTime, to: NaiveDateTime) -> f64 {
    (to - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn http_get_ok(port: u16, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

/// A 7-field cron expression (seconds first, with the year) that fires once, at `at`.
fn one_off_cron(at: DateTime<Utc>) -> String {
    format!(
        "{} {} {} {} {} * {}",
        at.second(),
        at.minute(),
        at.hour(),
        at.day(),
        at.month(),
        at.year()
    )
}

#[derive(QueryableByName)]
struct TickRow {
    #[diesel(sql_type = Nullable<Timestamp>)]
    finished_at: Option<NaiveDateTime>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    started_at: Option<NaiveDateTime>,
    #[diesel(sql_type = Nullable<BigInt>)]
    enqueued: Option<i64>,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct LastFinish {
    #[diesel(sql_type = Nullable<Timestamp>)]
    at: Option<NaiveDateTime>,
}

async fn count(conn: &mut DbConn, sql: &str, mark: NaiveDateTime) -> i64 {
    db_run!(conn, {
        diesel::sql_query(sql)
            .bind::<Timestamp, _>(mark)
            .get_result::<Count>(conn)
            .await
    })
    .expect("count")
    .n
}

async fn tick_row(conn: &mut DbConn, mark: NaiveDateTime) -> Option<TickRow> {
    db_run!(conn, {
        diesel::sql_query(
            "SELECT finished_at, started_at, enqueued FROM scheduler_ticks WHERE mark = $1",
        )
        .bind::<Timestamp, _>(mark)
        .get_result::<TickRow>(conn)
        .await
    })
    .ok()
}

/// Starts `instances` services whose scheduler fires once, a few seconds ahead, and waits until
/// every job of that tick has finished; `ticks` times, restarting the services for each.
async fn service_ticks(
    scratch: &Scratch,
    instances: usize,
    latency: Duration,
    ticks: usize,
) -> Vec<Figures> {
    let log_dir = std::env::temp_dir().join(format!(
        "ads-stats-bench-logs-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&log_dir).expect("log dir");
    let mut out = Vec::new();
    for _ in 0..ticks {
        let mut conn = scratch.conn().await;
        let raw_before = count(
            &mut conn,
            "SELECT COUNT(*) AS n FROM ad_stats_raw WHERE $1 IS NOT NULL",
            db::now_utc(),
        )
        .await;
        let commits_before = scratch.commits().await;
        let mark = (Utc::now() + chrono::TimeDelta::seconds(3))
            .with_nanosecond(0)
            .unwrap();
        let env = [
            ("ADS_STATS_SCHEDULER__CRON", one_off_cron(mark)),
            ("ADS_STATS_SCHEDULER__TIMEZONE", "UTC".to_string()),
            (
                "ADS_STATS_MOCK__LATENCY",
                format!("{}ms", latency.as_millis()),
            ),
        ];
        let pg_cpu_before = postgres_cpu();
        let mut running: Vec<Instance> = (0..instances)
            .map(|n| Instance::start(scratch, &env, &log_dir, n))
            .collect();
        for i in &mut running {
            i.wait_ready();
        }
        if Utc::now() >= mark {
            fail("the instances took longer than 3 s to start; the tick's mark has passed");
        }
        let mark_key = mark.naive_utc();
        let deadline = Instant::now() + Duration::from_secs(3600);
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let ticked = tick_row(&mut conn, mark_key)
                .await
                .is_some_and(|t| t.finished_at.is_some());
            let active = count(
                &mut conn,
                "SELECT COUNT(*) AS n FROM sync_jobs WHERE status IN ('QUEUED', 'RUNNING') AND $1 IS NOT NULL",
                mark_key,
            )
            .await;
            if ticked && active == 0 {
                break;
            }
            for i in &mut running {
                if let Some(status) = i.child.try_wait().expect("child") {
                    let log = std::fs::read_to_string(&i.log).unwrap_or_default();
                    fail(&format!(
                        "ads-stats exited ({status}) during the tick:\n{log}"
                    ));
                }
            }
            if Instant::now() > deadline {
                fail("the tick did not drain within an hour");
            }
        }
        let peak_rss_kib = running.iter().filter_map(Instance::peak_rss_kib).max();
        let service_cpu: f64 = running
            .iter()
            .filter_map(|i| cpu_seconds(i.child.id()))
            .sum();
        let pg_cpu = postgres_cpu_since(&pg_cpu_before);
        let jobs = count(
            &mut conn,
            "SELECT COUNT(*) AS n FROM sync_jobs WHERE status = 'SUCCEEDED' AND finished_at >= $1",
            mark_key,
        )
        .await;
        let failed = count(
            &mut conn,
            "SELECT COUNT(*) AS n FROM sync_jobs WHERE status = 'FAILED' AND finished_at >= $1",
            mark_key,
        )
        .await;
        let writes = count(
            &mut conn,
            "SELECT COUNT(DISTINCT finished_at) AS n FROM sync_jobs \
             WHERE status = 'SUCCEEDED' AND finished_at >= $1",
            mark_key,
        )
        .await;
        let reader = &mut conn;
        let last = db_run!(reader, {
            diesel::sql_query(
                "SELECT MAX(finished_at) AS at FROM sync_jobs WHERE finished_at >= $1",
            )
            .bind::<Timestamp, _>(mark_key)
            .get_result::<LastFinish>(reader)
            .await
        })
        .expect("last finish")
        .at
        .expect("jobs finished");
        let raw_after = count(
            &mut conn,
            "SELECT COUNT(*) AS n FROM ad_stats_raw WHERE $1 IS NOT NULL",
            mark_key,
        )
        .await;
        drop(conn);
        for i in running {
            i.stop();
        }
        // PostgreSQL counts a backend's commits when its session ends.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let commits = match (commits_before, scratch.commits().await) {
            (Some(b), Some(a)) => Some(a - b),
            _ => None,
        };
        out.push(Figures {
            jobs,
            failed,
            raw_rows: raw_after - raw_before,
            seconds: seconds_between(mark_key, last),
            commits,
            peak_rss_kib,
            cpu: Some((service_cpu, pg_cpu)),
            writes: Some(writes),
        });
    }
    let _ = std::fs::remove_dir_all(&log_dir);
    out
}

/// One tick's enqueue at many sellers, as the scheduler records it in `scheduler_ticks`.
async fn enqueue_tick(scratch: &Scratch) -> (f64, i64) {
    let log_dir = std::env::temp_dir().join(format!(
        "ads-stats-bench-logs-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&log_dir).expect("log dir");
    let mark = (Utc::now() + chrono::TimeDelta::seconds(3))
        .with_nanosecond(0)
        .unwrap();
    let env = [("ADS_STATS_SCHEDULER__CRON", one_off_cron(mark))];
    let mut instance = Instance::start(scratch, &env, &log_dir, 0);
    instance.wait_ready();
    let mut conn = scratch.conn().await;
    let deadline = Instant::now() + Duration::from_secs(600);
    let row = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(row) = tick_row(&mut conn, mark.naive_utc()).await {
            if row.finished_at.is_some() {
                break row;
            }
        }
        if Instant::now() > deadline {
            fail("the enqueue did not finish within 10 minutes");
        }
    };
    drop(conn);
    instance.stop();
    let _ = std::fs::remove_dir_all(&log_dir);
    let seconds = seconds_between(row.started_at.unwrap(), row.finished_at.unwrap());
    (seconds, row.enqueued.unwrap_or(0))
}

// ---------- POST /sync under load ----------

/// Each connection's pause before each request in the paced run.
const PACE_DELAY_MS: u32 = 26;

async fn load_sync(scratch: &Scratch, sellers: usize, seconds: u64) {
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("wrk is not installed (Debian: apt-get install -y wrk); skipping the load test");
        return;
    }
    let log_dir = std::env::temp_dir().join(format!(
        "ads-stats-bench-load-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&log_dir).expect("dir");
    let settings = Settings::defaults_with(|_| {}).expect("settings");
    let tokens = ads_stats::auth::TokenVerifier::new(&settings.auth);
    let mut list = String::new();
    for i in 1..=sellers {
        list.push_str(
            &tokens
                .issue(&format!("bs-{i}"), Duration::from_secs(3600))
                .expect("token"),
        );
        list.push('\n');
    }
    let token_file = log_dir.join("tokens.txt");
    std::fs::write(&token_file, list).expect("tokens");
    // The paced script waits PACE_DELAY_MS before each request on each of the 16 connections:
    // 16 x 1000 / (26 ms + ~6 ms latency) is about 500 req/s, the rate the target names.
    let script = |name: &str, pace: &str| {
        let path = log_dir.join(name);
        std::fs::write(
            &path,
            format!(
                r#"local tokens = {{}}
for line in io.lines("{}") do tokens[#tokens + 1] = line end
local n = math.random(#tokens)
request = function()
  n = n % #tokens + 1
  return wrk.format("POST", "/api/ads-manager/sync", {{["Authorization"] = "Bearer " .. tokens[n]}}, "")
end
{pace}
"#,
                token_file.display()
            ),
        )
        .expect("script");
        path
    };
    let paced = script(
        "paced.lua",
        &format!("delay = function() return {PACE_DELAY_MS} end"),
    );
    let saturating = script("sync.lua", "");
    // Every request is a real one: no rate limit, and room to queue every seller's jobs.
    let env = [
        ("ADS_STATS_SCHEDULER__ENABLED", "false".to_string()),
        ("ADS_STATS_RATE_LIMIT__MANUAL_SYNCS_PER_MINUTE", "0".into()),
        ("ADS_STATS_JOBS__QUEUE_CAPACITY", "100000".into()),
    ];
    let mut instance = Instance::start(scratch, &env, &log_dir, 0);
    instance.wait_ready();
    let wrk = |script: &Path| {
        let output = Command::new("wrk")
            .args([
                "-t2",
                "-c16",
                &format!("-d{seconds}s"),
                "--latency",
                "-s",
                &script.display().to_string(),
                &format!("http://127.0.0.1:{}/", instance.port),
            ])
            .output()
            .expect("wrk");
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    // Paced first, so the saturating run's backlog of jobs does not run during it.
    let texts = [("paced", wrk(&paced)), ("saturated", wrk(&saturating))];
    let rss = instance.peak_rss_kib();
    let mut conn = scratch.conn().await;
    let ran = count(
        &mut conn,
        "SELECT COUNT(*) AS n FROM sync_jobs WHERE status = 'SUCCEEDED' AND finished_at >= $1",
        chrono::NaiveDate::from_ymd_opt(2000, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap(),
    )
    .await;
    drop(conn);
    instance.stop();
    let _ = std::fs::remove_dir_all(&log_dir);
    for (run, text) in &texts {
        let pick = |prefix: &str| {
            text.lines()
                .map(str::trim)
                .find(|l| l.starts_with(prefix))
                .map(|l| l[prefix.len()..].trim().to_string())
                .unwrap_or_else(|| "?".into())
        };
        println!(
            "{run:<9}  req/s {}   p50 {}   p99 {}   non-2xx: {}",
            pick("Requests/sec:"),
            pick("50%"),
            pick("99%"),
            pick("Non-2xx or 3xx responses:").replace('?', "0"),
        );
    }
    println!(
        "jobs run meanwhile: {ran}   peak RSS: {}",
        rss.map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
    );
    println!(
        "target: p99 < 20 ms at 500 req/s (the paced run; the saturated run's req/s is the most \
         the service answered, its latencies those of a queue that is never empty)"
    );
}
