//! The Connections and Jobs pages in a real browser (Chromium through chromedriver, as
//! `dashboard.rs` drives it): reached from the navigation, the status filter, the command shown
//! for an expired token, the job search form, a job's page, Retry and Cancel clicked, no console
//! errors; screenshots saved under `target/`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use serde_json::json;

use crate::dashboard::{
    console_errors, find_on_path, record, screenshot, tempdir, texts, with_dashboard, ChromeDriver,
    BROWSER_PACKAGES, PASSWORD, USER,
};
use crate::dashboard_ops::insert_jobs;
use crate::helpers::{add_seller, app, seller_catalog, today, Backend, TestProvider};

async fn click(browser: &fantoccini::Client, css: &str) {
    browser
        .wait()
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn assert_no_console_errors(driver: &ChromeDriver, browser: &fantoccini::Client, page: &str) {
    let errors = console_errors(driver, browser).await;
    assert!(errors.is_empty(), "console errors on {page}: {errors:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_filters_connections_searches_jobs_retries_and_cancels() {
    let started = Instant::now();
    let driver = ChromeDriver::start();
    let chromium = find_on_path("chromium")
        .unwrap_or_else(|| panic!("chromium is not installed: {BROWSER_PACKAGES}"));
    let profile = tempdir("ads-stats-chromium");

    // s1 syncs (its first fetch fails, one attempt: a FAILED job); s3's token expired.
    let mut catalog = seller_catalog("s1");
    add_seller(&mut catalog, "s3", "ACTIVE", "EXPIRED");
    let app = app(Backend::Sqlite)
        .with_catalog(catalog)
        .with_provider(TestProvider::new(Duration::ZERO, 1))
        .with_settings(|s| {
            with_dashboard(s);
            s.jobs.max_attempts = 1;
        })
        .spawn()
        .await;
    app.enqueue_campaign_sync("s1").await;
    let jobs = app
        .wait_for_jobs(Duration::from_secs(20), |jobs| {
            jobs.iter().any(|j| j.status == "FAILED")
        })
        .await;
    let failed = jobs[0].clone();
    // A job waiting an hour (a retry's backoff, say): the one to cancel.
    let yesterday = today() - chrono::Duration::days(1);
    let waiting = insert_jobs(&app, &[("s1", "AD", "SCHEDULE", yesterday)])
        .await
        .remove(0);

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

    // Signed out, the new pages send the browser to the form; it comes back to the overview.
    browser
        .goto(&format!("{}/dashboard/jobs", app.address))
        .await
        .unwrap();
    assert!(browser
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/dashboard/login"));
    let field = |css: &'static str| {
        let browser = browser.clone();
        async move { browser.find(Locator::Css(css)).await.unwrap() }
    };
    field("#user").await.send_keys(USER).await.unwrap();
    field("#password").await.send_keys(PASSWORD).await.unwrap();
    click(&browser, "form.login button").await;
    browser
        .wait()
        .for_element(Locator::Css("#failed-jobs"))
        .await
        .unwrap();

    // Connections, from the navigation: both connections, the expired one with its command.
    click(&browser, "header nav a[href='/dashboard/connections']").await;
    browser
        .wait()
        .for_element(Locator::Css("#connections"))
        .await
        .unwrap();
    assert_eq!(
        texts(&browser, "#connections tbody tr[data-connection]")
            .await
            .len(),
        2
    );
    assert_eq!(
        texts(&browser, "tr[data-connection='s3-conn'] code.command").await,
        ["ads-stats connection set-token --connection s3-conn"]
    );
    assert!(
        texts(&browser, "tr[data-connection='s1-conn'] code.command")
            .await
            .is_empty()
    );
    assert!(!texts(&browser, "tr[data-connection='s1-conn'] td.error").await[0].is_empty());
    screenshot(&browser, "dashboard-connections.png").await;
    assert_no_console_errors(&driver, &browser, "the connections page").await;

    // The status filter.
    field("#status")
        .await
        .select_by_value("EXPIRED")
        .await
        .unwrap();
    click(&browser, "form.filters button").await;
    // The server marks the filter's option selected once the filtered page has loaded.
    browser
        .wait()
        .for_element(Locator::Css("#status option[value='EXPIRED'][selected]"))
        .await
        .unwrap();
    let rows = browser
        .find_all(Locator::Css("#connections tbody tr[data-connection]"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].attr("data-connection").await.unwrap().as_deref(),
        Some("s3-conn")
    );

    // Jobs, from the navigation: every record, then the FAILED one through the search form.
    click(&browser, "header nav a[href='/dashboard/jobs']").await;
    browser
        .wait()
        .for_element(Locator::Css("#job-results"))
        .await
        .unwrap();
    assert_eq!(
        texts(&browser, "#job-results tbody tr[data-record]")
            .await
            .len(),
        2
    );
    screenshot(&browser, "dashboard-jobs.png").await;
    assert_no_console_errors(&driver, &browser, "the jobs page").await;
    field("#status")
        .await
        .select_by_value("FAILED")
        .await
        .unwrap();
    field("#seller").await.send_keys("s1").await.unwrap();
    click(&browser, "#job-search button").await;
    browser
        .wait()
        .for_element(Locator::Css("#job-results tbody tr[data-status=FAILED]"))
        .await
        .unwrap();
    assert_eq!(
        texts(&browser, "#job-results tbody tr[data-record]")
            .await
            .len(),
        1
    );
    let query = browser
        .current_url()
        .await
        .unwrap()
        .query()
        .unwrap_or("")
        .to_string();
    assert!(
        query.contains("status=FAILED") && query.contains("seller=s1"),
        "{query}"
    );

    // The job's page, then Retry: back on the page, queued again, and it succeeds.
    click(
        &browser,
        &format!("a.record[href='/dashboard/jobs/{}']", failed.id),
    )
    .await;
    browser
        .wait()
        .for_element(Locator::Css("#job-actions form.retry button"))
        .await
        .unwrap();
    assert_eq!(
        texts(&browser, "#attempts dd.error").await,
        [failed.last_error.clone().expect("an error")]
    );
    assert_eq!(texts(&browser, "#attempts dd.attempts").await, ["1 of 1"]);
    screenshot(&browser, "dashboard-job-failed.png").await;
    assert_no_console_errors(&driver, &browser, "a failed job's page").await;
    click(&browser, "#job-actions form.retry button").await;
    let notice = browser
        .wait()
        .for_element(Locator::Css(".notice"))
        .await
        .unwrap();
    assert_eq!(notice.text().await.unwrap(), "Queued again.");
    // Not `wait_until_idle`: the waiting job stays QUEUED for an hour.
    app.wait_for_jobs(Duration::from_secs(20), |jobs| {
        jobs.iter()
            .any(|j| j.id == failed.id && j.status == "SUCCEEDED")
    })
    .await;

    // The waiting job's page, then Cancel: CANCELLED, and no button left.
    browser
        .goto(&format!("{}/dashboard/jobs/{}", app.address, waiting.id))
        .await
        .unwrap();
    click(&browser, "#job-actions form.cancel button").await;
    let notice = browser
        .wait()
        .for_element(Locator::Css(".notice"))
        .await
        .unwrap();
    assert!(notice.text().await.unwrap().starts_with("Cancelled"));
    assert_eq!(texts(&browser, "h1 .status").await, ["CANCELLED"]);
    assert!(browser
        .find_all(Locator::Css("#job-actions form"))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(record(&app, waiting.id).await.status, "CANCELLED");
    screenshot(&browser, "dashboard-job-cancelled.png").await;
    assert_no_console_errors(&driver, &browser, "the cancelled job's page").await;

    if let Ok(browser) = Arc::try_unwrap(browser) {
        let _ = browser.close().await;
    }
    app.shutdown().await;
    drop(driver);
    let _ = std::fs::remove_dir_all(&profile);
    eprintln!("browser test took {:?}", started.elapsed());
}
