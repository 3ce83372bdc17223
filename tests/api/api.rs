//! `POST /api/ads-manager/sync` and `GET /api/ads-manager/sync/{jobId}`: every status code.

use std::time::Duration;

use ads_stats::db::catalog::{self, HierarchyTable};
use ads_stats::db::writes;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{add_seller, app, merge, seller_catalog, today, Backend, TestProvider};
use crate::on_both_backends;

on_both_backends!(
    accepted_with_three_job_ids_that_run,
    a_specific_date_is_synced,
    repeated_request_is_deduplicated_while_active,
    unauthorized_without_a_valid_token,
    bearer_in_any_case_nbf_and_audience_arrays_are_accepted,
    manual_syncs_are_rate_limited_per_seller_and_the_scheduler_is_not,
    a_rate_limit_of_zero_is_off,
    forbidden_for_unknown_or_suspended_sellers,
    bad_dates_and_bodies_are_400_or_413,
    nothing_to_sync_is_422,
    queue_at_capacity_is_503_and_records_nothing,
    job_status_is_visible_only_to_its_seller,
    unknown_routes_and_methods_are_json_errors,
);

fn job_ids(body: &Value) -> Vec<String> {
    body["jobIds"]
        .as_array()
        .expect("jobIds array")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

async fn error_code(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.expect("JSON error body");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body["error"].as_str().expect("error code").to_string()
}

async fn accepted_with_three_job_ids_that_run(backend: Backend) {
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .spawn()
        .await;
    let response = app.post_sync(Some(&app.token("s1")), None).await;
    assert_eq!(response.status(), 202);
    let ids = job_ids(&response.json().await.unwrap());
    let d = today().format("%Y-%m-%d");
    assert_eq!(
        ids,
        vec![
            format!("sync__s1__{d}__{d}__CAMPAIGN"),
            format!("sync__s1__{d}__{d}__ADSET"),
            format!("sync__s1__{d}__{d}__AD"),
        ]
    );
    app.wait_until_idle(Duration::from_secs(20)).await;
    let jobs = app.jobs().await;
    assert_eq!(jobs.len(), 3);
    assert!(
        jobs.iter()
            .all(|j| j.status == "SUCCEEDED" && j.triggered_by == "MANUAL"),
        "{jobs:#?}"
    );
    let mut conn = app.conn().await;
    assert_eq!(
        writes::tier_counts(&mut conn, "s1").await.unwrap(),
        (4 + 2 + 3, 4 + 2 + 3, 2)
    );
    drop(conn);
    app.shutdown().await;
}

async fn a_specific_date_is_synced(backend: Backend) {
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .spawn()
        .await;
    let date = (today() - chrono::Days::new(3))
        .format("%Y-%m-%d")
        .to_string();
    let response = app
        .post_sync(
            Some(&app.token("s1")),
            Some(&json!({ "date": date }).to_string()),
        )
        .await;
    assert_eq!(response.status(), 202);
    let ids = job_ids(&response.json().await.unwrap());
    assert_eq!(ids[0], format!("sync__s1__{date}__{date}__CAMPAIGN"));
    app.wait_until_idle(Duration::from_secs(20)).await;
    let mut conn = app.conn().await;
    let rows = writes::raw_rows(&mut conn, "CAMPAIGN", "s1-cmp-1", date.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    drop(conn);
    app.shutdown().await;
}

async fn repeated_request_is_deduplicated_while_active(backend: Backend) {
    // Slow enough that the jobs are still active when the repeat arrives.
    let provider = TestProvider::new(Duration::from_secs(2), 0);
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .with_provider(provider.clone())
        .spawn()
        .await;
    let token = app.token("s1");
    let first = job_ids(
        &app.post_sync(Some(&token), None)
            .await
            .json()
            .await
            .unwrap(),
    );
    let second = app.post_sync(Some(&token), None).await;
    assert_eq!(second.status(), 202);
    assert_eq!(job_ids(&second.json().await.unwrap()), first);
    assert_eq!(app.jobs().await.len(), 3, "the repeat created nothing");
    app.wait_until_idle(Duration::from_secs(20)).await;
    let mut conn = app.conn().await;
    let (raw, _, _) = writes::tier_counts(&mut conn, "s1").await.unwrap();
    assert_eq!(raw, 9, "each entity synced once");
    drop(conn);
    // Once finished, the same ids run again and append new raw rows.
    let third = job_ids(
        &app.post_sync(Some(&token), None)
            .await
            .json()
            .await
            .unwrap(),
    );
    assert_eq!(third, first);
    app.wait_until_idle(Duration::from_secs(20)).await;
    assert_eq!(app.jobs().await.len(), 6);
    app.shutdown().await;
}

fn token_with(secret: &str, claims: Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

async fn unauthorized_without_a_valid_token(backend: Backend) {
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .spawn()
        .await;
    let secret = app.settings.auth.jwt_secret.expose().to_string();
    let now = ads_stats::auth::unix_now();
    let b64 = |s: &str| {
        use std::fmt::Write;
        // base64url without padding, written out to keep the test free of extra crates.
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = s.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | (*b as u32) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                let _ = write!(
                    out,
                    "{}",
                    ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char
                );
            }
        }
        out
    };
    let alg_none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&format!(r#"{{"sellerId":"s1","exp":{}}}"#, now + 600))
    );
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("garbage", Some("not-a-jwt".into())),
        (
            "expired",
            Some(token_with(
                &secret,
                json!({"sellerId": "s1", "exp": now - 30}),
            )),
        ),
        (
            "wrong secret",
            Some(token_with(
                "another-secret",
                json!({"sellerId": "s1", "exp": now + 600}),
            )),
        ),
        (
            "no exp",
            Some(token_with(&secret, json!({"sellerId": "s1"}))),
        ),
        (
            "no sellerId",
            Some(token_with(&secret, json!({"sub": "s1", "exp": now + 600}))),
        ),
        ("alg none", Some(alg_none)),
        (
            "not valid yet",
            Some(token_with(
                &secret,
                json!({"sellerId": "s1", "exp": now + 600, "nbf": now + 300}),
            )),
        ),
    ];
    for (what, token) in cases {
        let response = app.post_sync(token.as_deref(), None).await;
        assert_eq!(response.status(), 401, "{what}");
        assert_eq!(
            response.headers().get("www-authenticate").unwrap(),
            "Bearer"
        );
        // One fixed text whatever the reason: the reason would help a forger.
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"error": "unauthorized", "message": "invalid or expired token"}),
            "{what}"
        );
    }
    let basic = app
        .request(Method::POST, "/api/ads-manager/sync")
        .header("Authorization", format!("Basic {}", app.token("s1")));
    let response = app.send(basic).await;
    assert_eq!(
        error_code(response, 401).await,
        "unauthorized",
        "not a Bearer scheme"
    );
    assert!(app.jobs().await.is_empty());
    app.shutdown().await;
}

async fn bearer_in_any_case_nbf_and_audience_arrays_are_accepted(backend: Backend) {
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .with_settings(|s| s.auth.audience = "ads-stats".into())
        .spawn()
        .await;
    let secret = app.settings.auth.jwt_secret.expose().to_string();
    let now = ads_stats::auth::unix_now();
    let token = token_with(
        &secret,
        json!({"sellerId": "s1", "exp": now + 600, "nbf": now - 1, "aud": ["billing", "ads-stats"]}),
    );
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let request = app
            .request(Method::GET, "/api/ads-manager/sync/sync__s1__none")
            .header("Authorization", format!("{scheme}  {token}"));
        let response = app.send(request).await;
        // Authenticated: the job simply does not exist.
        assert_eq!(error_code(response, 404).await, "not_found", "{scheme}");
    }
    let elsewhere = token_with(
        &secret,
        json!({"sellerId": "s1", "exp": now + 600, "aud": ["billing"]}),
    );
    let response = app.post_sync(Some(&elsewhere), None).await;
    assert_eq!(error_code(response, 401).await, "unauthorized");
    app.shutdown().await;
}

async fn manual_syncs_are_rate_limited_per_seller_and_the_scheduler_is_not(backend: Backend) {
    let app = app(backend)
        .with_catalog(merge(seller_catalog("s1"), seller_catalog("s2")))
        .with_settings(|s| s.rate_limit.manual_syncs_per_minute = 3)
        .spawn()
        .await;
    let token = app.token("s1");
    for _ in 0..3 {
        assert_eq!(app.post_sync(Some(&token), None).await.status(), 202);
    }
    let response = app.post_sync(Some(&token), None).await;
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // 3 a minute: the next one is allowed within 20 s.
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert_eq!(error_code(response, 429).await, "rate_limited");
    assert_eq!(
        app.post_sync(Some(&app.token("s2")), None).await.status(),
        202,
        "another seller has its own budget"
    );
    app.wait_until_idle(Duration::from_secs(20)).await;
    let summary = app
        .app()
        .scheduler()
        .tick(chrono::Utc::now())
        .await
        .expect("tick");
    assert_eq!(
        (summary.sellers, summary.enqueued),
        (2, 6),
        "the scheduler is never limited"
    );
    app.shutdown().await;
}

async fn a_rate_limit_of_zero_is_off(backend: Backend) {
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .with_settings(|s| s.rate_limit.manual_syncs_per_minute = 0)
        .spawn()
        .await;
    let token = app.token("s1");
    for _ in 0..40 {
        assert_eq!(app.post_sync(Some(&token), None).await.status(), 202);
    }
    app.shutdown().await;
}

async fn forbidden_for_unknown_or_suspended_sellers(backend: Backend) {
    let app = app(backend)
        .with_catalog(merge(seller_catalog("s1"), seller_catalog("s2")))
        .spawn()
        .await;
    let mut conn = app.conn().await;
    catalog::set_status(&mut conn, HierarchyTable::Sellers, "s2", "SUSPENDED")
        .await
        .unwrap();
    drop(conn);
    for seller in ["ghost", "s2"] {
        let response = app.post_sync(Some(&app.token(seller)), None).await;
        assert_eq!(error_code(response, 403).await, "forbidden", "{seller}");
    }
    assert!(app.jobs().await.is_empty());
    app.shutdown().await;
}

async fn bad_dates_and_bodies_are_400_or_413(backend: Backend) {
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .spawn()
        .await;
    let token = app.token("s1");
    let too_old = (today() - chrono::Months::new(38))
        .format("%Y-%m-%d")
        .to_string();
    let future = (today() + chrono::Days::new(3))
        .format("%Y-%m-%d")
        .to_string();
    let cases = [
        (json!({"date": "28-11-2026"}).to_string(), "invalid_date"),
        (json!({"date": "2026-02-30"}).to_string(), "invalid_date"),
        (json!({"date": 20261128}).to_string(), "invalid_body"),
        (json!({"date": future}).to_string(), "date_out_of_range"),
        (json!({"date": too_old}).to_string(), "date_out_of_range"),
        ("{\"date\": ".to_string(), "invalid_body"),
        ("[]".to_string(), "invalid_body"),
        // serde would read a struct from an array of its fields: only an object is the body.
        ("[null]".to_string(), "invalid_body"),
        (json!([today().to_string()]).to_string(), "invalid_body"),
        (json!({"day": "2026-11-01"}).to_string(), "invalid_body"),
        // Whitespace alone is not JSON (found by schemathesis); an empty body means today.
        ("\n".to_string(), "invalid_body"),
    ];
    for (body, code) in cases {
        let response = app.post_sync(Some(&token), Some(&body)).await;
        assert_eq!(error_code(response, 400).await, code, "{body}");
    }
    let huge = format!(
        "{{\"date\":\"2026-11-01\",\"pad\":\"{}\"}}",
        "x".repeat(100_000)
    );
    let response = app.post_sync(Some(&token), Some(&huge)).await;
    assert_eq!(error_code(response, 413).await, "payload_too_large");
    let tomorrow = (today() + chrono::Days::new(1))
        .format("%Y-%m-%d")
        .to_string();
    let response = app
        .post_sync(Some(&token), Some(&json!({"date": tomorrow}).to_string()))
        .await;
    assert_eq!(
        response.status(),
        202,
        "tomorrow is allowed for time-zone slack"
    );
    app.shutdown().await;
}

async fn nothing_to_sync_is_422(backend: Backend) {
    let mut c = seller_catalog("revoked");
    add_seller(&mut c, "empty", "ACTIVE", "ACTIVE");
    let app = app(backend).with_catalog(c).spawn().await;
    let mut conn = app.conn().await;
    catalog::set_status(
        &mut conn,
        HierarchyTable::AdConnections,
        "revoked-conn",
        "REVOKED",
    )
    .await
    .unwrap();
    drop(conn);
    for seller in ["empty", "revoked"] {
        let response = app.post_sync(Some(&app.token(seller)), None).await;
        assert_eq!(
            error_code(response, 422).await,
            "nothing_to_sync",
            "{seller}"
        );
    }
    app.shutdown().await;
}

async fn queue_at_capacity_is_503_and_records_nothing(backend: Backend) {
    let provider = TestProvider::new(Duration::from_millis(1500), 0);
    let app = app(backend)
        .with_catalog(merge(seller_catalog("s1"), seller_catalog("s2")))
        .with_provider(provider)
        .with_settings(|s| {
            s.jobs.concurrency = 1;
            s.jobs.queue_capacity = 3;
        })
        .spawn()
        .await;
    assert_eq!(
        app.post_sync(Some(&app.token("s1")), None).await.status(),
        202
    );
    let response = app.post_sync(Some(&app.token("s2")), None).await;
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("5")
    );
    assert_eq!(error_code(response, 503).await, "queue_full");
    // Repeating s1's request still answers with its active jobs: dedup needs no room.
    let repeat = app.post_sync(Some(&app.token("s1")), None).await;
    assert_eq!(repeat.status(), 202);
    assert_eq!(job_ids(&repeat.json().await.unwrap()).len(), 3);
    let jobs = app.jobs().await;
    assert_eq!(jobs.len(), 3);
    assert!(
        jobs.iter().all(|j| j.seller_id == "s1"),
        "nothing recorded for s2: {jobs:#?}"
    );
    app.shutdown().await;
}

async fn job_status_is_visible_only_to_its_seller(backend: Backend) {
    let app = app(backend)
        .with_catalog(merge(seller_catalog("s1"), seller_catalog("s2")))
        .spawn()
        .await;
    let ids = job_ids(
        &app.post_sync(Some(&app.token("s1")), None)
            .await
            .json()
            .await
            .unwrap(),
    );
    app.wait_until_idle(Duration::from_secs(20)).await;
    let response = app.get_job(&app.token("s1"), &ids[0]).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["jobId"], ids[0]);
    assert_eq!(body["status"], "SUCCEEDED");
    assert_eq!(body["attempts"], 1);
    assert_eq!(body["level"], "CAMPAIGN");
    assert_eq!(body["trigger"], "MANUAL");
    assert_eq!(body["rowsWritten"]["raw"], 4);
    assert_eq!(body["rowsWritten"]["sellpage"], 2);
    assert!(body["finishedAt"].is_string());

    let response = app.get_job(&app.token("s2"), &ids[0]).await;
    assert_eq!(error_code(response, 404).await, "not_found");
    let response = app
        .get_job(&app.token("s1"), "sync__s1__2001-01-01__2001-01-01__AD")
        .await;
    assert_eq!(error_code(response, 404).await, "not_found");
    let path = format!("/api/ads-manager/sync/{}", ids[0]);
    let response = app.send(app.request(Method::GET, &path)).await;
    assert_eq!(error_code(response, 401).await, "unauthorized");
    app.shutdown().await;
}

async fn unknown_routes_and_methods_are_json_errors(backend: Backend) {
    let app = app(backend).spawn().await;
    let response = app.send(app.request(Method::GET, "/nope")).await;
    assert_eq!(error_code(response, 404).await, "not_found");
    let response = app
        .send(app.request(Method::GET, "/api/ads-manager/sync"))
        .await;
    assert_eq!(error_code(response, 405).await, "method_not_allowed");
    let response = app.send(app.request(Method::HEAD, "/health")).await;
    assert_eq!(response.status(), 200, "load balancers may probe with HEAD");
    app.shutdown().await;
}
