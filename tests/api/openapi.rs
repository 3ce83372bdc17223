//! The OpenAPI document: OpenAPI 3.1, valid by an independent validator, listing exactly the
//! routes the service answers; and the interactive page served from the binary.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::helpers::{app, Backend};

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
