//! The OpenAPI document: OpenAPI 3.1, valid by an independent validator, listing exactly the
//! routes the service answers; and the interactive page served from the binary.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::helpers::{app, seller_catalog, Backend};
use crate::on_both_backends;

/// (path, method) pairs in the document.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .filter(|k| {
                    ["get", "head", "post", "put", "patch", "delete", "options"]
                        .contains(&k.as_str())
                })
                .map(move |method| (path.clone(), method.clone()))
        })
        .collect()
}

fn registered(metrics_enabled: bool) -> BTreeSet<(String, String)> {
    ads_stats::http::api_routes(metrics_enabled)
        .into_iter()
        .flat_map(|(path, methods)| {
            methods
                .into_iter()
                .map(move |m| (path.to_string(), m.to_string()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_lists_every_route_and_validates_as_openapi_3_1() {
    let app = app(Backend::Sqlite).spawn().await;
    let response = app
        .send(app.request(reqwest::Method::GET, "/api/openapi.json"))
        .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    // Both ways: no route the service answers is missing, and nothing documented is invented.
    let documented = documented(&doc);
    let registered = registered(true);
    let missing: Vec<_> = registered.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the document: {missing:?}"
    );
    let invented: Vec<_> = documented.difference(&registered).collect();
    assert!(
        invented.is_empty(),
        "documented but not served: {invented:?}"
    );
    // Every operation names its error body and what it answers when it fails.
    for (path, method) in &documented {
        let responses = doc["paths"][path][method]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} has no responses"));
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{method} {path}"
        );
    }
    let statuses: BTreeMap<&str, Vec<&str>> = [
        ("/api/ads-manager/sync", "post"),
        ("/api/ads-manager/stats", "get"),
        ("/api/ads-manager/sync/{job_id}", "get"),
    ]
    .into_iter()
    .map(|(p, m)| {
        let codes = doc["paths"][p][m]["responses"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        (p, codes)
    })
    .collect();
    assert!(statuses["/api/ads-manager/sync"]
        .iter()
        .all(|c| ["202", "400", "401", "403", "408", "413", "422", "429", "503"].contains(c)));
    assert!(statuses["/api/ads-manager/stats"].contains(&"400"));
    assert!(statuses["/api/ads-manager/sync/{job_id}"].contains(&"404"));
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    // An independent validator (PyPI openapi-spec-validator) agrees it is OpenAPI 3.1.
    let dir = std::env::temp_dir().join(format!("ads-stats-openapi-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("openapi.json");
    std::fs::write(&file, &text).unwrap();
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys\n\
             try:\n    from openapi_spec_validator import validate\n    from openapi_spec_validator.readers import read_from_filename\n\
             except ImportError:\n    sys.exit('the openapi-spec-validator Python package is missing: pip install openapi-spec-validator (.ci/run installs it)')\n\
             spec, _ = read_from_filename(sys.argv[1])\n\
             validate(spec)\n\
             print('valid')",
            file.to_str().unwrap(),
        ])
        .output()
        .expect("python3 runs");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "the document does not validate: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_metrics_the_route_and_its_entry_are_both_gone() {
    assert!(registered(true).iter().any(|(p, _)| p == "/metrics"));
    let app = app(Backend::Sqlite)
        .with_settings(|s| s.metrics.enabled = false)
        .spawn()
        .await;
    let doc: Value = app
        .send(app.request(reqwest::Method::GET, "/api/openapi.json"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(documented(&doc), registered(false));
    assert!(doc["paths"].get("/metrics").is_none());
    assert_eq!(
        app.send(app.request(reqwest::Method::GET, "/metrics"))
            .await
            .status(),
        404
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_answers_are_in_the_document() {
    let doc = ads_stats::http::openapi_document(true).to_json().unwrap();
    let doc: Value = serde_json::from_str(&doc).unwrap();
    for path in [
        "/api/ads-manager/stats",
        "/api/ads-manager/stats/summary",
        "/api/ads-manager/sellpages/stats",
    ] {
        let ok = &doc["paths"][path]["get"]["responses"]["200"];
        assert!(ok["content"]["application/json"].is_object(), "{path}");
        assert!(ok["content"]["text/csv"].is_object(), "{path}");
    }
    let level = doc["paths"]["/api/ads-manager/stats"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "level")
        .unwrap()
        .clone();
    assert_eq!(level["required"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interactive_page_is_served_from_the_binary() {
    let app = app(Backend::Sqlite).spawn().await;
    let bare = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = bare
        .get(format!("{}/api/docs", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 308);
    assert_eq!(redirect.headers()["location"], "/api/docs/");
    let page = app
        .send(app.request(reqwest::Method::GET, "/api/docs/"))
        .await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let init = app
        .send(app.request(reqwest::Method::GET, "/api/docs/swagger-initializer.js"))
        .await;
    assert_eq!(init.status(), 200);
    assert!(init.text().await.unwrap().contains("/api/openapi.json"));
    // The page's script and styles come from the binary, not a CDN.
    assert!(!html.contains("https://"), "{html}");
    app.shutdown().await;
}

/// Which of `samples` the ECMA-style `pattern` matches, by Python's `re` (the patterns here use
/// only syntax both share), as an independent reader of the document would.
fn pattern_matches(pattern: &str, samples: &[&str]) -> Vec<bool> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, re, sys\n\
             p = re.compile(sys.argv[1])\n\
             print(json.dumps([p.search(s) is not None for s in json.loads(sys.argv[2])]))",
            pattern,
            &serde_json::to_string(samples).unwrap(),
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn parameter<'a>(doc: &'a Value, path: &str, name: &str) -> &'a Value {
    doc["paths"][path]["get"]["parameters"]
        .as_array()
        .unwrap_or_else(|| panic!("{path} has no parameters"))
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{path} has no parameter {name}"))
}

on_both_backends!(the_document_states_the_constraints_the_server_enforces);

/// The document is as strict as the server, checked against the running server rather than
/// restated: dates (format and pattern), the level enum, `limit` bounds, the cursor's shape, id
/// shapes, the range rule, and the 403 of every seller route. What the document allows, the
/// server accepts; what it rules out, the server refuses with 400.
async fn the_document_states_the_constraints_the_server_enforces(backend: Backend) {
    let owned = app(backend)
        .with_catalog(seller_catalog("s1"))
        .spawn()
        .await;
    let app = &owned;
    let doc: Value = app
        .send(app.request(reqwest::Method::GET, "/api/openapi.json"))
        .await
        .json()
        .await
        .unwrap();
    let token = app.token("s1");
    // Rows today, so the paged reads give a cursor.
    app.enqueue_campaign_sync("s1").await;
    app.wait_for_jobs(std::time::Duration::from_secs(20), |jobs| {
        !jobs.is_empty() && jobs.iter().all(|j| j.status == "SUCCEEDED")
    })
    .await;
    let status = |path: String| {
        let request = app.request(reqwest::Method::GET, &path).bearer_auth(&token);
        async move { app.send(request).await.status().as_u16() }
    };
    let reads = [
        ("/api/ads-manager/stats", "level=AD&"),
        ("/api/ads-manager/stats/summary", "level=AD&"),
        ("/api/ads-manager/sellpages/stats", ""),
    ];
    for (path, level) in reads {
        // Dates: format date and a pattern; the server takes what it matches and refuses the rest.
        for name in ["from", "to"] {
            let schema = &parameter(&doc, path, name)["schema"];
            assert_eq!(schema["format"], "date", "{path} {name}");
            let pattern = schema["pattern"].as_str().expect("a date pattern");
            let samples = [
                "2026-11-02",
                "2026-1-02",
                "26-11-02",
                "2026/11/02",
                "2026-11-02x",
                "x2026-11-02",
                "",
            ];
            for (sample, allowed) in samples.iter().zip(pattern_matches(pattern, &samples)) {
                let got = status(format!("{path}?{level}from={sample}&to=2026-11-03")).await;
                assert_eq!(
                    got,
                    if allowed { 200 } else { 400 },
                    "{path} from={sample:?}"
                );
            }
        }
        // The range rule is stated with the server's number of days, and holds.
        let description = doc["paths"][path]["get"]["description"]
            .as_str()
            .unwrap_or_default();
        let days: i64 = description
            .split("at most ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{path}: no range rule in {description:?}"));
        let from = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        let to = |n: i64| from + chrono::Duration::days(n - 1);
        assert_eq!(
            status(format!("{path}?{level}from={from}&to={}", to(days))).await,
            200,
            "{path}"
        );
        assert_eq!(
            status(format!("{path}?{level}from={from}&to={}", to(days + 1))).await,
            400,
            "{path}"
        );
        assert_eq!(
            status(format!("{path}?{level}from=2026-11-03&to=2026-11-02")).await,
            400,
            "{path}"
        );
        let responses = doc["paths"][path]["get"]["responses"].as_object().unwrap();
        assert!(
            responses.contains_key("403"),
            "{path} documents the seller gate"
        );
    }
    // The level enum: every value works, and nothing else is documented.
    for path in ["/api/ads-manager/stats", "/api/ads-manager/stats/summary"] {
        let schema = &parameter(&doc, path, "level")["schema"];
        let schema = match schema["$ref"].as_str() {
            Some(r) => &doc["components"]["schemas"][r.rsplit('/').next().unwrap()],
            None => schema,
        };
        let levels: Vec<&str> = schema["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(levels, ["CAMPAIGN", "ADSET", "AD"]);
        for level in levels {
            assert_eq!(
                status(format!(
                    "{path}?level={level}&from=2026-11-01&to=2026-11-02"
                ))
                .await,
                200
            );
        }
        assert_eq!(
            status(format!(
                "{path}?level=CAMPAIGNS&from=2026-11-01&to=2026-11-02"
            ))
            .await,
            400
        );
    }
    for path in ["/api/ads-manager/stats", "/api/ads-manager/sellpages/stats"] {
        // CAMPAIGN: the level synced today, so the first page has a next one.
        let level = if path.contains("sellpages") {
            ""
        } else {
            "level=CAMPAIGN&"
        };
        let base = format!("{path}?{level}from=2026-11-01&to=2026-11-02");
        // limit: the documented bounds are the server's.
        let limit = &parameter(&doc, path, "limit")["schema"];
        let (min, max) = (
            limit["minimum"].as_i64().unwrap(),
            limit["maximum"].as_i64().unwrap(),
        );
        assert_eq!((min, max), (1, 1000), "{path}");
        for (n, expected) in [(min, 200), (max, 200), (min - 1, 400), (max + 1, 400)] {
            assert_eq!(
                status(format!("{base}&limit={n}")).await,
                expected,
                "{path} limit={n}"
            );
        }
        // cursor: a cursor the server gave matches the pattern; what the pattern refuses, the
        // server refuses too.
        let pattern = parameter(&doc, path, "cursor")["schema"]["pattern"]
            .as_str()
            .expect("a cursor pattern");
        let day = crate::helpers::today();
        let first: Value = app
            .send(
                app.request(
                    reqwest::Method::GET,
                    &format!("{path}?{level}from={day}&to={day}&limit=1"),
                )
                .bearer_auth(&token),
            )
            .await
            .json()
            .await
            .unwrap();
        let given = first["nextCursor"]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: a second page: {first}"))
            .to_string();
        let samples = [given.as_str(), "zz", "00", "32303236", "", "2026-11-01|x"];
        let verdicts = pattern_matches(pattern, &samples);
        assert!(verdicts[0], "the server's own cursor matches {pattern}");
        for (sample, allowed) in samples.iter().zip(verdicts).skip(1) {
            assert!(!allowed, "{sample:?} matches {pattern}");
            assert_eq!(
                status(format!("{base}&cursor={sample}")).await,
                400,
                "{path} cursor={sample:?}"
            );
        }
    }
    // Ids: no control characters, in the document as on the server.
    let id_pattern = parameter(&doc, "/api/ads-manager/stats", "entityId")["schema"]["pattern"]
        .as_str()
        .expect("an id pattern")
        .to_string();
    assert_eq!(
        pattern_matches(
            &id_pattern,
            &["cmp-1", "a,b \"c\"", "a\u{0}b", "a\nb", "\u{85}"]
        ),
        [true, true, false, false, false]
    );
    assert_eq!(
        status(
            "/api/ads-manager/stats?level=AD&from=2026-11-01&to=2026-11-02&entityId=a%00b".into()
        )
        .await,
        400
    );
    let job = &doc["paths"]["/api/ads-manager/sync/{job_id}"]["get"];
    assert!(job["responses"].as_object().unwrap().contains_key("403"));
    // The sync body's date: the same shape.
    let date = &doc["components"]["schemas"]["TriggerBody"]["properties"]["date"];
    assert_eq!(date["format"], "date");
    assert!(date["pattern"].is_string());
    owned.shutdown().await;
}
