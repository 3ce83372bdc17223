//! How long do dashboard pages take at 1,000 sellers? Seeds 1,000 sellers with 30 days of campaign
//! and sellpage rows and 30 ticks of job records (some FAILED), starts the service with the dashboard
//! on, signs in, and prints the time to serve the overview, the seller list and seller pages
//! (request to last byte over loopback, database queries and rendering included). The target is
//! under 100 ms a page; this prints the figure, it does not fail on it.
//!
//!     cargo bench --bench dashboard                       # embedded SQLite
//!     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench dashboard
//!
//! On PostgreSQL it works in a schema of its own and drops it afterwards.

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ads_stats::app::{Application, StartOptions};
use ads_stats::config::{Secret, Settings};
use ads_stats::db::{Db, DbConn};
use ads_stats::providers::MockProvider;
use chrono::{Duration as Days, Utc};
use diesel_async::SimpleAsyncConnection;
use sha2::{Digest, Sha256};

const SELLERS: usize = 1000;
const CAMPAIGNS: usize = 4;
const SELLPAGES: usize = 2;
const DAYS: i64 = 30;
const ROUNDS: usize = 40;
/// Scheduler ticks of job records (3 per seller each): 30 ticks are 90,000 records.
const TICKS: usize = 30;
const PASSWORD: &str = "bench-password";

fn main() {
    support::on_each_backend("dashboard", |backend, url| async move {
        run(backend, &url).await
    });
}

async fn run(backend: &str, url: &str) {
    let hash: String = Sha256::digest(PASSWORD.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let settings = Settings::defaults_with(|s| {
        s.database.url = url.to_string();
        s.server.port = 0;
        s.scheduler.enabled = false;
        s.dashboard.admin_user = "admin".into();
        s.dashboard.admin_password_sha256 = Secret::new(hash);
    })
    .expect("settings");
    let db = Db::connect(&settings.database).expect("pool");
    db.run_migrations(&settings.database_url())
        .await
        .expect("migrations");
    let seeding = Instant::now();
    seed(&mut db.conn().await.expect("conn")).await;
    println!(
        "{backend}: seeded {SELLERS} sellers, {} campaign-days, {} sellpage-days, {} jobs in {:.1}s",
        SELLERS * CAMPAIGNS * DAYS as usize,
        SELLERS * SELLPAGES * DAYS as usize,
        SELLERS * 3 * TICKS,
        seeding.elapsed().as_secs_f64()
    );

    let app = Application::start(&settings, Arc::new(MockProvider), StartOptions::default())
        .await
        .expect("app starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = client
        .post(format!("{base}/dashboard/login"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("user=admin&password={PASSWORD}"))
        .send()
        .await
        .expect("login");
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_string();

    // (name, path of the i-th request): seller pages cycle through sellers.
    let page_path = |name: &str, i: usize| match name {
        "overview" => "/dashboard".to_string(),
        "seller list" => "/dashboard/sellers".to_string(),
        _ => format!("/dashboard/sellers/seller-{:04}", (i * 37) % SELLERS),
    };
    for name in ["overview", "seller list", "seller page"] {
        let mut times = Vec::with_capacity(ROUNDS);
        let mut bytes = 0;
        for i in 0..ROUNDS + 3 {
            let started = Instant::now();
            let response = client
                .get(format!("{base}{}", page_path(name, i)))
                .header("Cookie", &cookie)
                .send()
                .await
                .expect("page");
            assert_eq!(response.status(), 200, "{}", page_path(name, i));
            bytes = response.bytes().await.expect("body").len();
            // The first requests open connections and warm caches.
            if i >= 3 {
                times.push(started.elapsed());
            }
        }
        times.sort();
        println!(
            "{backend}: {name:<12} median {:>6.1} ms, p95 {:>6.1} ms, max {:>6.1} ms ({} KB)",
            ms(times[times.len() / 2]),
            ms(times[times.len() * 95 / 100]),
            ms(times[times.len() - 1]),
            bytes / 1024
        );
    }
    app.shutdown().await;
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Plain multi-row INSERTs of generated numbers (no user text, nothing to escape), in one
/// transaction per table.
async fn seed(conn: &mut DbConn) {
    let today = Utc::now().date_naive();
    let mut sql = Vec::new();
    let rows = |table: &str, columns: &str, values: Vec<String>| -> Vec<String> {
        values
            .chunks(500)
            .map(|chunk| {
                format!(
                    "INSERT INTO {table} ({columns}) VALUES {};",
                    chunk.join(",")
                )
            })
            .collect()
    };
    let mut sellers = Vec::new();
    let mut connections = Vec::new();
    let mut pages = Vec::new();
    let mut campaigns = Vec::new();
    let mut daily = Vec::new();
    let mut sellpage_daily = Vec::new();
    let mut jobs = Vec::new();
    for s in 0..SELLERS {
        let seller = format!("seller-{s:04}");
        sellers.push(format!("('{seller}', 'Seller {s:04}', 'ACTIVE')"));
        connections.push(format!(
            "('{seller}-conn', '{seller}', 'META', 'act_{s}', 'ACTIVE')"
        ));
        for p in 0..SELLPAGES {
            pages.push(format!(
                "('{seller}-page-{p}', '{seller}', 'page-{p}', 'Page {p}')"
            ));
        }
        for c in 0..CAMPAIGNS {
            campaigns.push(format!(
                "('{seller}-cmp-{c}', '{seller}', '{seller}-conn', '{seller}-page-{}', 'Campaign {c}', 'ACTIVE', 5000)",
                c % SELLPAGES
            ));
        }
        for d in 0..DAYS {
            let day = today - Days::days(d);
            let mut page_totals = [(0i64, 0i64); SELLPAGES];
            for c in 0..CAMPAIGNS {
                let spend = 4000 + ((s * 7 + c * 13 + d as usize * 17) % 2000) as i64;
                let revenue = spend * (2 + (c as i64 % 3));
                page_totals[c % SELLPAGES].0 += spend;
                page_totals[c % SELLPAGES].1 += revenue;
                daily.push(format!(
                    "('{seller}', 'CAMPAIGN', '{seller}-cmp-{c}', '{day}', {spend}, {}, {}, 0, 0, 0, 3, {revenue}, 8.5, 2.0, {}, 1)",
                    spend * 1000 / 850,
                    spend * 20 / 850,
                    revenue as f64 / spend as f64
                ));
            }
            for (p, (spend, revenue)) in page_totals.iter().enumerate() {
                sellpage_daily.push(format!(
                    "('{seller}', '{seller}-page-{p}', '{day}', {spend}, {}, {}, 0, 0, 0, 6, {revenue}, 8.5, 2.0, {}, 2)",
                    spend * 1000 / 850,
                    spend * 20 / 850,
                    *revenue as f64 / *spend as f64
                ));
            }
        }
        // TICKS scheduler ticks of job records: nearly all SUCCEEDED, as in a running system,
        // with one FAILED AD job for every 50th seller in the last tick.
        for tick in 0..TICKS {
            let at = format!("{today} {:02}:{:02}:00", tick * 5 / 60, tick * 5 % 60);
            for level in ["CAMPAIGN", "ADSET", "AD"] {
                let failed = tick == TICKS - 1 && s % 50 == 0 && level == "AD";
                let (status, error) = if failed {
                    ("FAILED", "'the stats provider request failed'")
                } else {
                    ("SUCCEEDED", "NULL")
                };
                jobs.push(format!(
                    "('sync__{seller}__{today}__{today}__{level}', '{seller}', '{level}', '{today}', '{today}', 'SCHEDULE', '{status}', 1, 3, {error}, '{at}', '{at}', '{at}', '{at}')"
                ));
            }
        }
    }
    sql.extend(rows("sellers", "id, name, status", sellers));
    sql.extend(rows(
        "ad_connections",
        "id, seller_id, provider, external_account_id, status",
        connections,
    ));
    sql.extend(rows("sellpages", "id, seller_id, slug, title", pages));
    sql.extend(rows(
        "campaigns",
        "id, seller_id, connection_id, sellpage_id, name, status, daily_budget_cents",
        campaigns,
    ));
    sql.extend(rows(
        "ad_stats_daily",
        "seller_id, level, entity_id, stat_date, spend_cents, impressions, clicks, content_views, \
         add_to_cart, checkouts, purchases, revenue_cents, cpm, ctr, roas, raw_count",
        daily,
    ));
    sql.extend(rows(
        "sellpage_stats_daily",
        "seller_id, sellpage_id, stat_date, ad_spend_cents, impressions, clicks, content_views, \
         add_to_cart, checkouts, purchases, revenue_cents, cpm, ctr, roas, campaign_count",
        sellpage_daily,
    ));
    sql.extend(rows(
        "sync_jobs",
        "job_id, seller_id, level, date_from, date_to, triggered_by, status, attempts, \
         max_attempts, last_error, run_at, finished_at, created_at, updated_at",
        jobs,
    ));
    let script = format!("BEGIN; {} COMMIT; ANALYZE;", sql.join(" "));
    match conn {
        DbConn::Postgres(c) => c.batch_execute(&script).await,
        DbConn::Sqlite(c) => c.batch_execute(&script).await,
    }
    .expect("seed");
}
