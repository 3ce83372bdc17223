//! The dashboard's Connections and Jobs pages over HTTP, on both backends: sign-in and CSRF on the
//! new paths, the connection list and its status filter (with the command that sets a token, and
//! never a token), the job search's filters and keyset pages (stable while records are added),
//! Retry of a FAILED job and Cancel of a QUEUED one from the job page, Cancel refused for RUNNING
//! and SUCCEEDED records. (A cancelled job never running, its job id queued again and cancels
//! racing the workers: `job_cancel.rs`.)

use std::time::Duration;

use ads_stats::db::models::{JobRecord, NewJobRecord};
use ads_stats::db_run;
use chrono::NaiveDate;
use diesel::sql_types::{BigInt, Text, Timestamp};
use diesel_async::RunQueryDsl;
use reqwest::header::LOCATION;
use reqwest::StatusCode;

use crate::dashboard::{
    error_code, form, get, log_in, post_form, record, with_dashboard, Login, USER,
};
use crate::helpers::{
    add_seller, app, merge, seller_catalog, today, Backend, TestApp, TestProvider,
};
use crate::on_both_backends;

on_both_backends!(
    new_pages_need_a_session_and_posts_a_csrf_token,
    connections_page_lists_filters_and_never_shows_a_token,
    job_search_filters_by_every_field,
    job_pages_are_keyset_pages_stable_under_inserts,
    job_page_retries_a_failed_job_and_cancels_a_queued_one,
    cancel_is_refused_for_running_and_succeeded_jobs,
);

async fn dashboard_app(backend: Backend) -> TestApp {
    app(backend)
        .with_catalog(merge(seller_catalog("s1"), seller_catalog("s2")))
        .with_settings(with_dashboard)
        .spawn()
        .await
}

/// Records jobs straight into `sync_jobs`, queued now and due an hour from now so no worker takes
/// them: the search sees them as an operator would, QUEUED, whatever the test then makes of them.
pub(crate) async fn insert_jobs(
    app: &TestApp,
    jobs: &[(&str, &str, &str, NaiveDate)],
) -> Vec<JobRecord> {
    let now = ads_stats::db::now_utc();
    let records: Vec<NewJobRecord> = jobs
        .iter()
        .map(|(seller, level, trigger, date)| NewJobRecord {
            job_id: format!("sync__{seller}__{date}__{date}__{level}"),
            seller_id: seller.to_string(),
            level: level.to_string(),
            date_from: *date,
            date_to: *date,
            triggered_by: trigger.to_string(),
            status: "QUEUED".into(),
            attempts: 0,
            max_attempts: 3,
            run_at: now + chrono::Duration::hours(1),
            created_at: now,
            updated_at: now,
            priority: 2,
        })
        .collect();
    let mut conn = app.conn().await;
    let recorded = ads_stats::db::jobs::enqueue_many(&mut conn, &records)
        .await
        .expect("jobs recorded");
    drop(conn);
    let mut out = Vec::new();
    for (r, created) in recorded {
        assert!(created, "{} is new", r.job_id);
        // An enqueue stamps `created_at` with the time the job is due; these were queued now.
        set_created_at(app, r.id, now).await;
        out.push(record(app, r.id).await);
    }
    out
}

/// Sets a record's status (and, when finished, `finished_at`) as the runtime would have.
async fn set_status(app: &TestApp, id: i64, status: &str) {
    let mut conn = app.conn().await;
    let conn = &mut conn;
    let sql = "UPDATE sync_jobs SET status = $1, \
               finished_at = CASE WHEN $2 IN ('SUCCEEDED', 'FAILED') THEN updated_at ELSE NULL END \
               WHERE id = $3";
    let changed = db_run!(conn, {
        diesel::sql_query(sql)
            .bind::<Text, _>(status)
            .bind::<Text, _>(status)
            .bind::<BigInt, _>(id)
            .execute(conn)
            .await
    })
    .expect("status set");
    assert_eq!(changed, 1);
}

pub(crate) async fn set_created_at(app: &TestApp, id: i64, at: chrono::NaiveDateTime) {
    let mut conn = app.conn().await;
    let conn = &mut conn;
    db_run!(conn, {
        diesel::sql_query("UPDATE sync_jobs SET created_at = $1 WHERE id = $2")
            .bind::<Timestamp, _>(at)
            .bind::<BigInt, _>(id)
            .execute(conn)
            .await
    })
    .expect("created_at set");
}

async fn page_text(app: &TestApp, path: &str, login: &Login) -> (StatusCode, String) {
    let response = get(app, path, Some(&login.cookie)).await;
    (response.status(), response.text().await.unwrap())
}

/// The record ids of a job table, in page order.
fn record_ids(html: &str, table: &str) -> Vec<i64> {
    let start = html
        .find(&format!(r#"id="{table}""#))
        .unwrap_or_else(|| panic!("table {table} in {html}"));
    let end = start + html[start..].find("</table>").expect("table end");
    html[start..end]
        .split(r#"data-record=""#)
        .skip(1)
        .map(|s| s.split('"').next().unwrap().parse().expect("an id"))
        .collect()
}

/// The "Older" link of a job page, unescaped, if there is one.
fn next_link(html: &str) -> Option<String> {
    let at = html.find(r#"rel="next" href=""#)? + r#"rel="next" href=""#.len();
    Some(html[at..].split('"').next()?.replace("&amp;", "&"))
}

/// Follows a search from its first page to its last; returns the ids page by page.
async fn all_pages(app: &TestApp, first: &str, login: &Login) -> Vec<Vec<i64>> {
    let mut pages = Vec::new();
    let mut path = Some(first.to_string());
    while let Some(p) = path {
        let (status, html) = page_text(app, &p, login).await;
        assert_eq!(status, 200, "{p}: {html}");
        pages.push(record_ids(&html, "job-results"));
        path = next_link(&html);
        assert!(pages.len() < 100, "paging does not end");
    }
    pages
}

async fn new_pages_need_a_session_and_posts_a_csrf_token(backend: Backend) {
    // Off: the new paths do not exist either.
    let off = app(backend)
        .with_settings(|s| s.dashboard.admin_user = USER.into())
        .spawn()
        .await;
    for path in [
        "/dashboard/connections",
        "/dashboard/jobs",
        "/dashboard/jobs/1",
    ] {
        assert_eq!(
            error_code(get(&off, path, None).await, 404).await,
            "not_found",
            "{path}"
        );
    }
    let body = form(&[("csrf", "x")]);
    let response = post_form(&off, "/dashboard/jobs/1/cancel", None, body).await;
    assert_eq!(error_code(response, 404).await, "not_found");
    off.shutdown().await;

    let app = dashboard_app(backend).await;
    let queued = insert_jobs(&app, &[("s1", "CAMPAIGN", "MANUAL", today())]).await;
    let id = queued[0].id;
    for path in [
        "/dashboard/connections".to_string(),
        "/dashboard/connections?status=EXPIRED".to_string(),
        "/dashboard/jobs".to_string(),
        format!("/dashboard/jobs/{id}"),
    ] {
        let response = get(&app, &path, None).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(response.headers()[LOCATION], "/dashboard/login", "{path}");
    }
    let login = log_in(&app).await;
    let cancel = format!("/dashboard/jobs/{id}/cancel");
    // No session; a session without the token; a wrong token; another session's token.
    let other = log_in(&app).await;
    let refused = [
        (None, form(&[("csrf", &login.csrf)])),
        (Some(login.cookie.as_str()), String::new()),
        (Some(login.cookie.as_str()), form(&[("csrf", "wrong")])),
        (Some(login.cookie.as_str()), form(&[("csrf", &other.csrf)])),
    ];
    for (cookie, body) in refused {
        let response = post_form(&app, &cancel, cookie, body.clone()).await;
        assert_eq!(error_code(response, 403).await, "forbidden", "{body}");
    }
    assert_eq!(
        record(&app, id).await.status,
        "QUEUED",
        "nothing was cancelled"
    );
    // With the session's token it goes through.
    let response = post_form(
        &app,
        &cancel,
        Some(&login.cookie),
        form(&[("csrf", &login.csrf)]),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(record(&app, id).await.status, "CANCELLED");
    // Only POST cancels.
    let response = get(&app, &cancel, Some(&login.cookie)).await;
    assert_eq!(error_code(response, 405).await, "method_not_allowed");
    app.shutdown().await;
}

async fn connections_page_lists_filters_and_never_shows_a_token(backend: Backend) {
    let mut catalog = merge(seller_catalog("s1"), seller_catalog("s2"));
    add_seller(&mut catalog, "s3", "ACTIVE", "EXPIRED");
    add_seller(&mut catalog, "s4", "ACTIVE", "REVOKED");
    add_seller(&mut catalog, "s5", "ACTIVE", "REVOKED");
    let app = app(backend)
        .with_catalog(catalog)
        .with_settings(with_dashboard)
        .spawn()
        .await;
    // s4 revoked by Meta's verdict (a reason), s5 by an operator (none); s1 holds a token.
    const SEALED: &str = "sealed-token-bytes-that-must-never-be-shown";
    {
        let mut conn = app.conn().await;
        let conn = &mut conn;
        let sql = "UPDATE ad_connections SET status_reason = 'account_status DISABLED' WHERE id = 's4-conn'";
        db_run!(conn, { diesel::sql_query(sql).execute(conn).await }).unwrap();
        let sql = "UPDATE ad_connections SET access_token_enc = $1, currency = 'JPY', \
                   timezone = 'Asia/Tokyo' WHERE id = 's1-conn'";
        db_run!(conn, {
            diesel::sql_query(sql)
                .bind::<Text, _>(SEALED)
                .execute(conn)
                .await
        })
        .unwrap();
    }
    // s1 syncs once: its last successful sync shows.
    app.enqueue_campaign_sync("s1").await;
    let jobs = app
        .wait_for_jobs(Duration::from_secs(20), |jobs| {
            jobs.iter().any(|j| j.status == "SUCCEEDED")
        })
        .await;
    let finished = jobs[0].finished_at.expect("finished");
    let login = log_in(&app).await;

    let (status, html) = page_text(&app, "/dashboard/connections", &login).await;
    assert_eq!(status, 200);
    assert!(!html.contains(SEALED), "a token on the page");
    for c in ["s1-conn", "s2-conn", "s3-conn", "s4-conn", "s5-conn"] {
        assert!(html.contains(&format!(r#"data-connection="{c}""#)), "{c}");
    }
    assert!(html.contains("Connections (5)"));
    assert!(html.contains("JPY") && html.contains("Asia/Tokyo"));
    assert!(html.contains(&finished.format("%Y-%m-%d %H:%M:%S").to_string()));
    let row = |html: &str, id: &str| -> String {
        let start = html.find(&format!(r#"data-connection="{id}""#)).unwrap();
        let end = start + html[start..].find("</tr>").unwrap();
        html[start..end].to_string()
    };
    // s1 stores a token, s2 does not.
    assert!(!row(&html, "s1-conn").contains("no token stored"));
    assert!(row(&html, "s2-conn").contains("no token stored"));
    // The command only where a new token is what it takes.
    let command = |id: &str| format!("ads-stats connection set-token --connection {id}");
    assert!(row(&html, "s3-conn").contains(&command("s3-conn")));
    assert!(row(&html, "s4-conn").contains(&command("s4-conn")));
    assert!(row(&html, "s4-conn").contains("account_status DISABLED"));
    assert!(!row(&html, "s5-conn").contains("set-token --connection"));
    assert!(!row(&html, "s1-conn").contains("set-token --connection"));

    // The filter.
    let (status, html) = page_text(&app, "/dashboard/connections?status=EXPIRED", &login).await;
    assert_eq!(status, 200);
    assert!(html.contains("Connections (1)"));
    assert!(html.contains(r#"data-connection="s3-conn""#));
    let (_, html) = page_text(&app, "/dashboard/connections?status=REVOKED", &login).await;
    assert!(html.contains("Connections (2)"), "{html}");
    let (_, html) = page_text(&app, "/dashboard/connections?status=", &login).await;
    assert!(html.contains("Connections (5)"), "empty is any");
    let (status, html) = page_text(&app, "/dashboard/connections?status=BOGUS", &login).await;
    assert_eq!(status, 400);
    assert!(html.contains("Unknown status"));
    app.shutdown().await;
}

async fn job_search_filters_by_every_field(backend: Backend) {
    let app = dashboard_app(backend).await;
    let d = |k: i64| today() - chrono::Duration::days(k);
    let jobs = insert_jobs(
        &app,
        &[
            ("s1", "CAMPAIGN", "SCHEDULE", d(1)),
            ("s1", "ADSET", "MANUAL", d(1)),
            ("s1", "AD", "SCHEDULE", d(2)),
            ("s2", "CAMPAIGN", "MANUAL", d(1)),
            ("s2", "AD", "SCHEDULE", d(3)),
        ],
    )
    .await;
    let id = |i: usize| jobs[i].id;
    set_status(&app, id(0), "FAILED").await;
    set_status(&app, id(3), "SUCCEEDED").await;
    set_status(&app, id(4), "CANCELLED").await;
    // Two records queued on earlier days.
    let midnight = |day: NaiveDate| day.and_hms_opt(0, 0, 0).unwrap();
    set_created_at(&app, id(2), midnight(d(5)) + chrono::Duration::hours(23)).await;
    set_created_at(&app, id(4), midnight(d(9))).await;
    let login = log_in(&app).await;
    let search = |q: String| {
        let (app, login) = (&app, &login);
        async move {
            let (status, html) = page_text(app, &format!("/dashboard/jobs?{q}"), login).await;
            assert_eq!(status, 200, "{q}: {html}");
            record_ids(&html, "job-results")
        }
    };
    assert_eq!(
        search(String::new()).await,
        [id(4), id(3), id(2), id(1), id(0)]
    );
    assert_eq!(search("seller=s1".into()).await, [id(2), id(1), id(0)]);
    assert_eq!(search("seller=s2&status=CANCELLED".into()).await, [id(4)]);
    assert_eq!(search("status=FAILED".into()).await, [id(0)]);
    assert_eq!(search("status=QUEUED".into()).await, [id(2), id(1)]);
    assert_eq!(search("level=AD".into()).await, [id(4), id(2)]);
    assert_eq!(search("trigger=MANUAL".into()).await, [id(3), id(1)]);
    assert_eq!(
        search("seller=s1&trigger=SCHEDULE&level=CAMPAIGN".into()).await,
        [id(0)]
    );
    // Dates are the UTC days records were queued on, both ends included.
    assert_eq!(search(format!("from={}&to={}", d(5), d(5))).await, [id(2)]);
    assert_eq!(search(format!("to={}", d(5))).await, [id(4), id(2)]);
    assert_eq!(
        search(format!("from={}", d(4))).await,
        [id(3), id(1), id(0)]
    );
    assert_eq!(
        search(format!(
            "seller=&status=&level=&trigger=&from=&to={}",
            today()
        ))
        .await
        .len(),
        5,
        "empty fields are any"
    );
    assert!(search("seller=nobody".into()).await.is_empty());
    // A cancelled record shows as such, with no action.
    let (_, html) = page_text(&app, "/dashboard/jobs?status=CANCELLED", &login).await;
    assert!(html.contains(r#"data-status="CANCELLED""#));
    assert!(!html.contains("form class=\"cancel\""));
    // Bad fields: 400 with a message, no results.
    for q in [
        "status=DONE",
        "level=ACCOUNT",
        "trigger=CRON",
        "from=yesterday",
        "from=2026-02-30",
        "limit=0",
        "limit=501",
        "before=abc",
    ] {
        let (status, html) = page_text(&app, &format!("/dashboard/jobs?{q}"), &login).await;
        assert_eq!(status, 400, "{q}");
        assert!(html.contains(r#"role="alert""#), "{q}");
        assert!(!html.contains("job-results"), "{q}");
    }
    let (status, _) = page_text(
        &app,
        &format!("/dashboard/jobs?from={}&to={}", d(1), d(3)),
        &login,
    )
    .await;
    assert_eq!(status, 400, "from after to");
    app.shutdown().await;
}

async fn job_pages_are_keyset_pages_stable_under_inserts(backend: Backend) {
    let app = dashboard_app(backend).await;
    let d = |k: i64| today() - chrono::Duration::days(k);
    let specs: Vec<(&str, &str, &str, NaiveDate)> = (0..23)
        .map(|k| {
            (
                if k % 2 == 0 { "s1" } else { "s2" },
                "CAMPAIGN",
                "SCHEDULE",
                d(k),
            )
        })
        .collect();
    let jobs = insert_jobs(&app, &specs).await;
    let login = log_in(&app).await;
    let mut expected: Vec<i64> = jobs.iter().map(|j| j.id).collect();
    expected.reverse();

    // Pages of 5 over everything: newest first, each record once, 5 pages.
    let pages = all_pages(&app, "/dashboard/jobs?limit=5", &login).await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [5, 5, 5, 5, 3]
    );
    assert_eq!(pages.concat(), expected);

    // Records queued while an operator pages do not shift the pages: page 2 still follows page
    // 1, with nothing repeated or skipped; the newcomers appear on a fresh first page.
    let (_, first) = page_text(&app, "/dashboard/jobs?limit=5", &login).await;
    assert_eq!(record_ids(&first, "job-results"), expected[..5]);
    let newer = insert_jobs(
        &app,
        &[("s1", "AD", "MANUAL", d(0)), ("s2", "AD", "MANUAL", d(0))],
    )
    .await;
    let rest = all_pages(&app, &next_link(&first).expect("a next page"), &login).await;
    assert_eq!(rest.concat(), expected[5..]);
    let pages = all_pages(&app, "/dashboard/jobs?limit=5", &login).await;
    assert_eq!(pages[0][..2], [newer[1].id, newer[0].id]);
    assert_eq!(pages.concat().len(), 25);

    // The filters travel with the cursor.
    let s1: Vec<i64> = expected
        .iter()
        .copied()
        .filter(|id| jobs.iter().any(|j| j.id == *id && j.seller_id == "s1"))
        .collect();
    let pages = all_pages(
        &app,
        "/dashboard/jobs?seller=s1&level=CAMPAIGN&limit=4",
        &login,
    )
    .await;
    assert_eq!(pages.concat(), s1);
    assert_eq!(pages.len(), 3);
    app.shutdown().await;
}

async fn job_page_retries_a_failed_job_and_cancels_a_queued_one(backend: Backend) {
    // s1's first fetch fails and jobs get one attempt: its first run ends FAILED.
    let app = app(backend)
        .with_catalog(merge(seller_catalog("s1"), seller_catalog("s2")))
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
    let login = log_in(&app).await;
    let csrf_back = form(&[("csrf", &login.csrf), ("back", "job")]);

    // The job page: what, attempts, timings, instance, error, and a Retry button (no Cancel).
    let page = format!("/dashboard/jobs/{}", failed.id);
    let (status, html) = page_text(&app, &page, &login).await;
    assert_eq!(status, 200);
    assert!(html.contains(&failed.job_id));
    assert!(html.contains("1 of 1"), "attempts");
    assert!(html.contains(failed.locked_by.as_deref().expect("an instance")));
    assert!(html.contains(failed.last_error.as_deref().expect("an error")));
    assert!(html.contains(&format!(r#"action="/dashboard/jobs/{}/retry""#, failed.id)));
    assert!(!html.contains("/cancel\""));
    assert_eq!(record_ids(&html, "job-runs"), [failed.id]);

    // Retry from the job page comes back to it.
    let response = post_form(
        &app,
        &format!("{page}/retry"),
        Some(&login.cookie),
        csrf_back.clone(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()[LOCATION].to_str().unwrap().to_string();
    assert_eq!(location, format!("{page}?action=retry&outcome=requeued"));
    let (_, html) = page_text(&app, &location, &login).await;
    assert!(html.contains("Queued again."));
    app.wait_until_idle(Duration::from_secs(20)).await;
    let rerun = record(&app, failed.id).await;
    assert_eq!((rerun.status.as_str(), rerun.attempts), ("SUCCEEDED", 1));
    let (_, html) = page_text(&app, &page, &login).await;
    assert!(html.contains(&format!(
        "{} ms",
        (rerun.finished_at.unwrap() - rerun.started_at.unwrap()).num_milliseconds()
    )));
    assert!(html.contains(&rerun.raw_rows.expect("rows written").to_string()));

    // A QUEUED record (due later) has a Cancel button; Cancel makes it CANCELLED.
    let queued = insert_jobs(&app, &[("s2", "AD", "MANUAL", today())])
        .await
        .remove(0);
    let page = format!("/dashboard/jobs/{}", queued.id);
    let (_, html) = page_text(&app, &page, &login).await;
    assert!(html.contains(&format!(r#"action="/dashboard/jobs/{}/cancel""#, queued.id)));
    let response = post_form(
        &app,
        &format!("{page}/cancel"),
        Some(&login.cookie),
        csrf_back.clone(),
    )
    .await;
    let location = response.headers()[LOCATION].to_str().unwrap().to_string();
    assert_eq!(location, format!("{page}?action=cancel&outcome=cancelled"));
    let (_, html) = page_text(&app, &location, &login).await;
    assert!(html.contains("Cancelled: it will not run."));
    assert!(html.contains(r#"status status-cancelled"#));
    assert!(html.contains("never: cancelled"));
    let cancelled = record(&app, queued.id).await;
    assert_eq!(cancelled.status, "CANCELLED");
    assert!(cancelled.finished_at.is_some() && cancelled.started_at.is_none());
    assert_eq!(cancelled.attempts, 0);
    // Twice: refused, nothing changes; unknown ids are answered as such.
    let response = post_form(
        &app,
        &format!("{page}/cancel"),
        Some(&login.cookie),
        csrf_back.clone(),
    )
    .await;
    assert!(response.headers()[LOCATION]
        .to_str()
        .unwrap()
        .ends_with("outcome=not_queued"));
    assert_eq!(record(&app, queued.id).await, cancelled);
    let response = post_form(
        &app,
        "/dashboard/jobs/999999/cancel",
        Some(&login.cookie),
        csrf_back.clone(),
    )
    .await;
    assert!(response.headers()[LOCATION]
        .to_str()
        .unwrap()
        .ends_with("outcome=not_found"));
    let (status, html) = page_text(&app, "/dashboard/jobs/999999", &login).await;
    assert_eq!(status, 404);
    assert!(html.contains("No such job"));
    // A CANCELLED record is not retried.
    let response = post_form(
        &app,
        &format!("{page}/retry"),
        Some(&login.cookie),
        csrf_back,
    )
    .await;
    assert!(response.headers()[LOCATION]
        .to_str()
        .unwrap()
        .ends_with("outcome=not_failed"));
    assert_eq!(record(&app, queued.id).await.status, "CANCELLED");
    app.shutdown().await;
}

async fn cancel_is_refused_for_running_and_succeeded_jobs(backend: Backend) {
    // Each fetch takes a while, so the job is RUNNING when the operator clicks.
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .with_provider(TestProvider::new(Duration::from_millis(1500), 0))
        .with_settings(with_dashboard)
        .spawn()
        .await;
    app.enqueue_campaign_sync("s1").await;
    let jobs = app
        .wait_for_jobs(Duration::from_secs(20), |jobs| {
            jobs.iter().any(|j| j.status == "RUNNING")
        })
        .await;
    let running = jobs[0].clone();
    let login = log_in(&app).await;
    let cancel = format!("/dashboard/jobs/{}/cancel", running.id);
    let csrf = form(&[("csrf", &login.csrf)]);
    let response = post_form(&app, &cancel, Some(&login.cookie), csrf.clone()).await;
    assert_eq!(
        response.headers()[LOCATION],
        format!(
            "/dashboard/jobs/{}?action=cancel&outcome=not_queued",
            running.id
        )
        .as_str()
    );
    // It runs to its end as if nothing was asked.
    app.wait_until_idle(Duration::from_secs(20)).await;
    let done = record(&app, running.id).await;
    assert_eq!(done.status, "SUCCEEDED");
    let response = post_form(&app, &cancel, Some(&login.cookie), csrf).await;
    assert!(response.headers()[LOCATION]
        .to_str()
        .unwrap()
        .ends_with("outcome=not_queued"));
    assert_eq!(record(&app, running.id).await, done);
    app.shutdown().await;
}
