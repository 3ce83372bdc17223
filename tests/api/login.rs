//! The dashboard login behind a load balancer: the login limit keyed on the client a trusted
//! proxy forwarded for (and never on a header a client forged), the argon2id password hash and
//! `ads-stats dashboard hash-password`, the deprecated SHA-256 digest (works, warns once at
//! start), and the session cookie `Secure` by default in production.

use std::process::Stdio;

use ads_stats::config::{Secret, Settings, TrustedProxies};
use reqwest::header::SET_COOKIE;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::helpers::{ads_stats, app, Backend, ServiceProcess, TestApp, TestDb};
use crate::on_both_backends;

const USER: &str = "admin";
const PASSWORD: &str = "correct-horse-battery-staple";
/// The login limit: attempts per client address per minute.
const LIMIT: usize = 10;

on_both_backends!(
    behind_a_trusted_proxy_one_client_guessing_does_not_lock_out_another,
    without_trusted_proxies_a_forged_forwarded_for_is_ignored,
    hash_password_prints_a_hash_that_logs_in,
    the_argon2_hash_wins_over_the_sha256_digest,
    the_cookie_is_secure_by_default_in_production_and_the_setting_overrides,
);

/// `ads-stats dashboard hash-password` with `input` on stdin: (exit code, stdout, stderr).
async fn hash_password(input: &str) -> (Option<i32>, String, String) {
    let mut child = ads_stats()
        .args(["dashboard", "hash-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ads-stats runs");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).await.expect("write");
    drop(stdin);
    let out = child.wait_with_output().await.expect("exits");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The PHC string for `password`, from the binary.
async fn phc_of(password: &str) -> String {
    let (code, stdout, stderr) = hash_password(&format!("{password}\n")).await;
    assert_eq!(code, Some(0), "{stderr}");
    let phc = stdout.trim().to_string();
    assert_eq!(stdout.trim_end().lines().count(), 1, "{stdout:?}");
    assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
    phc
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// POST /dashboard/login with `forwarded_for` as X-Forwarded-For (when given).
async fn log_in(base: &str, password: &str, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut request = client()
        .post(format!("{base}/dashboard/login"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("user={USER}&password={password}"));
    if let Some(xff) = forwarded_for {
        request = request.header("X-Forwarded-For", xff);
    }
    request.send().await.expect("request sent")
}

async fn app_with(backend: Backend, adjust: impl FnOnce(&mut Settings) + 'static) -> TestApp {
    let phc = phc_of(PASSWORD).await;
    app(backend)
        .with_settings(move |s| {
            s.dashboard.admin_user = USER.into();
            s.dashboard.admin_password_hash = Secret::new(phc);
            adjust(s);
        })
        .spawn()
        .await
}

async fn behind_a_trusted_proxy_one_client_guessing_does_not_lock_out_another(backend: Backend) {
    // The test client connects from 127.0.0.1: that is the load balancer.
    let app = app_with(backend, |s| {
        s.server.trusted_proxies = TrustedProxies::parse(["10.0.0.0/8", "127.0.0.1"]).unwrap();
    })
    .await;
    let x = "203.0.113.7";
    let y = "198.51.100.20";
    let mut statuses = Vec::new();
    for _ in 0..=LIMIT {
        // The client may write anything at the left; the balancer appends what it saw.
        let forwarded = format!("6.6.6.6, {x}, 10.1.2.3");
        statuses.push(
            log_in(&app.address, "guess", Some(&forwarded))
                .await
                .status(),
        );
    }
    assert_eq!(&statuses[..LIMIT], &[StatusCode::UNAUTHORIZED; LIMIT]);
    assert_eq!(
        statuses[LIMIT],
        StatusCode::TOO_MANY_REQUESTS,
        "X is limited"
    );
    // Y, behind the same balancer, signs in with the right password.
    let response = log_in(&app.address, PASSWORD, Some(y)).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(response.headers().get(SET_COOKIE).is_some());
    // And a wrong password from Y is just wrong, not throttled.
    let response = log_in(&app.address, "guess", Some(y)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // X is still limited, even with the right password.
    let response = log_in(&app.address, PASSWORD, Some(x)).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    app.shutdown().await;
}

async fn without_trusted_proxies_a_forged_forwarded_for_is_ignored(backend: Backend) {
    let app = app_with(backend, |s| {
        assert!(s.server.trusted_proxies.is_empty(), "empty by default");
    })
    .await;
    let mut statuses = Vec::new();
    for i in 0..=LIMIT {
        // A new made-up client address every time: it must not buy more tries.
        let forged = format!("203.0.113.{i}");
        statuses.push(log_in(&app.address, "guess", Some(&forged)).await.status());
    }
    assert_eq!(&statuses[..LIMIT], &[StatusCode::UNAUTHORIZED; LIMIT]);
    assert_eq!(statuses[LIMIT], StatusCode::TOO_MANY_REQUESTS);
    let response = log_in(&app.address, PASSWORD, Some("198.51.100.20")).await;
    assert_eq!(
        response.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the peer is limited"
    );
    app.shutdown().await;

    // A peer that is not in the list is limited by its own address, header or not.
    let app = app_with(backend, |s| {
        s.server.trusted_proxies = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
    })
    .await;
    for i in 0..LIMIT {
        let forged = format!("203.0.113.{i}");
        let response = log_in(&app.address, "guess", Some(&forged)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let response = log_in(&app.address, PASSWORD, Some("198.51.100.20")).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    app.shutdown().await;
}

async fn hash_password_prints_a_hash_that_logs_in(backend: Backend) {
    // app_with hashes PASSWORD through the binary.
    let app = app_with(backend, |_| {}).await;
    let response = log_in(&app.address, PASSWORD, None).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    // The trailing newline was not part of the password; a wrong one is refused.
    let response = log_in(&app.address, &format!("{PASSWORD}%0A"), None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = log_in(&app.address, "wrong", None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    app.shutdown().await;
}

#[tokio::test]
async fn hash_password_takes_one_line_and_refuses_an_empty_one() {
    for empty in ["", "\n", "\r\n"] {
        let (code, stdout, stderr) = hash_password(empty).await;
        assert_eq!(code, Some(2), "{empty:?}: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr:?}");
        assert!(stderr.contains("empty"), "{stderr}");
    }
    // CRLF and LF endings give hashes of the same password; without a newline too.
    for input in [
        "pw with spaces \r\n",
        "pw with spaces \n",
        "pw with spaces ",
    ] {
        let (code, stdout, stderr) = hash_password(input).await;
        assert_eq!(code, Some(0), "{stderr}");
        assert!(ads_stats::password::verify(
            stdout.trim(),
            "pw with spaces "
        ));
    }
    // A PHC string that does not parse is a configuration error naming the key.
    let out = ads_stats()
        .args(["config", "--check"])
        .env(
            "ADS_STATS_DASHBOARD__ADMIN_PASSWORD_HASH",
            "$argon2id$v=19$m=19456,t=2,p=1$broken",
        )
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("dashboard.admin_password_hash"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

async fn the_argon2_hash_wins_over_the_sha256_digest(backend: Backend) {
    let app = app_with(backend, |s| {
        s.dashboard.admin_password_sha256 = Secret::new(sha256_hex("the-old-password"));
    })
    .await;
    let response = log_in(&app.address, "the-old-password", None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = log_in(&app.address, PASSWORD, None).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    app.shutdown().await;
}

async fn the_cookie_is_secure_by_default_in_production_and_the_setting_overrides(backend: Backend) {
    let cases = [
        ("production", None, true),
        ("production", Some(false), false),
        ("development", None, false),
        ("development", Some(true), true),
    ];
    for (environment, setting, secure) in cases {
        let app = app_with(backend, move |s| {
            s.environment = environment.into();
            s.auth.jwt_secret =
                Secret::new("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
            s.dashboard.secure_cookies = setting;
        })
        .await;
        let response = log_in(&app.address, PASSWORD, None).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_string();
        let attributes: Vec<&str> = cookie.split("; ").collect();
        assert_eq!(
            attributes.contains(&"Secure"),
            secure,
            "{environment} {setting:?}: {cookie}"
        );
        app.shutdown().await;
    }
}

/// The real binary with settings from the environment: a comma-separated trusted proxy list,
/// the deprecated SHA-256 digest. The digest still signs in, its warning is logged once at
/// start (not per login), and the access log names the forwarded client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sha256_still_works_warns_once_and_the_log_names_the_forwarded_client() {
    let test_db = TestDb::new(Backend::Sqlite).await;
    let digest = sha256_hex(PASSWORD);
    let service = ServiceProcess::start(&[
        ("DATABASE_URL", test_db.url.as_str()),
        ("ADS_STATS_SERVER__TRUSTED_PROXIES", "10.0.0.0/8,127.0.0.1"),
        ("ADS_STATS_DASHBOARD__ADMIN_USER", USER),
        (
            "ADS_STATS_DASHBOARD__ADMIN_PASSWORD_SHA256",
            digest.as_str(),
        ),
    ])
    .await;
    let base = service.url("");
    for _ in 0..3 {
        let response = log_in(&base, PASSWORD, Some("198.51.100.23")).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
    }
    let response = log_in(&base, "wrong", Some("198.51.100.24")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let (status, log) = service.terminate().await;
    assert_eq!(status.code(), Some(0), "{log}");
    let warnings = log
        .lines()
        .filter(|l| l.contains("admin_password_sha256 is deprecated"))
        .count();
    assert_eq!(warnings, 1, "{log}");
    assert!(log.contains("client.ip=198.51.100.23"), "{log}");
    assert!(log.contains("client.ip=198.51.100.24"), "{log}");
    assert!(!log.contains("client.ip=127.0.0.1"), "{log}");
    assert!(!log.contains(PASSWORD) && !log.contains(&digest), "{log}");

    // An entry that is no address: one line naming the key, exit 2.
    let out = ads_stats()
        .args(["config", "--check"])
        .env("ADS_STATS_SERVER__TRUSTED_PROXIES", "10.0.0.0/8,not-an-ip")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("server.trusted_proxies"), "{stderr}");
    assert!(stderr.contains("not-an-ip"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
