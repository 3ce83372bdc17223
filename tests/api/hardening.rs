//! Issue 15's smaller findings, each held by a test: CSV cells a spreadsheet would run, the seller
//! gate on every seller route, token lifetime and `crit`, and the backup file's mode.

use std::time::{Duration, Instant};

use ads_stats::db::catalog::{self, HierarchyTable};
use ads_stats::db::models::{NewCampaign, NewSellpage};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::Value;

use crate::helpers::{ads_stats, app, seller_catalog, today, Backend, TestApp, TestDb};
use crate::on_both_backends;

on_both_backends!(
    csv_text_cells_never_start_a_formula,
    suspended_and_unknown_sellers_get_403_on_every_seller_route,
    tokens_living_too_long_or_with_crit_get_the_uniform_401,
    backups_are_written_for_their_owner_alone,
);

const FORMULA_CAMPAIGN: &str = "=HYPERLINK(\"http://x\")";
const FORMULA_PAGE: &str = "+cmd|' /C calc'!A0";

/// A catalogue id that is a formula (`=HYPERLINK(…)`), synced through the mock, comes back in
/// CSV with a leading `'` on every route, and unchanged in JSON.
async fn csv_text_cells_never_start_a_formula(backend: Backend) {
    let mut catalog = seller_catalog("s1");
    catalog.sellpages.push(NewSellpage {
        id: FORMULA_PAGE.into(),
        seller_id: "s1".into(),
        slug: "evil".into(),
        title: "Evil".into(),
    });
    catalog.campaigns.push(NewCampaign {
        id: FORMULA_CAMPAIGN.into(),
        seller_id: "s1".into(),
        connection_id: "s1-conn".into(),
        sellpage_id: Some(FORMULA_PAGE.into()),
        name: "=1+1".into(),
        status: "ACTIVE".into(),
        daily_budget_cents: 3_000,
    });
    let app = app(backend).with_catalog(catalog).spawn().await;
    app.enqueue_campaign_sync("s1").await;
    app.wait_for_jobs(Duration::from_secs(20), |jobs| {
        !jobs.is_empty() && jobs.iter().all(|j| j.status == "SUCCEEDED")
    })
    .await;
    let day = today();
    let token = app.token("s1");
    let owned = app;
    let app = &owned;
    let get = |path: String, accept: &'static str| {
        let request = app
            .request(Method::GET, &path)
            .bearer_auth(&token)
            .header("Accept", accept);
        async move {
            let response = app.send(request).await;
            assert_eq!(response.status(), 200, "{path}");
            response.text().await.unwrap()
        }
    };
    for (path, id) in [
        (
            format!("/api/ads-manager/stats?level=CAMPAIGN&from={day}&to={day}"),
            FORMULA_CAMPAIGN,
        ),
        (
            format!("/api/ads-manager/stats/summary?level=CAMPAIGN&from={day}&to={day}"),
            FORMULA_CAMPAIGN,
        ),
        (
            format!("/api/ads-manager/sellpages/stats?from={day}&to={day}"),
            FORMULA_PAGE,
        ),
    ] {
        let csv = get(path.clone(), "text/csv").await;
        // The cell, RFC 4180-quoted where it holds a quote, begins with `'`.
        let guarded = if id.contains('"') {
            format!("\"'{}\"", id.replace('"', "\"\""))
        } else {
            format!("'{id}")
        };
        assert!(csv.contains(&guarded), "{path}: {guarded} not in\n{csv}");
        for line in csv.lines() {
            for cell in line.split(',') {
                let cell = cell.trim_start_matches('"');
                assert!(
                    !cell.starts_with(['=', '+', '@', '\t']),
                    "{path}: a cell starts a formula: {line}"
                );
            }
        }
        // JSON carries the id as it is.
        let json = get(path.clone(), "application/json").await;
        let body: Value = serde_json::from_str(&json).unwrap();
        assert!(
            body.to_string()
                .contains(&serde_json::to_string(id).unwrap()),
            "{path}: {json}"
        );
    }
    owned.shutdown().await;
}

/// Every seller route, as the seller `token` speaks for: (what, status).
async fn statuses(app: &TestApp, token: &str, job_id: &str) -> Vec<(String, u16, String)> {
    let day = today();
    let mut requests = vec![
        (
            "stats".to_string(),
            app.request(
                Method::GET,
                &format!("/api/ads-manager/stats?level=CAMPAIGN&from={day}&to={day}"),
            ),
        ),
        (
            "stats as CSV".to_string(),
            app.request(
                Method::GET,
                &format!("/api/ads-manager/stats?level=CAMPAIGN&from={day}&to={day}"),
            )
            .header("Accept", "text/csv"),
        ),
        (
            "summary".to_string(),
            app.request(
                Method::GET,
                &format!("/api/ads-manager/stats/summary?level=AD&from={day}&to={day}"),
            ),
        ),
        (
            "sellpages".to_string(),
            app.request(
                Method::GET,
                &format!("/api/ads-manager/sellpages/stats?from={day}&to={day}"),
            ),
        ),
        (
            "job status".to_string(),
            app.request(Method::GET, &format!("/api/ads-manager/sync/{job_id}")),
        ),
    ];
    requests.push((
        "sync".to_string(),
        app.request(Method::POST, "/api/ads-manager/sync"),
    ));
    let mut out = Vec::new();
    for (what, request) in requests {
        let response = app.send(request.bearer_auth(token)).await;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let code = body["error"].as_str().unwrap_or_default().to_string();
        out.push((what, status, code));
    }
    out
}

/// An ACTIVE seller reads and syncs; an unknown one gets 403 `forbidden` everywhere; a seller
/// suspended in the database gets 403 everywhere (its own job's status included) once the
/// gate's short cache has passed, well within the deadline.
async fn suspended_and_unknown_sellers_get_403_on_every_seller_route(backend: Backend) {
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .spawn()
        .await;
    let token = app.token("s1");
    let accepted: Value = app
        .post_sync(Some(&token), None)
        .await
        .json()
        .await
        .unwrap();
    let job_id = accepted["jobIds"][0]
        .as_str()
        .expect("a job id")
        .to_string();
    for (what, status, _) in statuses(&app, &token, &job_id).await {
        let expected = if what == "sync" { 202 } else { 200 };
        assert_eq!(status, expected, "active seller, {what}");
    }

    for (what, status, code) in statuses(&app, &app.token("ghost"), &job_id).await {
        assert_eq!(
            (status, code.as_str()),
            (403, "forbidden"),
            "unknown seller, {what}"
        );
    }

    catalog::set_status(
        &mut app.conn().await,
        HierarchyTable::Sellers,
        "s1",
        "SUSPENDED",
    )
    .await
    .unwrap();
    // The gate caches a status for a few seconds; poll until the suspension shows.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answers = statuses(&app, &token, &job_id).await;
        if answers.iter().all(|(_, status, _)| *status == 403) {
            for (what, _, code) in answers {
                assert_eq!(code, "forbidden", "suspended seller, {what}");
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a suspended seller still gets through: {answers:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // And back: reactivated, it reads again.
    catalog::set_status(
        &mut app.conn().await,
        HierarchyTable::Sellers,
        "s1",
        "ACTIVE",
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answers = statuses(&app, &token, &job_id).await;
        if answers.iter().all(|(_, status, _)| *status < 300) {
            break;
        }
        assert!(Instant::now() < deadline, "still refused: {answers:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.shutdown().await;
}

fn signed(secret: &str, header: Header, claims: Value) -> String {
    encode(
        &header,
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// `auth.max_token_lifetime` (24 h by default): a token whose `exp` is further away from its
/// `iat`, or from now without one, gets the same 401 as any bad token; so does a token with a
/// `crit` header. 0 turns the lifetime check off.
async fn tokens_living_too_long_or_with_crit_get_the_uniform_401(backend: Backend) {
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .spawn()
        .await;
    assert_eq!(
        app.settings.auth.max_token_lifetime,
        Duration::from_secs(86_400)
    );
    let secret = app.settings.auth.jwt_secret.expose().to_string();
    let now = ads_stats::auth::unix_now();
    let day = 86_400;
    let hs256 = || Header::new(Algorithm::HS256);
    let owned = app;
    let app = &owned;
    let read = |token: String| {
        let request = app
            .request(
                Method::GET,
                "/api/ads-manager/stats?level=CAMPAIGN&from=2026-11-01&to=2026-11-02",
            )
            .bearer_auth(token);
        async move {
            let response = app.send(request).await;
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let claims = |iat: Option<u64>, exp: u64| {
        let mut c = serde_json::json!({"sellerId": "s1", "exp": exp});
        if let Some(iat) = iat {
            c["iat"] = iat.into();
        }
        c
    };
    let (status, _) = read(signed(&secret, hs256(), claims(Some(now), now + day))).await;
    assert_eq!(status, 200, "exactly the maximum is fine");

    let (_, uniform) = read("not-a-token".into()).await;
    let mut crit = hs256();
    crit.crit = Some(vec!["exp".into()]);
    for (what, token) in [
        (
            "a lifetime of a day and a second",
            signed(&secret, hs256(), claims(Some(now), now + day + 1)),
        ),
        (
            "issued two days ago, still valid for a minute",
            signed(&secret, hs256(), claims(Some(now - 2 * day), now + 60)),
        ),
        (
            "no iat, valid for two days",
            signed(&secret, hs256(), claims(None, now + 2 * day)),
        ),
        (
            "a crit header",
            signed(&secret, crit.clone(), claims(Some(now), now + 60)),
        ),
    ] {
        let (status, body) = read(token).await;
        assert_eq!(status, 401, "{what}");
        assert_eq!(body, uniform, "{what}: the same body as any bad token");
    }
    owned.shutdown().await;

    let app = crate::helpers::app(backend)
        .with_catalog(seller_catalog("s1"))
        .with_settings(|s| s.auth.max_token_lifetime = Duration::ZERO)
        .spawn()
        .await;
    let secret = app.settings.auth.jwt_secret.expose().to_string();
    let response = app
        .send(
            app.request(
                Method::GET,
                "/api/ads-manager/stats?level=CAMPAIGN&from=2026-11-01&to=2026-11-02",
            )
            .bearer_auth(signed(&secret, hs256(), claims(None, now + 30 * day))),
        )
        .await;
    assert_eq!(response.status(), 200, "0 turns the lifetime check off");
    app.shutdown().await;
}

/// `ads-stats backup` creates the copy with mode 0600, also when it replaces an older, readable
/// file; on PostgreSQL it refuses (pg_dump's job) and writes nothing.
async fn backups_are_written_for_their_owner_alone(backend: Backend) {
    use std::os::unix::fs::PermissionsExt;
    let test_db = TestDb::new(backend).await;
    let _db = crate::helpers::migrated_db(&test_db).await;
    let dir = std::env::temp_dir().join(format!(
        "ads-stats-backup-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("copy.db");
    let backup = |force: bool| {
        let mut cmd = ads_stats();
        cmd.arg("backup");
        if force {
            cmd.arg("--force");
        }
        cmd.arg("--to").arg(&copy).env("DATABASE_URL", &test_db.url);
        cmd
    };
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    match backend {
        Backend::Sqlite => {
            let out = backup(false).output().await.unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(mode(&copy), 0o600);
            // Replacing an older copy that anyone could read.
            std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).unwrap();
            let out = backup(true).output().await.unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(mode(&copy), 0o600);
            let names: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names.len(), 1, "no partial file left: {names:?}");
        }
        Backend::Postgres => {
            let out = backup(false).output().await.unwrap();
            assert_eq!(out.status.code(), Some(2));
            assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));
            assert!(!copy.exists(), "nothing written");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}
