//! Running on a VM: build info in `--version` and `/health`, `ads-stats config`, the online SQLite
//! backup (taken while the scheduler writes, then restored), systemd readiness and the unit file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use ads_stats::config::Settings;
use ads_stats::db::catalog::insert_catalog;
use ads_stats::db::Db;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};
use figment::providers::{Format, Toml};
use figment::Figment;

use crate::helpers::{
    ads_stats, app, generated_catalog, migrated_db, test_settings, today, Backend, ServiceProcess,
    TestDb,
};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The commit the binary should report: what git says now (build.rs reruns when HEAD moves), or
/// "unknown" where there is no git.
fn expected_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_and_health_carry_the_build() {
    let commit = expected_commit();
    let out = ads_stats().arg("--version").output().await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!("ads-stats {} (commit {commit})", env!("CARGO_PKG_VERSION"))
    );

    let app = app(Backend::Sqlite).spawn().await;
    let body: serde_json::Value = app.health().await.json().await.unwrap();
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["commit"], commit.as_str());
    assert_eq!(body["status"], "ok", "every other field stays: {body}");
    assert!(
        body["queue"].is_object() && body["tasks"].is_object(),
        "{body}"
    );
    app.shutdown().await;
}

// ---------- ads-stats config ----------

const JWT: &str = "jwt-secret-that-must-never-print-0123456789";
const PG_PASSWORD: &str = "pg-password-never-printed";
const METRICS_TOKEN: &str = "metrics-token-never-printed-0123";

#[tokio::test]
async fn config_prints_every_value_with_its_source_and_no_secret() {
    let dir = tempdir();
    let file = dir.join("extra.toml");
    std::fs::write(&file, "[scheduler]\ncron = \"0 */10 * * * *\"\n").unwrap();
    let url = format!("postgres://ads:{PG_PASSWORD}@127.0.0.1:5432/ads?password={PG_PASSWORD}");
    let out = ads_stats()
        .args(["config", "--config"])
        .arg(&file)
        .envs([
            ("JWT_SECRET", JWT),
            ("DATABASE_URL", url.as_str()),
            ("ADS_STATS_METRICS__BEARER_TOKEN", METRICS_TOKEN),
            ("ADS_STATS_JOBS__CONCURRENCY", "7"),
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for secret in [JWT, PG_PASSWORD, METRICS_TOKEN] {
        assert!(!text.contains(secret), "{secret} printed:\n{text}");
        assert!(!stderr(&out).contains(secret));
    }
    for expected in [
        "jwt_secret = \"<redacted>\"  # environment variable JWT_SECRET",
        "bearer_token = \"<redacted>\"  # environment variable ADS_STATS_METRICS__BEARER_TOKEN",
        "url = \"postgres://ads:<redacted>@127.0.0.1:5432/ads?password=<redacted>\"  # environment variable DATABASE_URL",
        "concurrency = 7  # environment variable ADS_STATS_JOBS__CONCURRENCY",
        "port = 3000  # config/default.toml",
        "provider = \"mock\"  # config/default.toml",
        "[dashboard]",
        "admin_password_sha256 = \"\"  # config/default.toml",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    // The file is named as figment shows it: relative to the working directory when that is
    // shorter, so compare the place it names, not the text.
    let named = text
        .lines()
        .find_map(|l| l.strip_prefix("cron = \"0 */10 * * * *\"  # "))
        .unwrap_or_else(|| panic!("no cron line naming its file in:\n{text}"));
    let named = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(named);
    assert_eq!(
        named.canonicalize().unwrap(),
        file.canonicalize().unwrap(),
        "{text}"
    );

    // What it prints is TOML holding every key the service reads.
    let printed: Settings = Figment::from(Toml::string(&text))
        .extract()
        .unwrap_or_else(|e| panic!("not the settings as TOML ({e}):\n{text}"));
    assert_eq!(printed.jobs.concurrency, 7);
    assert_eq!(printed.scheduler.cron, "0 */10 * * * *");

    // Built-in defaults when no config folder is there.
    let out = ads_stats()
        .arg("config")
        .env("ADS_STATS_CONFIG_DIR", dir.join("none"))
        .output()
        .await
        .unwrap();
    assert!(
        stdout(&out).contains("port = 3000  # default\n"),
        "{}",
        stdout(&out)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn config_check_exits_0_or_2_with_one_line() {
    let out = ads_stats()
        .args(["config", "--check"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim().lines().count(), 1, "{}", stdout(&out));

    let out = ads_stats()
        .args(["config", "--check"])
        .envs([("ADS_STATS_JOBS__CONCURENCY", "3"), ("JWT_SECRET", JWT)])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("jobs.concurency"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());

    // Production without a real secret: refused by --check as by serve, the secret unprinted.
    let out = ads_stats()
        .args(["config", "--check"])
        .envs([
            ("ADS_STATS_ENV", "production"),
            ("JWT_SECRET", "short-secret"),
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("auth.jwt_secret"));
    assert!(!stderr(&out).contains("short-secret"));
}

// ---------- backup ----------

#[derive(QueryableByName)]
struct JobBook {
    #[diesel(sql_type = Text)]
    job_id: String,
    #[diesel(sql_type = BigInt)]
    rows: i64,
}

#[derive(QueryableByName)]
struct RawBook {
    #[diesel(sql_type = Nullable<Text>)]
    job_id: Option<String>,
    #[diesel(sql_type = BigInt)]
    rows: i64,
}

#[derive(QueryableByName)]
struct Check {
    #[diesel(sql_type = Text)]
    integrity_check: String,
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Per job id: the raw rows its SUCCEEDED records report, and the raw rows there are.
fn job_books(path: &Path) -> (BTreeMap<String, i64>, BTreeMap<String, i64>) {
    let mut conn = SqliteConnection::establish(&path.to_string_lossy()).unwrap();
    let reported: Vec<JobBook> = diesel::sql_query(
        "SELECT job_id, CAST(SUM(raw_rows) AS BIGINT) AS rows FROM sync_jobs \
         WHERE status = 'SUCCEEDED' GROUP BY job_id",
    )
    .load(&mut conn)
    .unwrap();
    let present: Vec<RawBook> =
        // Raw rows refer to their run's record (`sync_jobs.id`); its job id names the job.
        diesel::sql_query(
            "SELECT j.job_id AS job_id, COUNT(*) AS rows FROM ad_stats_raw r \
             LEFT JOIN sync_jobs j ON j.id = r.job_record_id GROUP BY j.job_id",
        )
            .load(&mut conn)
            .unwrap();
    (
        reported.into_iter().map(|b| (b.job_id, b.rows)).collect(),
        present
            .into_iter()
            .map(|b| (b.job_id.unwrap_or_default(), b.rows))
            .collect(),
    )
}

fn ids(path: &Path, sql: &str) -> BTreeSet<i64> {
    let mut conn = SqliteConnection::establish(&path.to_string_lossy()).unwrap();
    let rows: Vec<Id> = diesel::sql_query(sql).load(&mut conn).unwrap();
    rows.into_iter().map(|r| r.id).collect()
}

async fn succeeded_jobs(db: &Db) -> usize {
    let mut conn = db.conn().await.unwrap();
    ads_stats::db::jobs::all(&mut conn)
        .await
        .unwrap()
        .iter()
        .filter(|j| j.status == "SUCCEEDED")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_the_scheduler_writes_is_consistent_and_restores() {
    let test_db = TestDb::new(Backend::Sqlite).await;
    let db_path = test_db.url.strip_prefix("sqlite://").unwrap().to_string();
    let dir = Path::new(&db_path).parent().unwrap().to_path_buf();
    let catalog = generated_catalog("bk", 12);
    let db = migrated_db(&test_db).await;
    insert_catalog(&mut db.conn().await.unwrap(), &catalog)
        .await
        .unwrap();

    // A tick every second: 12 sellers x 3 levels enqueued and written, over and over.
    let service = ServiceProcess::start(&[
        ("DATABASE_URL", test_db.url.as_str()),
        ("ADS_STATS_SCHEDULER__ENABLED", "true"),
        ("ADS_STATS_SCHEDULER__CRON", "* * * * * *"),
    ])
    .await;
    let started = Instant::now();
    while succeeded_jobs(&db).await < 36 {
        assert!(started.elapsed() < Duration::from_secs(30), "no jobs ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let copy = dir.join("backup.db");
    let out = ads_stats()
        .args(["backup", "--to"])
        .arg(&copy)
        .env("DATABASE_URL", &test_db.url)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed = stdout(&out);
    assert!(printed.contains("bytes"), "{printed}");
    assert!(printed.contains("ad_stats_raw"), "{printed}");

    // The service kept writing through the backup; a second backup into the same name is
    // refused without --force, taken with it.
    let out = ads_stats()
        .args(["backup", "--to"])
        .arg(&copy)
        .env("DATABASE_URL", &test_db.url)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    // More copies while the ticks go on (jobs take milliseconds, so several backups make it
    // likely that one lands mid-write), the last one replacing an existing file.
    let mut backups = vec![copy.clone()];
    for i in 0..6 {
        let name = dir.join(format!("later-{}.db", i.min(4)));
        let out = ads_stats()
            .args(["backup", "--force", "--to"])
            .arg(&name)
            .env("DATABASE_URL", &test_db.url)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        if i < 5 {
            backups.push(name);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (status, log) = service.terminate().await;
    assert_eq!(status.code(), Some(0), "{log}");
    // The service went on writing after the first copy: the backups were taken mid-stream.
    let first = job_books(&copy).0.values().sum::<i64>();
    let last = job_books(Path::new(&db_path)).0.values().sum::<i64>();
    assert!(
        last > first,
        "no writes after the first backup ({first} raw rows)"
    );

    for backup in &backups {
        let mut conn = SqliteConnection::establish(&backup.to_string_lossy()).unwrap();
        let check: Check = diesel::sql_query("PRAGMA integrity_check")
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(check.integrity_check, "ok");
        // As of one instant: every SUCCEEDED job's raw rows are there, and no raw row lacks its
        // SUCCEEDED record (both are written in one transaction).
        let (reported, present) = job_books(backup);
        assert!(!reported.is_empty());
        assert_eq!(reported, present, "job records and raw rows disagree");
    }
    // The daily tier agrees with the raw tier in the copy too.
    let unbalanced = ids(
        &copy,
        "SELECT d.id FROM ad_stats_daily d WHERE d.raw_count != (SELECT COUNT(*) FROM \
         ad_stats_raw r WHERE r.level = d.level AND r.entity_id = d.entity_id \
         AND r.stat_date = d.stat_date)",
    );
    assert!(
        unbalanced.is_empty(),
        "daily rows off their raw rows: {unbalanced:?}"
    );

    // Restore: the copy is a database the service starts on, serving the rows it holds.
    let succeeded_before = ids(
        &copy,
        "SELECT id FROM sync_jobs WHERE status = 'SUCCEEDED' ORDER BY id",
    );
    let raw_before = ids(&copy, "SELECT id FROM ad_stats_raw ORDER BY id");
    let restored = dir.join("restored.db");
    std::fs::copy(&copy, &restored).unwrap();
    let restored_url = format!("sqlite://{}", restored.display());
    let service =
        ServiceProcess::start(&[("DATABASE_URL", restored_url.as_str()), ("JWT_SECRET", JWT)])
            .await;
    let client = reqwest::Client::new();
    let health = client.get(service.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let token = ads_stats::auth::TokenVerifier::new(
        &test_settings(&restored_url, |s| {
            s.auth.jwt_secret = ads_stats::config::Secret::new(JWT)
        })
        .auth,
    )
    .issue("bk-0000", Duration::from_secs(600))
    .unwrap();
    let day = today();
    let stats = client
        .get(service.url(&format!(
            "/api/ads-manager/stats?level=CAMPAIGN&from={day}&to={day}"
        )))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(stats.status(), 200);
    let body = stats.text().await.unwrap();
    assert!(body.contains("bk-0000-cmp-1"), "{body}");
    let (status, log) = service.terminate().await;
    assert_eq!(status.code(), Some(0), "{log}");
    let succeeded_after = ids(
        &restored,
        "SELECT id FROM sync_jobs WHERE status = 'SUCCEEDED'",
    );
    let raw_after = ids(&restored, "SELECT id FROM ad_stats_raw");
    assert!(succeeded_before.is_subset(&succeeded_after));
    assert!(raw_before.is_subset(&raw_after));
}

#[tokio::test]
async fn backup_refuses_postgres_and_a_missing_database() {
    let out = ads_stats()
        .args(["backup", "--to", "/tmp/never-written.db"])
        .env(
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        )
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("pg_dump"), "{}", stderr(&out));

    let dir = tempdir();
    let out = ads_stats()
        .args(["backup", "--to"])
        .arg(dir.join("copy.db"))
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.join("absent.db").display()),
        )
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!dir.join("absent.db").exists(), "no empty database created");
    assert!(!dir.join("copy.db").exists());
    let _ = std::fs::remove_dir_all(dir);
}

// ---------- systemd ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_is_notified_once_health_answers() {
    let test_db = TestDb::new(Backend::Sqlite).await;
    let dir = tempdir();
    let socket_path = dir.join("notify.sock");
    let socket = tokio::net::UnixDatagram::bind(&socket_path).unwrap();
    // The database file does not exist yet: READY=1 must wait for the migrations too. The unit
    // may set WatchdogSec; WATCHDOG_USEC is how systemd passes it on.
    let service = ServiceProcess::start(&[
        ("DATABASE_URL", test_db.url.as_str()),
        ("NOTIFY_SOCKET", &socket_path.to_string_lossy()),
        ("WATCHDOG_USEC", "200000"),
    ])
    .await;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), socket.recv(&mut buf))
        .await
        .expect("a notification within 10 s")
        .unwrap();
    let message = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert_eq!(message.trim(), "READY=1");
    // Ready means ready: migrations ran and /health answers at once.
    let health = reqwest::get(service.url("/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    // Watchdog pings at half the interval while it runs.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, log) = service.terminate().await;
    assert_eq!(status.code(), Some(0), "{log}");
    let mut later = Vec::new();
    while let Ok(Ok(n)) =
        tokio::time::timeout(Duration::from_millis(200), socket.recv(&mut buf)).await
    {
        later.push(String::from_utf8_lossy(&buf[..n]).trim().to_string());
    }
    assert!(later.iter().any(|m| m == "WATCHDOG=1"), "{later:?}");
    assert!(later.iter().any(|m| m == "STOPPING=1"), "{later:?}");
    assert!(
        !later.iter().any(|m| m == "READY=1"),
        "READY once: {later:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_notify_socket_means_no_notification_and_no_error() {
    let test_db = TestDb::new(Backend::Sqlite).await;
    let service = ServiceProcess::start(&[("DATABASE_URL", test_db.url.as_str())]).await;
    let (status, log) = service.terminate().await;
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(!log.contains("cannot notify systemd"), "{log}");
}

/// `systemd-analyze verify` on the shipped unit. The unit names the installed path of the binary,
/// which does not exist on a build machine; verify checks that ExecStart is executable, so the
/// copy it checks points at the binary just built instead (the one line that differs).
#[test]
fn the_systemd_unit_verifies() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit = std::fs::read_to_string(root.join("config/systemd/ads-stats.service")).unwrap();
    assert!(unit.contains("Type=notify"));
    let env_file = std::fs::read_to_string(root.join("config/systemd/ads-stats.env")).unwrap();
    assert!(env_file.contains("JWT_SECRET=") && env_file.contains("DATABASE_URL="));

    let which = std::process::Command::new("sh")
        .args(["-c", "command -v systemd-analyze"])
        .output()
        .unwrap();
    assert!(
        which.status.success(),
        "systemd-analyze is missing: apt-get install -y --no-install-recommends systemd \
         (.ci/setup does it)"
    );
    let dir = tempdir();
    let copy = dir.join("ads-stats.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/ads-stats", env!("CARGO_BIN_EXE_ads-stats")),
    )
    .unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{said}");
    assert!(said.trim().is_empty(), "warnings: {said}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `systemd-analyze security --offline=yes` rates the shipped unit's sandbox at an exposure of 1.5
/// or less (0 is fully locked down, 10 is none at all). Fails, never skips, without the tool.
#[test]
fn the_systemd_unit_is_sandboxed_to_an_exposure_of_at_most_1_5() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit = std::fs::read_to_string(root.join("config/systemd/ads-stats.service")).unwrap();
    for directive in [
        "UMask=0077",
        "ProtectProc=invisible",
        "ProcSubset=pid",
        "RemoveIPC=yes",
        "SystemCallFilter=~@privileged @resources",
    ] {
        assert!(
            unit.lines().any(|l| l.trim() == directive),
            "{directive} is missing"
        );
    }
    let dir = tempdir();
    let copy = dir.join("ads-stats.service");
    // As for `verify`: the installed path does not exist here; the unit must name a real file.
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/ads-stats", env!("CARGO_BIN_EXE_ads-stats")),
    )
    .unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&copy)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "systemd-analyze does not run ({e}): apt-get install -y --no-install-recommends \
                 systemd (.ci/setup does it)"
            )
        });
    let _ = std::fs::remove_dir_all(dir);
    let said = format!("{}{}", stdout(&out), stderr(&out));
    // "→ Overall exposure level for ads-stats.service: 1.4 OK 🙂"
    let exposure: f64 = said
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for "))
        .and_then(|(_, rest)| rest.split_once(": "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in: {said}"));
    assert!(exposure <= 1.5, "exposure {exposure} > 1.5:\n{said}");
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ads-stats-vm-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
