//! The operator dashboard: off without credentials, the login, the session cookie, CSRF on every
//! POST, Retry and dedup, the seller page against the tables (both backends, over HTTP); and a
//! real browser (Chromium driven through chromedriver) that logs in, reads the pages, checks the
//! charts and the console, clicks Retry, and saves screenshots under `target/`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ads_stats::config::{Secret, Settings};
use ads_stats::db::models::JobRecord;
use ads_stats::db_run;
use ads_stats::domain::Level;
use ads_stats::pipeline::SyncRequest;
use chrono::NaiveDate;
use diesel::sql_types::BigInt;
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use fantoccini::{ClientBuilder, Locator};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{app, merge, seller_catalog, today, Backend, TestApp, TestProvider};
use crate::on_both_backends;

pub(crate) const USER: &str = "admin";
pub(crate) const PASSWORD: &str = "correct-horse-battery-staple";

on_both_backends!(
    every_dashboard_path_is_404_json_until_configured,
    login_is_refused_with_a_wrong_password,
    guessing_is_throttled_per_client,
    posts_without_the_sessions_csrf_token_are_403,
    session_cookie_attributes_and_logout,
    retry_requeues_a_failed_job_unless_the_same_job_is_active,
    seller_page_matches_the_tables,
);

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) fn with_dashboard(s: &mut Settings) {
    s.dashboard.admin_user = USER.into();
    s.dashboard.admin_password_sha256 = Secret::new(sha256_hex(PASSWORD));
}

/// A client that shows redirects instead of following them, and keeps no cookies of its own.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    // Test values are plain ASCII words; only '&', '=', '+', '%' and space would need escaping.
    for (_, v) in pairs {
        assert!(!v.contains(['&', '=', '+', '%', ' ']), "{v}");
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

pub(crate) async fn post_form(
    app: &TestApp,
    path: &str,
    cookie: Option<&str>,
    body: String,
) -> reqwest::Response {
    let mut req = client()
        .post(format!("{}{path}", app.address))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(cookie) = cookie {
        req = req.header(COOKIE, cookie);
    }
    req.send().await.expect("request sent")
}

pub(crate) async fn get(app: &TestApp, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut req = client().get(format!("{}{path}", app.address));
    if let Some(cookie) = cookie {
        req = req.header(COOKIE, cookie);
    }
    req.send().await.expect("request sent")
}

/// A signed-in browser's state: the `Cookie` header value and the page's CSRF token.
pub(crate) struct Login {
    pub(crate) cookie: String,
    pub(crate) csrf: String,
}

pub(crate) async fn log_in(app: &TestApp) -> Login {
    let response = post_form(
        app,
        "/dashboard/login",
        None,
        form(&[("user", USER), ("password", PASSWORD)]),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/dashboard");
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_string();
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let page = get(app, "/dashboard", Some(&cookie)).await;
    assert_eq!(page.status(), 200);
    let csrf = csrf_in(&page.text().await.unwrap());
    Login { cookie, csrf }
}

pub(crate) fn csrf_in(html: &str) -> String {
    let start = html.find(r#"name="csrf" value=""#).expect("a CSRF field") + 19;
    html[start..].split('"').next().unwrap().to_string()
}

pub(crate) async fn error_code(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.expect("JSON error body");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    body["error"].as_str().expect("error code").to_string()
}

/// An app with the dashboard on, sellers s1 and s2, whose first provider fetch fails and whose
/// jobs get one attempt: the first job run ends FAILED.
async fn app_with_failing_first_fetch(backend: Backend, delay: Duration) -> TestApp {
    app(backend)
        .with_catalog(merge(seller_catalog("s1"), seller_catalog("s2")))
        .with_provider(TestProvider::new(delay, 1))
        .with_settings(|s| {
            with_dashboard(s);
            s.jobs.max_attempts = 1;
        })
        .spawn()
        .await
}

/// Today's CAMPAIGN sync of s1, run to FAILED; returns its record.
async fn failed_job(app: &TestApp) -> JobRecord {
    app.enqueue_campaign_sync("s1").await;
    let jobs = app
        .wait_for_jobs(Duration::from_secs(20), |jobs| {
            jobs.iter().any(|j| j.status == "FAILED")
        })
        .await;
    jobs.into_iter().find(|j| j.status == "FAILED").unwrap()
}

pub(crate) async fn record(app: &TestApp, id: i64) -> JobRecord {
    let mut conn = app.conn().await;
    ads_stats::db::jobs::get(&mut conn, id)
        .await
        .unwrap()
        .expect("record")
}

async fn every_dashboard_path_is_404_json_until_configured(backend: Backend) {
    // Only one of the two set: still off.
    let app = app(backend)
        .with_settings(|s| s.dashboard.admin_user = USER.into())
        .spawn()
        .await;
    for path in [
        "/dashboard",
        "/dashboard/",
        "/dashboard/login",
        "/dashboard/sellers",
        "/dashboard/sellers/s1",
        "/dashboard/assets/dashboard.css",
    ] {
        let code = error_code(get(&app, path, None).await, 404).await;
        assert_eq!(code, "not_found", "{path}");
    }
    for path in [
        "/dashboard/login",
        "/dashboard/logout",
        "/dashboard/jobs/1/retry",
    ] {
        let body = form(&[("user", USER), ("password", PASSWORD), ("csrf", "x")]);
        let code = error_code(post_form(&app, path, None, body).await, 404).await;
        assert_eq!(code, "not_found", "{path}");
    }
    app.shutdown().await;

    // Configured: the same paths exist.
    let app = app_with_dashboard(backend).await;
    let login = get(&app, "/dashboard/login", None).await;
    assert_eq!(login.status(), 200);
    assert!(login.text().await.unwrap().contains("Sign in"));
    let css = get(&app, "/dashboard/assets/dashboard.css", None).await;
    assert_eq!(css.status(), 200);
    assert!(css.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    app.shutdown().await;
}

async fn app_with_dashboard(backend: Backend) -> TestApp {
    app(backend)
        .with_catalog(seller_catalog("s1"))
        .with_settings(with_dashboard)
        .spawn()
        .await
}

async fn login_is_refused_with_a_wrong_password(backend: Backend) {
    let app = app_with_dashboard(backend).await;
    // Pages redirect to the form without a session.
    for path in ["/dashboard", "/dashboard/sellers", "/dashboard/sellers/s1"] {
        let response = get(&app, path, None).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(response.headers()[LOCATION], "/dashboard/login");
    }
    let wrong = [
        form(&[("user", USER), ("password", "wrong")]),
        form(&[("user", "Admin"), ("password", PASSWORD)]),
        form(&[("user", USER), ("password", &PASSWORD.to_uppercase())]),
        form(&[("user", USER)]),
        String::new(),
    ];
    for body in wrong {
        let response = post_form(&app, "/dashboard/login", None, body.clone()).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{body}");
        assert!(response.headers().get(SET_COOKIE).is_none(), "{body}");
        assert!(response
            .text()
            .await
            .unwrap()
            .contains("Wrong user name or password"));
    }
    // A made-up session cookie is no session.
    let forged = format!("ads_stats_dashboard={}", "a".repeat(64));
    let response = get(&app, "/dashboard", Some(&forged)).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    // The right password works.
    let login = log_in(&app).await;
    assert_eq!(login.csrf.len(), 64);
    app.shutdown().await;
}

async fn guessing_is_throttled_per_client(backend: Backend) {
    let app = app_with_dashboard(backend).await;
    let wrong = form(&[("user", USER), ("password", "guess")]);
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let response = post_form(&app, "/dashboard/login", None, wrong.clone()).await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(&statuses[..10], &[401; 10], "{statuses:?}");
    assert_eq!(&statuses[10..], &[429, 429], "{statuses:?}");
    // While throttled, even the right password waits: a guesser learns nothing more.
    let right = form(&[("user", USER), ("password", PASSWORD)]);
    let response = post_form(&app, "/dashboard/login", None, right).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().get("retry-after").is_some());
    assert!(response.headers().get(SET_COOKIE).is_none());
    app.shutdown().await;
}

async fn posts_without_the_sessions_csrf_token_are_403(backend: Backend) {
    let app = app_with_failing_first_fetch(backend, Duration::ZERO).await;
    let failed = failed_job(&app).await;
    let login = log_in(&app).await;
    let other = log_in(&app).await;
    assert_ne!(login.csrf, other.csrf, "a token per session");
    let retry = format!("/dashboard/jobs/{}/retry", failed.id);
    let refused = [
        (Some(login.cookie.as_str()), String::new()),
        (Some(login.cookie.as_str()), form(&[("csrf", "0000")])),
        (Some(login.cookie.as_str()), form(&[("csrf", &other.csrf)])),
        (None, form(&[("csrf", &login.csrf)])),
    ];
    for (cookie, body) in &refused {
        for path in [retry.as_str(), "/dashboard/logout"] {
            let response = post_form(&app, path, *cookie, body.clone()).await;
            assert_eq!(
                error_code(response, 403).await,
                "forbidden",
                "{path} {body}"
            );
        }
    }
    // Nothing happened: the job is still FAILED and the session still works.
    assert_eq!(record(&app, failed.id).await.status, "FAILED");
    assert_eq!(
        get(&app, "/dashboard", Some(&login.cookie)).await.status(),
        200
    );
    // With the token it goes through.
    let response = post_form(
        &app,
        &retry,
        Some(&login.cookie),
        form(&[("csrf", &login.csrf)]),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    app.shutdown().await;
}

async fn session_cookie_attributes_and_logout(backend: Backend) {
    for secure in [false, true] {
        let app = app(backend)
            .with_settings(move |s| {
                with_dashboard(s);
                s.dashboard.secure_cookies = Some(secure);
                s.dashboard.session_ttl = Duration::from_secs(3600);
            })
            .spawn()
            .await;
        let response = post_form(
            &app,
            "/dashboard/login",
            None,
            form(&[("user", USER), ("password", PASSWORD)]),
        )
        .await;
        let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_string();
        let mut parts = set_cookie.split("; ");
        let (name, token) = parts.next().unwrap().split_once('=').unwrap();
        assert_eq!(name, "ads_stats_dashboard");
        assert_eq!(token.len(), 64);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        let attributes: Vec<&str> = parts.collect();
        for expected in [
            "HttpOnly",
            "SameSite=Strict",
            "Path=/dashboard",
            "Max-Age=3600",
        ] {
            assert!(attributes.contains(&expected), "{set_cookie}");
        }
        assert_eq!(attributes.contains(&"Secure"), secure, "{set_cookie}");

        // Pages are not cached and carry a restrictive CSP.
        let cookie = format!("{name}={token}");
        let page = get(&app, "/dashboard", Some(&cookie)).await;
        assert_eq!(page.headers()["cache-control"], "no-store");
        let csp = page.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
        let csrf = csrf_in(&page.text().await.unwrap());

        let response = post_form(
            &app,
            "/dashboard/logout",
            Some(&cookie),
            form(&[("csrf", &csrf)]),
        )
        .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(response.headers()[LOCATION], "/dashboard/login");
        let cleared = response.headers()[SET_COOKIE].to_str().unwrap();
        assert!(cleared.starts_with("ads_stats_dashboard=;") && cleared.contains("Max-Age=0"));
        // The old cookie no longer opens anything.
        assert_eq!(
            get(&app, "/dashboard", Some(&cookie)).await.status(),
            StatusCode::SEE_OTHER
        );
        app.shutdown().await;
    }
}

async fn retry_requeues_a_failed_job_unless_the_same_job_is_active(backend: Backend) {
    // Every fetch takes a moment, so a second run of the same job is still active while the
    // operator clicks Retry on the first.
    let app = app_with_failing_first_fetch(backend, Duration::from_millis(1500)).await;
    let failed = failed_job(&app).await;
    assert_eq!((failed.attempts, failed.max_attempts), (1, 1));
    let login = log_in(&app).await;
    let retry = |id: i64| format!("/dashboard/jobs/{id}/retry");
    let csrf = form(&[("csrf", &login.csrf)]);

    // The same job again, as the scheduler would queue it: one active record for the job id.
    app.enqueue_campaign_sync("s1").await;
    let response = post_form(&app, &retry(failed.id), Some(&login.cookie), csrf.clone()).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()[LOCATION].to_str().unwrap().to_string();
    assert_eq!(
        location,
        format!("/dashboard?retried={}&outcome=active", failed.id)
    );
    let page = get(&app, &location, Some(&login.cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("already queued or running"), "{page}");
    assert_eq!(record(&app, failed.id).await.status, "FAILED");
    app.wait_until_idle(Duration::from_secs(20)).await;

    // Nothing active now: the FAILED record itself runs again with fresh attempts.
    let response = post_form(&app, &retry(failed.id), Some(&login.cookie), csrf.clone()).await;
    assert_eq!(
        response.headers()[LOCATION],
        format!("/dashboard?retried={}&outcome=requeued", failed.id).as_str()
    );
    app.wait_until_idle(Duration::from_secs(20)).await;
    let rerun = record(&app, failed.id).await;
    assert_eq!((rerun.status.as_str(), rerun.attempts), ("SUCCEEDED", 1));
    assert_eq!(app.jobs().await.len(), 2, "no extra record was made");

    // A job that is not FAILED, and one that does not exist, are left alone.
    let response = post_form(&app, &retry(failed.id), Some(&login.cookie), csrf.clone()).await;
    assert!(response.headers()[LOCATION]
        .to_str()
        .unwrap()
        .ends_with("outcome=not_failed"));
    let response = post_form(&app, &retry(999_999), Some(&login.cookie), csrf.clone()).await;
    assert!(response.headers()[LOCATION]
        .to_str()
        .unwrap()
        .ends_with("outcome=not_found"));
    assert_eq!(record(&app, failed.id).await.status, "SUCCEEDED");
    app.shutdown().await;
}

#[derive(QueryableByName)]
struct Totals {
    #[diesel(sql_type = BigInt)]
    spend: i64,
    #[diesel(sql_type = BigInt)]
    revenue: i64,
}

/// Runs s1's campaign sync for the last `days` days (today included), as jobs would.
async fn sync_days(app: &TestApp, seller: &str, days: i64) -> NaiveDate {
    let first = today() - chrono::Duration::days(days - 1);
    for d in 0..days {
        let request =
            SyncRequest::one_day(seller, Level::Campaign, first + chrono::Duration::days(d));
        app.app().pipeline().run(&request).await.expect("sync");
    }
    first
}

fn dollars(cents: i64) -> String {
    let whole = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("${grouped}.{:02}", cents % 100)
}

async fn seller_page_matches_the_tables(backend: Backend) {
    let app = app(backend)
        .with_catalog(merge(seller_catalog("s1"), seller_catalog("s2")))
        .with_settings(with_dashboard)
        .spawn()
        .await;
    sync_days(&app, "s1", 5).await;
    // A day outside the 30-day window, and another seller: neither may count.
    let old = SyncRequest::one_day("s1", Level::Campaign, today() - chrono::Duration::days(40));
    app.app().pipeline().run(&old).await.expect("sync");
    sync_days(&app, "s2", 2).await;

    let totals: Totals = {
        let mut conn = app.conn().await;
        let conn = &mut conn;
        db_run!(conn, {
            diesel::sql_query(format!(
                "SELECT CAST(SUM(spend_cents) AS BIGINT) AS spend, \
                        CAST(SUM(revenue_cents) AS BIGINT) AS revenue \
                 FROM ad_stats_daily WHERE seller_id = 's1' AND level = 'CAMPAIGN' \
                 AND stat_date >= '{}'",
                today() - chrono::Duration::days(29)
            ))
            .get_result(conn)
            .await
        })
        .unwrap()
    };
    assert!(totals.spend > 0);

    let login = log_in(&app).await;
    let response = get(&app, "/dashboard/sellers/s1", Some(&login.cookie)).await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(
        html.contains(&format!(
            r#"<div class="big" id="total-spend">{}</div>"#,
            dollars(totals.spend)
        )),
        "{html}"
    );
    assert!(html.contains(&format!(
        r#"<div class="big" id="total-revenue">{}</div>"#,
        dollars(totals.revenue)
    )));
    assert_eq!(
        html.matches("<svg").count(),
        3,
        "spend, revenue and ROAS charts"
    );
    // Both sellpages of s1 have rows; the breakdown lists them, with s1's titles.
    let sellpages = &html[html.find(r#"id="sellpages""#).unwrap()..];
    let sellpages = &sellpages[..sellpages.find("</table>").unwrap()];
    assert_eq!(sellpages.matches("<tr>").count(), 1 + 2, "{sellpages}");
    assert!(sellpages.contains("Page 1") && sellpages.contains("/page-2"));

    let response = get(&app, "/dashboard/sellers/nobody", Some(&login.cookie)).await;
    assert_eq!(response.status(), 404);
    let list = get(&app, "/dashboard/sellers", Some(&login.cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        list.contains(r#"href="/dashboard/sellers/s1""#)
            && list.contains(r#"href="/dashboard/sellers/s2""#)
    );
    app.shutdown().await;
}

/// `ads-stats demo` turns the dashboard on with a generated password, prints a login that
/// works, and logs neither the password nor the session token (at debug level).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_prints_a_dashboard_login_that_works() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let test_db = crate::helpers::TestDb::new(Backend::Sqlite).await;
    let mut child = crate::helpers::ads_stats()
        .arg("demo")
        .env("DATABASE_URL", &test_db.url)
        .env("PORT", "0")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ads-stats demo starts");
    let mut stderr = child.stderr.take().expect("stderr");
    let log = tokio::spawn(async move {
        let mut log = String::new();
        let _ = stderr.read_to_string(&mut log).await;
        log
    });
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("stdout") {
            if line.starts_with("Dashboard: ") {
                return line;
            }
        }
        panic!("demo ended without printing the dashboard's login");
    })
    .await
    .expect("demo prints its dashboard login within 60s");
    // "Dashboard: http://127.0.0.1:PORT/dashboard (user admin, password XXXX; …)"
    let url = line.split_whitespace().nth(1).unwrap().to_string();
    let user = line
        .split("(user ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    let password = line
        .split("password ")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    assert!(url.ends_with("/dashboard"), "{line}");
    assert_eq!(user, "admin");
    assert!(password.len() >= 16, "{line}");

    let response = client()
        .post(format!("{url}/login"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("user={user}&password={password}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{line}");
    let cookie = response.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let token = cookie.split('=').nth(1).unwrap().to_string();
    let page = client()
        .get(&url)
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);

    let pid = child.id().expect("running").to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("demo stops on SIGTERM")
        .unwrap();
    let log = log.await.unwrap();
    assert!(status.success(), "{log}");
    assert!(log.contains("dashboard login"), "{log}");
    assert!(!log.contains(password), "the password was logged: {log}");
    assert!(!log.contains(&token), "the session token was logged: {log}");
}

// ---------- a real browser ----------

pub(crate) const BROWSER_PACKAGES: &str = "the dashboard's browser test needs Debian's `chromium` and \
    `chromium-driver` packages (apt-get install -y --no-install-recommends chromium chromium-driver)";

/// chromedriver on a port of its choosing, in a process group of its own that is killed with
/// everything it started (Chromium) when this is dropped, however the test ends.
pub(crate) struct ChromeDriver {
    child: Child,
    port: u16,
}

impl ChromeDriver {
    pub(crate) fn start() -> Self {
        let driver = find_on_path("chromedriver")
            .unwrap_or_else(|| panic!("chromedriver is not installed: {BROWSER_PACKAGES}"));
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(driver)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("chromedriver does not start ({e}): {BROWSER_PACKAGES}"));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the port from "ChromeDriver was started successfully on port N.", then keeps
        // draining so chromedriver never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("successfully on port ").nth(1) {
                    let _ = tx.send(rest.trim_end_matches('.').trim().parse::<u16>().ok());
                }
            }
        });
        let port = rx.recv_timeout(Duration::from_secs(20)).ok().flatten();
        let mut driver = Self { child, port: 0 };
        driver.port = port
            .unwrap_or_else(|| panic!("chromedriver did not report its port: {BROWSER_PACKAGES}"));
        driver
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

pub(crate) fn find_on_path(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(Into::into)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// Console messages of level SEVERE (uncaught errors, CSP violations, failed loads) since the
/// last call, through chromedriver's log endpoint.
pub(crate) async fn console_errors(
    driver: &ChromeDriver,
    browser: &fantoccini::Client,
) -> Vec<String> {
    let session = browser.session_id().await.unwrap().expect("a session");
    let response = reqwest::Client::new()
        .post(format!("{}/session/{session}/se/log", driver.url()))
        .json(&json!({ "type": "browser" }))
        .send()
        .await
        .expect("chromedriver answers");
    assert_eq!(response.status(), 200, "chromedriver's browser log");
    let body: Value = response.json().await.unwrap();
    body["value"]
        .as_array()
        .expect("log entries")
        .iter()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The texts of the elements `css` finds. A page that redraws between the find and the read
/// leaves the found elements stale: they are then found again (a few times at most).
pub(crate) async fn texts(browser: &fantoccini::Client, css: &str) -> Vec<String> {
    let mut tries = 0;
    'find: loop {
        tries += 1;
        let mut out = Vec::new();
        for element in browser.find_all(Locator::Css(css)).await.unwrap() {
            match element.text().await {
                // plotters puts newlines around its text nodes.
                Ok(text) => out.push(text.trim().to_string()),
                Err(fantoccini::error::CmdError::Standard(e))
                    if e.error == fantoccini::error::ErrorStatus::StaleElementReference
                        && tries < 10 =>
                {
                    continue 'find
                }
                Err(e) => panic!("reading {css}: {e}"),
            }
        }
        return out;
    }
}

pub(crate) async fn screenshot(browser: &fantoccini::Client, name: &str) {
    let png = browser.screenshot().await.expect("screenshot");
    let path = target_dir().join(name);
    std::fs::write(&path, png).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    eprintln!("screenshot: {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_logs_in_reads_the_charts_and_retries_a_failed_job() {
    let started = Instant::now();
    let driver = ChromeDriver::start();
    let chromium = find_on_path("chromium")
        .unwrap_or_else(|| panic!("chromium is not installed: {BROWSER_PACKAGES}"));
    let profile = tempdir("ads-stats-chromium");

    let app = app_with_failing_first_fetch(Backend::Sqlite, Duration::ZERO).await;
    let failed = failed_job(&app).await;
    sync_days(&app, "s1", 12).await;

    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), json!("chrome"));
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1400,1700",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    capabilities.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
    let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url())
        .await
        .unwrap_or_else(|e| panic!("no browser session ({e}): {BROWSER_PACKAGES}"));
    let browser = Arc::new(browser);
    eprintln!("browser session after {:?}", started.elapsed());

    // Signed out, the dashboard sends the browser to the form.
    browser
        .goto(&format!("{}/dashboard", app.address))
        .await
        .unwrap();
    assert!(browser
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/dashboard/login"));
    browser
        .find(Locator::Css("#user"))
        .await
        .unwrap()
        .send_keys(USER)
        .await
        .unwrap();
    browser
        .find(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    browser
        .find(Locator::Css("form.login button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("#failed-jobs"))
        .await
        .unwrap();
    assert_eq!(browser.current_url().await.unwrap().path(), "/dashboard");

    // The overview: the queue, the failed job with its error, the latest jobs.
    assert_eq!(texts(&browser, "#queue dd.failed").await, ["1"]);
    let failed_rows = browser
        .find_all(Locator::Css("#failed-jobs tbody tr[data-status=FAILED]"))
        .await
        .unwrap();
    assert_eq!(failed_rows.len(), 1);
    let error = texts(&browser, "#failed-jobs td.error").await;
    assert_eq!(error, [failed.last_error.clone().expect("an error")]);
    assert!(!texts(&browser, "#latest-jobs tbody tr").await.is_empty());
    assert!(texts(&browser, "#scheduler").await[0].contains("disabled"));
    screenshot(&browser, "dashboard-overview.png").await;
    let errors = console_errors(&driver, &browser).await;
    assert!(
        errors.is_empty(),
        "console errors on the overview: {errors:#?}"
    );

    // The seller page: three charts drawn, with their axis labels, and the sellpage table.
    browser
        .find(Locator::Css("#failed-jobs td.id a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("figure.chart svg"))
        .await
        .unwrap();
    assert_eq!(
        browser.current_url().await.unwrap().path(),
        "/dashboard/sellers/s1"
    );
    let charts = browser
        .find_all(Locator::Css("figure.chart svg"))
        .await
        .unwrap();
    assert_eq!(charts.len(), 3);
    for chart in &charts {
        let (_, _, width, height) = chart.rectangle().await.unwrap();
        assert!(
            width > 200.0 && height > 80.0,
            "a chart is drawn {width}x{height}"
        );
        assert!(!chart
            .find_all(Locator::Css("polyline, path"))
            .await
            .unwrap()
            .is_empty());
    }
    let labels = texts(&browser, "figure.chart svg text").await;
    for expected in ["USD", "ROAS (revenue / spend)", "date"] {
        assert!(
            labels.iter().any(|l| l == expected),
            "axis label {expected} in {labels:?}"
        );
    }
    let day_labels = labels
        .iter()
        .filter(|l| l.len() == 5 && l.as_bytes()[2] == b'-')
        .count();
    assert!(day_labels >= 3 * 4, "dates along each x axis: {labels:?}");
    assert!(
        labels.iter().any(|l| l.starts_with('$')),
        "dollar ticks: {labels:?}"
    );
    assert_eq!(
        browser
            .find_all(Locator::Css("#sellpages tbody tr"))
            .await
            .unwrap()
            .len(),
        2
    );
    screenshot(&browser, "dashboard-seller.png").await;
    let errors = console_errors(&driver, &browser).await;
    assert!(
        errors.is_empty(),
        "console errors on the seller page: {errors:#?}"
    );

    // Retry: the job leaves FAILED and, the provider now working, succeeds.
    browser
        .find(Locator::Css("header nav a[href='/dashboard']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let button = format!(
        "#failed-jobs tr[data-record='{}'] form.retry button",
        failed.id
    );
    browser
        .wait()
        .for_element(Locator::Css(&button))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let notice = browser
        .wait()
        .for_element(Locator::Css(".notice"))
        .await
        .unwrap();
    assert!(notice.text().await.unwrap().contains("queued again"));
    app.wait_until_idle(Duration::from_secs(20)).await;
    assert_eq!(record(&app, failed.id).await.status, "SUCCEEDED");
    browser.refresh().await.unwrap();
    browser
        .wait()
        .for_element(Locator::Css("#failed-jobs"))
        .await
        .unwrap();
    assert!(browser
        .find_all(Locator::Css("#failed-jobs tbody tr[data-status=FAILED]"))
        .await
        .unwrap()
        .is_empty());
    let row = format!("#latest-jobs tr[data-record='{}']", failed.id);
    let status = browser
        .find(Locator::Css(&row))
        .await
        .unwrap()
        .attr("data-status")
        .await
        .unwrap();
    assert_eq!(status.as_deref(), Some("SUCCEEDED"));
    assert_eq!(texts(&browser, "#queue dd.failed").await, ["0"]);
    screenshot(&browser, "dashboard-retried.png").await;
    let errors = console_errors(&driver, &browser).await;
    assert!(
        errors.is_empty(),
        "console errors after the retry: {errors:#?}"
    );

    // Log out through the header button.
    browser
        .find(Locator::Css("form.logout button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("form.login"))
        .await
        .unwrap();

    if let Ok(browser) = Arc::try_unwrap(browser) {
        let _ = browser.close().await;
    }
    app.shutdown().await;
    drop(driver);
    let _ = std::fs::remove_dir_all(&profile);
    eprintln!("browser test took {:?}", started.elapsed());
}

pub(crate) fn tempdir(prefix: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
