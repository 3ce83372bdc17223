//! The ad account read from Meta (`GET act_{id}`): its zone, currency and status land on the
//! connection, right after `connection set-token` and at the start of a job whose read is due;
//! Meta's zone wins over `connection set --timezone`; an account that is not active makes the
//! connection REVOKED and its jobs stop; amounts stay hundredths of the account's currency unit.

use std::time::Duration;

use ads_stats::db::catalog::{self, insert_catalog};
use ads_stats::db::schema::ad_connections;
use ads_stats::db::{self, connections, Db};
use ads_stats::db_run;
use ads_stats::domain::Level;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::helpers::{app, migrated_db, today, Backend, TestApp, TestDb};
use crate::meta::{
    connect_account, enqueue, graph_error, key_b64, meta_app, meta_catalog, raw, row,
    run_with_stdin, text, FakeGraph, Reply, CONNECTION, SELLER, TOKEN,
};
use crate::on_both_backends;

/// `GET /vXX.X/act_{id}` and nothing below it: the account read (insights are `act_{id}/insights`).
pub(crate) fn is_account_read(path: &str) -> bool {
    let mut parts = path.trim_start_matches('/').split('/');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(v), Some(act), None) if v.starts_with('v') && act.starts_with("act_")
    )
}

/// Meta's answer to `GET act_{id}?fields=name,timezone_name,currency,account_status`.
pub(crate) fn account_reply(zone: &str, currency: &str, status: i64) -> Reply {
    Reply::json(
        200,
        serde_json::json!({"name": "Test shop", "timezone_name": zone, "currency": currency,
            "account_status": status, "id": "act_1001"}),
    )
}

on_both_backends!(
    set_token_reads_the_account_and_meta_zone_wins,
    a_due_read_at_the_start_of_a_job_logs_a_zone_change,
    an_inactive_account_revokes_the_connection_and_its_jobs_stop,
    a_failed_account_read_fails_the_job_and_is_due_again,
    a_sellpage_of_two_currencies_is_not_rolled_up,
);
// The read API's currencies are checked inside `a_sellpage_of_two_currencies_is_not_rolled_up`
// (`read_rows_carry_their_currency`), on the same two-currency catalogue.

/// (timezone, currency, status, status_reason, account_read_due_at) of the test connection.
type ConnectionFacts = (
    String,
    String,
    String,
    Option<String>,
    Option<NaiveDateTime>,
);

async fn facts(db: &Db) -> ConnectionFacts {
    let mut conn = db.conn().await.unwrap();
    let conn = &mut conn;
    db_run!(conn, {
        ad_connections::table
            .find(CONNECTION)
            .select((
                ad_connections::timezone,
                ad_connections::currency,
                ad_connections::status,
                ad_connections::status_reason,
                ad_connections::account_read_due_at,
            ))
            .first(conn)
            .await
            .unwrap()
    })
}

/// Makes the account read due now, as the passing of `meta.account_refresh` would.
async fn make_read_due(db: &Db) {
    let mut conn = db.conn().await.unwrap();
    connections::schedule_account_read(&mut conn, CONNECTION, db::now_utc())
        .await
        .unwrap();
}

/// Insights: cmp-1 spent 1234 of the account's currency on the 20th (sent only when the asked
/// `time_range` covers it, as Meta does).
fn insights(_n: usize, seen: &crate::meta::Seen, _base: &str) -> Reply {
    let range: serde_json::Value =
        serde_json::from_str(seen.query.get("time_range").map_or("{}", String::as_str)).unwrap();
    let day = "2026-11-20";
    let covered = range["since"].as_str().is_some_and(|s| s <= day)
        && range["until"].as_str().is_some_and(|u| day <= u);
    let data = if covered {
        vec![row(("campaign_id", "120001"), day, "1234", "5000", "40")]
    } else {
        Vec::new()
    };
    Reply::json(200, serde_json::json!({ "data": data }))
}

fn cli_envs(test_db: &TestDb, graph: &FakeGraph) -> Vec<(String, String)> {
    [
        ("DATABASE_URL", test_db.url.as_str()),
        ("ADS_STATS_META__TOKEN_KEY", key_b64().as_str()),
        ("ADS_STATS_PROVIDER", "meta"),
        ("ADS_STATS_STATS__AGGREGATION", "latest"),
        ("ADS_STATS_META__BASE_URL", graph.url.as_str()),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .to_vec()
}

/// `set --timezone` on a META connection says Meta's zone will replace it; `set-token` reads the
/// account at once (one request, with the new token, asking the four fields): Meta's zone
/// replaces ours, the currency is stored, the next read is due a day later.
async fn set_token_reads_the_account_and_meta_zone_wins(backend: Backend) {
    let graph = FakeGraph::start(insights).await;
    graph.set_account(account_reply("Asia/Tokyo", "JPY", 1));
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    insert_catalog(&mut db.conn().await.unwrap(), &meta_catalog())
        .await
        .unwrap();
    let envs = cli_envs(&test_db, &graph);
    let set_zone = [
        "connection",
        "set",
        "--connection",
        CONNECTION,
        "--timezone",
        "America/Los_Angeles",
    ];
    let out = run_with_stdin(&set_zone, &envs, "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("replaces it with Meta's"),
        "{}",
        text(&out)
    );
    assert_eq!(facts(&db).await.0, "America/Los_Angeles");
    assert!(
        graph.account_reads().is_empty(),
        "set --timezone asks nothing"
    );

    let started = db::now_utc();
    let out = run_with_stdin(
        &["connection", "set-token", "--connection", CONNECTION],
        &envs,
        TOKEN,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let printed = text(&out);
    assert!(
        printed.contains("timezone = Asia/Tokyo (was America/Los_Angeles)")
            && printed.contains("currency = JPY"),
        "{printed}"
    );
    assert!(!printed.contains(TOKEN), "{printed}");
    let reads = graph.account_reads();
    assert_eq!(reads.len(), 1, "one read: {reads:#?}");
    assert_eq!(reads[0].path, "/v23.0/act_1001");
    assert_eq!(
        reads[0].query.get("fields").map(String::as_str),
        Some("name,timezone_name,currency,account_status")
    );
    assert_eq!(
        reads[0].authorization.as_deref(),
        Some(&*format!("Bearer {TOKEN}"))
    );
    let (zone, currency, status, reason, due) = facts(&db).await;
    assert_eq!(
        (zone.as_str(), currency.as_str(), status.as_str(), reason),
        ("Asia/Tokyo", "JPY", "ACTIVE", None)
    );
    let ahead = (due.expect("next read scheduled") - started).num_hours();
    assert!((23..=24).contains(&ahead), "next read in a day: {ahead}h");
    assert_eq!(graph.requests(), 0, "no insights asked");
}

/// A read due at the start of a job (here the `sync` command, whose log is its stderr): Meta's
/// new zone replaces an operator's `set --timezone` with a warning naming both, the JPY amount
/// 1234 is stored as 123400 hundredths, and the next job does not read again.
async fn a_due_read_at_the_start_of_a_job_logs_a_zone_change(backend: Backend) {
    let graph = FakeGraph::start(insights).await;
    graph.set_account(account_reply("Asia/Tokyo", "JPY", 1));
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    {
        let mut conn = db.conn().await.unwrap();
        insert_catalog(&mut conn, &meta_catalog()).await.unwrap();
        connect_account(&mut conn).await;
        connections::set_timezone(&mut conn, CONNECTION, "Europe/Berlin")
            .await
            .unwrap();
    }
    make_read_due(&db).await;
    let envs = cli_envs(&test_db, &graph);
    let sync = |date: &'static str| {
        [
            "sync", "--seller", SELLER, "--date", date, "--level", "CAMPAIGN",
        ]
    };
    let out = run_with_stdin(&sync("2026-11-20"), &envs, "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = text(&out);
    let changed = log
        .lines()
        .find(|l| l.contains("time zone changed"))
        .unwrap_or_else(|| panic!("zone change logged: {log}"));
    assert!(
        changed.contains("Europe/Berlin") && changed.contains("Asia/Tokyo"),
        "{changed}"
    );
    let (zone, currency, status, _, _) = facts(&db).await;
    assert_eq!(
        (zone.as_str(), currency.as_str(), status.as_str()),
        ("Asia/Tokyo", "JPY", "ACTIVE")
    );
    let mut conn = db.conn().await.unwrap();
    let rows = ads_stats::db::writes::raw_rows(
        &mut conn,
        "CAMPAIGN",
        "s1-cmp-1",
        "2026-11-20".parse().unwrap(),
    )
    .await
    .unwrap();
    drop(conn);
    assert_eq!(
        rows.iter().map(|r| r.spend_cents).collect::<Vec<_>>(),
        vec![123_400],
        "JPY 1234 in hundredths of a yen"
    );
    assert_eq!(graph.account_reads().len(), 1);

    let out = run_with_stdin(&sync("2026-11-21"), &envs, "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(graph.account_reads().len(), 1, "not due again for a day");
    assert_eq!(graph.requests(), 2, "one insights query per sync");
}

/// An account Meta reports DISABLED: at the start of the job the connection becomes REVOKED with
/// the reason, the job asks no insights and writes nothing, the scheduler stops picking the
/// seller and a later job asks nothing at all. A new token (what `set-token` stores) makes the
/// connection ACTIVE and the account is read again: still disabled, REVOKED again; active, the
/// sync runs.
async fn an_inactive_account_revokes_the_connection_and_its_jobs_stop(backend: Backend) {
    let graph = FakeGraph::start(insights).await;
    graph.set_account(account_reply("UTC", "USD", 2));
    let app = meta_app(backend, &graph).await;
    make_read_due(&app.db).await;
    enqueue(&app, Level::Campaign, "2026-11-20", "2026-11-20").await;
    app.wait_until_idle(Duration::from_secs(10)).await;
    let jobs = app.jobs().await;
    assert_eq!(jobs[0].status, "SUCCEEDED", "{jobs:#?}");
    assert_eq!(jobs[0].entities, Some(0), "{jobs:#?}");
    let (_, _, status, reason, _) = facts(&app.db).await;
    assert_eq!(status, "REVOKED");
    assert_eq!(reason.as_deref(), Some("account_status 2 (DISABLED)"));
    assert_eq!(graph.requests(), 0, "no insights for a disabled account");
    assert_eq!(app.tier_counts(SELLER).await, (0, 0, 0));
    {
        let mut conn = app.conn().await;
        assert!(!catalog::is_eligible(&mut conn, SELLER).await.unwrap());
    }
    enqueue(&app, Level::Adset, "2026-11-20", "2026-11-20").await;
    app.wait_until_idle(Duration::from_secs(10)).await;
    assert_eq!(
        graph.account_reads().len(),
        1,
        "a REVOKED account is not read"
    );
    assert_eq!(graph.requests(), 0);

    // A new token: ACTIVE again, read at once by the next job; still disabled → REVOKED again.
    let store = |app: &crate::helpers::TestApp| {
        let db = app.db.clone();
        async move {
            let sealed = ads_stats::crypto::TokenSealer::new(&crate::meta::KEY)
                .seal(CONNECTION, &ads_stats::config::Secret::new(TOKEN))
                .unwrap();
            let mut conn = db.conn().await.unwrap();
            connections::store_token(&mut conn, CONNECTION, &sealed)
                .await
                .unwrap()
                .expect("connection exists")
        }
    };
    assert_eq!(
        store(&app).await,
        ("REVOKED".to_string(), "ACTIVE".to_string())
    );
    enqueue(&app, Level::Campaign, "2026-11-21", "2026-11-21").await;
    app.wait_until_idle(Duration::from_secs(10)).await;
    assert_eq!(graph.account_reads().len(), 2);
    assert_eq!(facts(&app.db).await.2, "REVOKED");
    assert_eq!(graph.requests(), 0);

    // Reinstated by Meta: the next token's read finds it active and the sync runs.
    graph.set_account(account_reply("UTC", "USD", 1));
    store(&app).await;
    enqueue(&app, Level::Campaign, "2026-11-20", "2026-11-21").await;
    app.wait_until_idle(Duration::from_secs(10)).await;
    let (_, _, status, reason, _) = facts(&app.db).await;
    assert_eq!((status.as_str(), reason), ("ACTIVE", None));
    assert_eq!(graph.account_reads().len(), 3);
    assert_eq!(
        graph.requests(),
        1,
        "insights asked once the account is active"
    );
    assert_eq!(
        raw(&app, "CAMPAIGN", "s1-cmp-1", "2026-11-20").await[0].spend_cents,
        123_400
    );
    drop(app.shutdown().await);
}

/// An account read refused with code 190 fails the job like an insights request would (FAILED,
/// connection EXPIRED); an answer without a real currency fails the job as malformed and leaves
/// the read due for the next job.
async fn a_failed_account_read_fails_the_job_and_is_due_again(backend: Backend) {
    let graph = FakeGraph::start(insights).await;
    graph.set_account(account_reply("UTC", "usd", 1));
    let app = meta_app(backend, &graph).await;
    make_read_due(&app.db).await;
    enqueue(&app, Level::Campaign, "2026-11-20", "2026-11-20").await;
    app.wait_until_idle(Duration::from_secs(10)).await;
    let jobs = app.jobs().await;
    assert_eq!(
        (jobs[0].status.as_str(), jobs[0].last_error.as_deref()),
        (
            "FAILED",
            Some("the stats provider answered with unexpected data")
        )
    );
    let (_, currency, status, _, due) = facts(&app.db).await;
    assert_eq!((currency.as_str(), status.as_str()), ("USD", "ACTIVE"));
    assert!(due.expect("due") <= db::now_utc(), "due again at once");
    assert_eq!(graph.requests(), 0);

    graph.set_account(Reply::json(
        400,
        graph_error(
            190,
            463,
            "Error validating access token: Session has expired.",
        ),
    ));
    enqueue(&app, Level::Adset, "2026-11-20", "2026-11-20").await;
    app.wait_until_idle(Duration::from_secs(10)).await;
    let jobs = app.jobs().await;
    let adset = jobs.iter().find(|j| j.level == "ADSET").unwrap();
    assert_eq!(adset.status, "FAILED", "{jobs:#?}");
    assert_eq!(facts(&app.db).await.2, "EXPIRED");
    assert_eq!(graph.account_reads().len(), 2);
    assert_eq!(graph.requests(), 0);
    drop(app.shutdown().await);
}

/// Sets a connection's currency, as an account read would.
async fn set_currency(db: &Db, connection: &str, currency: &str) {
    let mut conn = db.conn().await.unwrap();
    let conn = &mut conn;
    db_run!(conn, {
        diesel::update(ad_connections::table.find(connection))
            .set(ad_connections::currency.eq(currency))
            .execute(conn)
            .await
            .unwrap()
    });
}

/// The sample of `ads_stats_rollup_currency_conflicts_total`, once it reaches `at_least`.
async fn conflicts_metric(app: &TestApp, at_least: f64) -> f64 {
    let started = std::time::Instant::now();
    loop {
        let text = app
            .send(app.request(reqwest::Method::GET, "/metrics"))
            .await
            .text()
            .await
            .unwrap();
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix("ads_stats_rollup_currency_conflicts_total "))
            .map(|v| v.trim().parse::<f64>().unwrap());
        if let Some(v) = value.filter(|v| *v >= at_least) {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "metric never reached {at_least}: {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get_json(app: &TestApp, path: &str) -> serde_json::Value {
    let response = app
        .send(
            app.request(reqwest::Method::GET, path)
                .bearer_auth(app.token(SELLER)),
        )
        .await;
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

/// With cmp-2 under the JPY account: daily rows at every level say their entity's currency, the
/// summary has no single `total` but one total per currency (each the sum of its rows), and the
/// sellpage rows say theirs.
async fn read_rows_carry_their_currency(app: &TestApp, date: chrono::NaiveDate) {
    let range = format!("from={date}&to={date}");
    let daily = get_json(
        app,
        &format!("/api/ads-manager/stats?level=CAMPAIGN&{range}"),
    )
    .await;
    let currencies: Vec<(String, String)> = daily["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["entityId"].as_str().unwrap().to_string(),
                r["currency"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("s1-cmp-1", "USD"),
        ("s1-cmp-2", "JPY"),
        ("s1-cmp-3", "USD"),
        ("s1-cmp-4", "USD"),
    ]
    .iter()
    .map(|(e, c)| (e.to_string(), c.to_string()))
    .collect();
    assert_eq!(currencies, expected);
    // Ad sets and ads take their campaign's account's currency (adset-2 and its ad-3 are
    // under cmp-2).
    for (level, expected) in [
        ("ADSET", vec![("s1-adset-1", "USD"), ("s1-adset-2", "JPY")]),
        (
            "AD",
            vec![("s1-ad-1", "USD"), ("s1-ad-2", "USD"), ("s1-ad-3", "JPY")],
        ),
    ] {
        let rows = get_json(
            app,
            &format!("/api/ads-manager/stats?level={level}&{range}"),
        )
        .await;
        let got: Vec<(&str, &str)> = rows["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["entityId"].as_str().unwrap(),
                    r["currency"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, expected, "{level}");
    }

    let summary = get_json(
        app,
        &format!("/api/ads-manager/stats/summary?level=CAMPAIGN&{range}"),
    )
    .await;
    assert!(summary["total"].is_null(), "{summary:#}");
    let totals = summary["totalsByCurrency"].as_array().unwrap();
    let rows = summary["rows"].as_array().unwrap();
    assert_eq!(
        totals
            .iter()
            .map(|t| t["currency"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec!["JPY", "USD"]
    );
    for total in totals {
        let of: Vec<&serde_json::Value> = rows
            .iter()
            .filter(|r| r["currency"] == total["currency"])
            .collect();
        for field in ["spendCents", "impressions", "purchases", "revenueCents"] {
            let sum: i64 = of.iter().map(|r| r[field].as_i64().unwrap()).sum();
            assert_eq!(total[field].as_i64().unwrap(), sum, "{field} of {total}");
        }
        assert!(total.get("entityId").is_none());
    }
    let pages = get_json(app, &format!("/api/ads-manager/sellpages/stats?{range}")).await;
    let pages = pages["rows"].as_array().unwrap();
    assert_eq!(pages.len(), 1, "page-1 is not rolled up: {pages:#?}");
    assert_eq!(
        (&pages[0]["sellpageId"], &pages[0]["currency"]),
        (&serde_json::json!("s1-page-2"), &serde_json::json!("USD"))
    );
}

/// page-1 holds cmp-1 (a USD account) and cmp-2 (moved to a second, JPY account): dollars and yen
/// cannot be added, so page-1 gets no row for the date and the metric counts it; page-2 (cmp-3,
/// USD only) is rolled up and its row says USD. Once both accounts report in one currency the
/// next sync rolls page-1 up again.
async fn a_sellpage_of_two_currencies_is_not_rolled_up(backend: Backend) {
    let mut catalog = meta_catalog();
    catalog
        .connections
        .push(ads_stats::db::models::NewAdConnection {
            id: "s1-conn-jp".into(),
            seller_id: SELLER.into(),
            provider: "META".into(),
            external_account_id: "act_81".into(),
            status: "ACTIVE".into(),
        });
    for c in catalog.campaigns.iter_mut().filter(|c| c.id == "s1-cmp-2") {
        c.connection_id = "s1-conn-jp".into();
    }
    for s in catalog.adsets.iter_mut().filter(|s| s.id == "s1-adset-2") {
        s.campaign_id = "s1-cmp-2".into();
    }
    let app = app(backend).with_catalog(catalog).spawn().await;
    set_currency(&app.db, "s1-conn-jp", "JPY").await;
    let date = today();
    let requests: Vec<ads_stats::pipeline::SyncRequest> =
        [Level::Campaign, Level::Adset, Level::Ad]
            .into_iter()
            .map(|level| ads_stats::pipeline::SyncRequest::one_day(SELLER, level, date))
            .collect();
    app.app()
        .queue()
        .enqueue(&requests, ads_stats::jobs::Trigger::Manual)
        .await
        .unwrap();
    app.wait_until_idle(Duration::from_secs(10)).await;
    let jobs = app.jobs().await;
    assert!(jobs.iter().all(|j| j.status == "SUCCEEDED"), "{jobs:#?}");
    let mut conn = app.conn().await;
    assert_eq!(
        ads_stats::db::writes::sellpage_row(&mut conn, "s1-page-1", date)
            .await
            .unwrap(),
        None,
        "no sum of yen and dollars"
    );
    let page2 = ads_stats::db::writes::sellpage_row(&mut conn, "s1-page-2", date)
        .await
        .unwrap()
        .expect("page-2 rolled up");
    assert_eq!((page2.currency.as_str(), page2.campaign_count), ("USD", 1));
    drop(conn);
    assert_eq!(conflicts_metric(&app, 1.0).await, 1.0);
    read_rows_carry_their_currency(&app, date).await;

    set_currency(&app.db, "s1-conn-jp", "USD").await;
    let request = ads_stats::pipeline::SyncRequest::one_day(SELLER, Level::Campaign, date);
    app.app()
        .queue()
        .enqueue(
            &[ads_stats::pipeline::SyncRequest {
                date_from: date - chrono::Duration::days(1),
                ..request
            }],
            ads_stats::jobs::Trigger::Manual,
        )
        .await
        .unwrap();
    app.wait_until_idle(Duration::from_secs(10)).await;
    let mut conn = app.conn().await;
    let page1 = ads_stats::db::writes::sellpage_row(&mut conn, "s1-page-1", date)
        .await
        .unwrap()
        .expect("one currency again: rolled up");
    assert_eq!((page1.currency.as_str(), page1.campaign_count), ("USD", 2));
    drop(conn);
    // One currency: `total` is that currency's only total.
    let summary = get_json(
        &app,
        &format!("/api/ads-manager/stats/summary?level=CAMPAIGN&from={date}&to={date}"),
    )
    .await;
    let totals = summary["totalsByCurrency"].as_array().unwrap();
    assert_eq!(totals.len(), 1, "{summary:#}");
    assert_eq!(summary["total"], totals[0]);
    assert_eq!(summary["total"]["currency"], "USD");
    assert_eq!(conflicts_metric(&app, 1.0).await, 1.0, "no new conflict");
    drop(app.shutdown().await);
}
