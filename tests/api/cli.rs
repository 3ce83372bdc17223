//! The binary itself: configuration errors, `migrate`, `sync`, `token`, `check-health`.

use std::process::Output;

use ads_stats::db::catalog::insert_catalog;
use ads_stats::db::writes;
use ads_stats::domain::Level;

use crate::helpers::{
    ads_stats, app, migrated_db, seller_catalog, Backend, ServiceProcess, TestDb,
};
use crate::on_both_backends;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn config_error(envs: &[(&str, &str)], key: &str) {
    config_errors(envs, &[key]).await;
}

/// `serve` with these variables exits 2 with one line naming every one of `keys`.
pub(crate) async fn config_errors(envs: &[(&str, &str)], keys: &[&str]) {
    let out = ads_stats()
        .arg("serve")
        .envs(envs.iter().copied())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{envs:?}: {}", stderr(&out));
    let err = stderr(&out);
    for key in keys {
        assert!(err.contains(key), "{envs:?}: expected `{key}` in {err:?}");
    }
    assert_eq!(err.trim().lines().count(), 1, "one line: {err:?}");
}

#[tokio::test]
async fn bad_configuration_exits_2_naming_the_key() {
    config_error(&[("PORT", "70000")], "server.port").await;
    config_error(&[("ADS_STATS_SERVER__PORT", "eighty")], "server.port").await;
    config_error(&[("DATABASE_URL", "mysql://db/stats")], "database.url").await;
    config_error(&[("DATABASE_URL", "postgres://h:port/db")], "database.url").await;
    config_error(
        &[("ADS_STATS_STATS__AGGREGATION", "average")],
        "stats.aggregation",
    )
    .await;
    config_error(&[("ADS_STATS_JOBS__CONCURENCY", "3")], "jobs.concurency").await;
    // A lookback under `sum` would add re-synced days again: refused, not warned about.
    config_error(
        &[("ADS_STATS_STATS__LOOKBACK_DAYS", "3")],
        "stats.lookback_days",
    )
    .await;
    config_error(
        &[("ADS_STATS_STATS__RAW_RETENTION", "1d")],
        "stats.raw_retention",
    )
    .await;
    config_error(
        &[("ADS_STATS_SCHEDULER__CRON", "every 5 minutes")],
        "scheduler.cron",
    )
    .await;
    config_error(&[("ADS_STATS_JOBS__TIMEOUT", "soon")], "jobs.timeout").await;
    // Half of the default `jobs.rescue_after` (1m) is already too slow a poll.
    config_error(
        &[("ADS_STATS_JOBS__POLL_INTERVAL", "30s")],
        "jobs.poll_interval",
    )
    .await;
    config_error(
        &[
            ("ADS_STATS_JOBS__POLL_INTERVAL", "1s"),
            ("ADS_STATS_JOBS__RESCUE_AFTER", "2s"),
        ],
        "jobs.poll_interval",
    )
    .await;
}

#[tokio::test]
async fn production_refuses_a_missing_or_default_secret() {
    config_error(&[("ADS_STATS_ENV", "production")], "auth.jwt_secret").await;
    config_error(
        &[("ADS_STATS_ENV", "production"), ("JWT_SECRET", "")],
        "auth.jwt_secret",
    )
    .await;
    config_error(
        &[
            ("ADS_STATS_ENV", "production"),
            ("JWT_SECRET", "dev-only-insecure-secret"),
        ],
        "auth.jwt_secret",
    )
    .await;
}

#[tokio::test]
async fn a_reachable_service_refuses_a_weak_secret_in_any_environment() {
    for host in ["0.0.0.0", "::"] {
        config_error(&[("ADS_STATS_SERVER__HOST", host)], "auth.jwt_secret").await;
        config_error(
            &[
                ("ADS_STATS_SERVER__HOST", host),
                ("JWT_SECRET", "dev-only-insecure-secret"),
            ],
            "auth.jwt_secret",
        )
        .await;
        config_error(
            &[
                ("ADS_STATS_SERVER__HOST", host),
                ("JWT_SECRET", "31-bytes-is-one-byte-too-short"),
            ],
            "auth.jwt_secret",
        )
        .await;
    }
    // Production listens on 0.0.0.0 (config/production.toml): a short secret is refused there.
    config_error(
        &[
            ("ADS_STATS_ENV", "production"),
            ("JWT_SECRET", "a-real-but-short-secret"),
        ],
        "auth.jwt_secret",
    )
    .await;
}

#[tokio::test]
async fn secrets_never_appear_in_error_output() {
    let out = ads_stats()
        .arg("serve")
        .envs([("JWT_SECRET", "very-private-value"), ("PORT", "-1")])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!stderr(&out).contains("very-private-value"));
}

#[tokio::test]
async fn token_is_refused_in_production_and_verifies_elsewhere() {
    let out = ads_stats()
        .args(["token", "--seller", "s1"])
        .envs([
            ("ADS_STATS_ENV", "production"),
            ("JWT_SECRET", "a-real-production-secret-of-40-bytes-xyz"),
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("refused"), "{}", stderr(&out));

    let out = ads_stats()
        .args(["token", "--seller", "s1", "--ttl", "2h"])
        .env("JWT_SECRET", "shared-secret")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let token = String::from_utf8(out.stdout).unwrap();
    let verifier = ads_stats::auth::TokenVerifier::new(&ads_stats::config::AuthSettings {
        jwt_secret: ads_stats::config::Secret::new("shared-secret"),
        issuer: String::new(),
        audience: String::new(),
        leeway_seconds: 0,
        max_token_lifetime: std::time::Duration::from_secs(86_400),
    });
    let claims = verifier
        .verify(token.trim())
        .expect("the printed token verifies");
    assert_eq!(claims.seller_id, "s1");
    assert!(claims.exp > ads_stats::auth::unix_now() + 7000);
}

on_both_backends!(
    migrate_creates_the_schema,
    sync_command_writes_all_three_levels,
    sync_command_without_a_date_syncs_today_in_the_connections_zone,
    check_health_follows_the_service
);

/// Without --date the command syncs today as the seller's ad account sees it (UTC+14 here, whose
/// date is ahead of UTC's from 10:00 UTC), like a manual sync, not in `scheduler.timezone`.
async fn sync_command_without_a_date_syncs_today_in_the_connections_zone(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    let mut conn = db.conn().await.unwrap();
    insert_catalog(&mut conn, &seller_catalog("s1"))
        .await
        .unwrap();
    crate::timezones::set_timezone(&mut conn, "s1-conn", "Etc/GMT-14").await;
    let local_today = || (chrono::Utc::now() + chrono::Duration::hours(14)).date_naive();
    let before = local_today();
    let out = ads_stats()
        .args(["sync", "--seller", "s1"])
        .env("DATABASE_URL", &test_db.url)
        .env("ADS_STATS_SCHEDULER__TIMEZONE", "Pacific/Pago_Pago")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let after = local_today();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(printed.lines().count(), 3, "{printed}");
    for line in printed.lines() {
        let date = line.split_whitespace().nth(1).unwrap_or_default();
        assert!(
            date == before.to_string() || date == after.to_string(),
            "{line}: expected {before} in UTC+14"
        );
    }
}

async fn migrate_creates_the_schema(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let out = ads_stats()
        .arg("migrate")
        .env("DATABASE_URL", &test_db.url)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = ads_stats()
        .arg("migrate")
        .env("DATABASE_URL", &test_db.url)
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 migration(s)"));
    // The schema is there: the pipeline's own queries work against it.
    let db = migrated_db(&test_db).await;
    let mut conn = db.conn().await.unwrap();
    assert_eq!(
        writes::tier_counts(&mut conn, "nobody").await.unwrap(),
        (0, 0, 0)
    );
}

async fn sync_command_writes_all_three_levels(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    let mut conn = db.conn().await.unwrap();
    insert_catalog(&mut conn, &seller_catalog("s1"))
        .await
        .unwrap();
    let date = "2026-11-20";
    let out = ads_stats()
        .args(["sync", "--seller", "s1", "--date", date])
        .env("DATABASE_URL", &test_db.url)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(printed.lines().count(), 3, "{printed}");
    let day = date.parse().unwrap();
    for (level, entity) in [
        (Level::Campaign, "s1-cmp-1"),
        (Level::Adset, "s1-adset-1"),
        (Level::Ad, "s1-ad-1"),
    ] {
        let raw = writes::raw_rows(&mut conn, level.as_str(), entity, day)
            .await
            .unwrap();
        assert_eq!(raw.len(), 1, "{level}");
        let daily = writes::daily_row(&mut conn, level.as_str(), entity, day)
            .await
            .unwrap();
        assert_eq!(
            daily.map(|d| d.spend_cents),
            Some(raw[0].spend_cents),
            "{level}"
        );
    }
    assert!(writes::sellpage_row(&mut conn, "s1-page-1", day)
        .await
        .unwrap()
        .is_some());

    for (args, what) in [
        (vec!["sync", "--seller", "nobody"], "unknown seller"),
        (
            vec!["sync", "--seller", "s1", "--date", "2026-02-30"],
            "impossible date",
        ),
        (
            vec!["sync", "--seller", "s1", "--date", "20/11/2026"],
            "bad date",
        ),
        (
            vec!["sync", "--seller", "s1", "--level", "KEYWORD"],
            "bad level",
        ),
    ] {
        let out = ads_stats()
            .args(&args)
            .env("DATABASE_URL", &test_db.url)
            .output()
            .await
            .unwrap();
        assert_ne!(out.status.code(), Some(0), "{what}");
        assert_eq!(
            stderr(&out).trim().lines().count(),
            1,
            "{what}: {}",
            stderr(&out)
        );
    }
    let (raw, _, _) = writes::tier_counts(&mut conn, "s1").await.unwrap();
    assert_eq!(raw, 4 + 2 + 3, "failed commands wrote nothing");
}

async fn check_health_follows_the_service(backend: Backend) {
    let app = app(backend).spawn().await;
    let url = format!("{}/health", app.address);
    let out = ads_stats()
        .args(["check-health", "--url", &url])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let port = app.app().port();
    app.shutdown().await;
    let out = ads_stats()
        .args(["check-health"])
        .env("PORT", port.to_string())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "nothing listens any more");
}

#[tokio::test]
async fn serve_stops_cleanly_on_sigterm_and_never_logs_the_secret() {
    let test_db = TestDb::new(Backend::Sqlite).await;
    let service = ServiceProcess::start(&[
        ("DATABASE_URL", test_db.url.as_str()),
        ("JWT_SECRET", "s3cret-that-must-not-leak"),
        ("RUST_LOG", "trace"),
    ])
    .await;
    let (status, log) = service.terminate().await;
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("ads-stats listening"), "{log}");
    assert!(
        log.contains("SIGTERM received") && log.contains("stopped"),
        "{log}"
    );
    assert!(
        !log.contains("s3cret-that-must-not-leak"),
        "the secret leaked: {log}"
    );
}
