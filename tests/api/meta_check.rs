//! `ads-stats meta check` run as an operator runs it, against the Meta-like fake of `meta.rs`:
//! after a sync it prints Meta's account totals for yesterday in the ACCOUNT's zone beside the
//! stored ones, with the difference; exit 1 when Meta refuses or cannot be reached; exit 2 for a
//! connection that cannot be checked; never the token or the app secret.

use std::time::Duration;

use ads_stats::db::catalog::insert_catalog;
use ads_stats::db::connections;
use ads_stats::db::models::NewAdConnection;
use ads_stats::domain::Level;
use chrono::{NaiveDate, Timelike};

use crate::helpers::{migrated_db, Backend, TestDb};
use crate::meta::{
    account_ads, account_app, connect_account, enqueue, graph_error, key_b64, meta_account,
    meta_catalog, run_with_stdin, text, FakeAd, FakeGraph, Reply, APP_SECRET, CONNECTION, SELLER,
    TOKEN,
};
use crate::meta_account::account_reply;
use crate::on_both_backends;

on_both_backends!(
    after_a_sync_meta_and_stored_numbers_sit_side_by_side,
    when_meta_refuses_or_cannot_be_reached_it_exits_1,
    a_connection_that_cannot_be_checked_exits_2,
);

/// The environment of an operator's shell: the database, the key, the fake as Graph API.
fn envs(db_url: &str, graph_url: &str) -> Vec<(String, String)> {
    [
        ("DATABASE_URL", db_url),
        ("ADS_STATS_META__TOKEN_KEY", key_b64().as_str()),
        ("ADS_STATS_PROVIDER", "meta"),
        ("ADS_STATS_STATS__AGGREGATION", "latest"),
        ("ADS_STATS_META__BASE_URL", graph_url),
        // Small pages, so the check follows paging.next as a sync does.
        ("ADS_STATS_META__PAGE_SIZE", "2"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .to_vec()
}

async fn meta_check(envs: &[(String, String)], extra: &[&str]) -> std::process::Output {
    let mut args = vec!["meta", "check", "--connection"];
    args.extend_from_slice(extra);
    run_with_stdin(&args, envs, "").await
}

/// A zone whose date differs from UTC's now and whose midnight is hours away (Kiritimati is
/// UTC+14, Pago Pago UTC−11), so "yesterday" there is not UTC's and does not turn during the test.
fn far_zone() -> (&'static str, chrono_tz::Tz) {
    if chrono::Utc::now().hour() >= 10 {
        ("Pacific/Kiritimati", chrono_tz::Pacific::Kiritimati)
    } else {
        ("Pacific/Pago_Pago", chrono_tz::Pacific::Pago_Pago)
    }
}

fn leak(date: NaiveDate) -> &'static str {
    Box::leak(date.to_string().into_boxed_str())
}

/// The fake account's ads with their two days moved to `yesterday` and `today`.
fn ads_on(yesterday: NaiveDate, today: NaiveDate) -> Vec<FakeAd> {
    let (y, t) = (leak(yesterday), leak(today));
    let mut ads = account_ads();
    for ad in &mut ads {
        for d in &mut ad.days {
            d.date = match d.date {
                "2026-11-20" => y,
                "2026-11-21" => t,
                other => panic!("account_ads has a day {other}"),
            };
        }
    }
    ads
}

/// (spend cents, impressions, purchases, revenue cents) a reader adds up from the fake's ad rows
/// of `date`, with the default purchase types (first present wins), over the campaigns `keep`
/// accepts.
fn sums(ads: &[FakeAd], date: &str, keep: impl Fn(&str) -> bool) -> [i64; 4] {
    let first = |list: &[(&str, i64)]| {
        ["purchase", "offsite_conversion.fb_pixel_purchase"]
            .iter()
            .find_map(|t| list.iter().find(|(x, _)| x == t).map(|(_, n)| *n))
            .unwrap_or(0)
    };
    let mut s = [0; 4];
    for ad in ads.iter().filter(|a| keep(a.campaign)) {
        for d in ad.days.iter().filter(|d| d.date == date) {
            s[0] += d.spend;
            s[1] += d.impressions;
            s[2] += first(&d.actions);
            s[3] += first(&d.values);
        }
    }
    s
}

fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

/// The fields of the table line starting with `name`.
fn table_line(out: &str, name: &str) -> Vec<String> {
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no `{name}` line in {out}"))
        .split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect()
}

fn four(v: &serde_json::Value) -> [i64; 4] {
    ["spendCents", "impressions", "purchases", "revenueCents"]
        .map(|k| v[k].as_i64().unwrap_or_else(|| panic!("no {k} in {v}")))
}

/// A sync of the account's yesterday and today (campaign level, with the app secret Meta
/// demands), then `meta check`: the account as Meta reports it, yesterday in ITS zone (not UTC's,
/// not the connection's stored one), Meta's totals of every ad of the account (deleted and
/// archived ones included, purchases of the first listed type, every page followed) beside the
/// stored campaign rows, which lack only the campaign we do not know; `--date` and `--json` give
/// the other day as one object. Neither the token nor the app secret is printed.
async fn after_a_sync_meta_and_stored_numbers_sit_side_by_side(backend: Backend) {
    let (zone, tz) = far_zone();
    let today = chrono::Utc::now().with_timezone(&tz).date_naive();
    let yesterday = today.pred_opt().unwrap();
    assert_ne!(
        yesterday,
        chrono::Utc::now().date_naive().pred_opt().unwrap(),
        "the zone's yesterday is not UTC's"
    );
    let ads = ads_on(yesterday, today);
    let graph = FakeGraph::start(meta_account(ads.clone(), true)).await;
    graph.set_account(account_reply(zone, "EUR", 1));
    let app = account_app(backend, &graph, |m| {
        m.app_secret = ads_stats::config::Secret::new(APP_SECRET)
    })
    .await;
    // Due, as after `connection set-token`: the sync stores Meta's zone and currency first.
    connections::schedule_account_read(&mut app.conn().await, CONNECTION, ads_stats::db::now_utc())
        .await
        .unwrap();
    enqueue(
        &app,
        Level::Campaign,
        &yesterday.to_string(),
        &today.to_string(),
    )
    .await;
    app.wait_until_idle(Duration::from_secs(30)).await;
    let jobs = app.jobs().await;
    assert!(jobs.iter().all(|j| j.status == "SUCCEEDED"), "{jobs:#?}");
    let mut envs = envs(&app.test_db.url, &graph.url);
    envs.push((
        "ADS_STATS_META__APP_SECRET".to_string(),
        APP_SECRET.to_string(),
    ));
    let ours = |c: &str| ["120001", "120002", "120003", "120005"].contains(&c);

    let asked_before = graph.requests();
    let out = meta_check(&envs, &[CONNECTION]).await;
    let printed = text(&out);
    assert_eq!(out.status.code(), Some(0), "{printed}");
    assert!(
        !printed.contains(TOKEN) && !printed.contains(APP_SECRET),
        "{printed}"
    );
    for needle in [
        "Test shop",
        &format!("zone {zone}"),
        "currency EUR",
        "status ACTIVE",
        &format!("day {yesterday} (yesterday in the account's zone)"),
        "action_report_time=mixed",
    ] {
        assert!(printed.contains(needle), "`{needle}` in {printed}");
    }
    let y = yesterday.to_string();
    let meta = sums(&ads, &y, |_| true);
    let stored = sums(&ads, &y, ours);
    assert!(meta[0] > stored[0], "the unknown campaign spent: {meta:?}");
    let eur = |cents: i64| vec![money(cents), "EUR".to_string()];
    assert_eq!(
        table_line(&printed, "spend"),
        [eur(meta[0]), eur(stored[0]), eur(stored[0] - meta[0])].concat(),
        "{printed}"
    );
    assert_eq!(
        table_line(&printed, "impressions"),
        [meta[1], stored[1], stored[1] - meta[1]].map(|n| n.to_string()),
        "{printed}"
    );
    assert_eq!(
        table_line(&printed, "purchases"),
        [meta[2], stored[2], stored[2] - meta[2]].map(|n| n.to_string()),
        "{printed}"
    );
    assert_eq!(
        table_line(&printed, "revenue"),
        [eur(meta[3]), eur(stored[3]), eur(stored[3] - meta[3])].concat(),
        "{printed}"
    );
    let unknown = sums(&ads, &y, |c| !ours(c));
    assert!(
        printed.contains(&format!(
            "Meta campaigns with no external_id on this connection: 1 (spend {} EUR",
            money(unknown[0])
        )),
        "{printed}"
    );
    // Asked as a sync asks: one day, level=ad, every status, unified attribution, the proof.
    let seen = graph.seen();
    let asked = &seen[asked_before..];
    assert!(asked.len() >= 2, "paging followed: {asked:#?}");
    for s in asked {
        let q = |k: &str| s.query.get(k).map(String::as_str).unwrap_or("");
        assert_eq!(q("level"), "ad");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(q("time_range")).unwrap(),
            serde_json::json!({"since": y, "until": y})
        );
        assert_eq!(q("use_unified_attribution_setting"), "true");
        assert_eq!(q("action_report_time"), "mixed");
        assert!(q("filtering").contains("DELETED") && q("filtering").contains("ARCHIVED"));
        assert!(!q("appsecret_proof").is_empty());
        assert_eq!(
            s.authorization.as_deref(),
            Some(&*format!("Bearer {TOKEN}"))
        );
    }

    // The other day, given, as JSON.
    let t = today.to_string();
    let out = meta_check(&envs, &[CONNECTION, "--date", &t, "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert!(!text(&out).contains(TOKEN) && !text(&out).contains(APP_SECRET));
    let (meta, stored) = (sums(&ads, &t, |_| true), sums(&ads, &t, ours));
    assert_eq!(report["date"], t.as_str());
    assert_eq!(report["dateIsYesterday"], false);
    assert_eq!(report["account"]["timezone"], zone);
    assert_eq!(report["account"]["currency"], "EUR");
    assert_eq!(report["account"]["active"], true);
    assert_eq!(report["account"]["status"], "ACTIVE");
    assert_eq!(four(&report["meta"]), meta);
    assert_eq!(four(&report["stored"]), stored);
    assert_eq!(report["stored"]["currency"], "EUR");
    assert_eq!(
        four(&report["difference"]),
        [0, 1, 2, 3].map(|i| stored[i] - meta[i])
    );
    assert_eq!(
        four(&report["metaUnknownCampaigns"]),
        sums(&ads, &t, |c| !ours(c))
    );

    // A disabled account still answers: exit 0 with its status, and nothing recorded.
    graph.set_account(account_reply(zone, "EUR", 2));
    let out = meta_check(&envs, &[CONNECTION]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("status account_status 2 (DISABLED)"),
        "{}",
        text(&out)
    );
    let status = connections::status(&mut app.conn().await, CONNECTION).await;
    assert_eq!(status.unwrap().as_deref(), Some("ACTIVE"));
}

/// Meta refusing the account read (expired token), refusing the insights (no permission), or no
/// Graph API at all: exit 1 with one line saying why, nothing on stdout, no token, and the
/// connection left as it was (the check records no verdict).
async fn when_meta_refuses_or_cannot_be_reached_it_exits_1(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    {
        let mut conn = db.conn().await.unwrap();
        insert_catalog(&mut conn, &meta_catalog()).await.unwrap();
        connect_account(&mut conn).await;
    }
    let fails = |out: &std::process::Output, needle: &str| {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{}", text(out));
        assert_eq!(err.trim().lines().count(), 1, "one line: {err:?}");
        assert!(err.contains(needle), "expected `{needle}` in {err:?}");
        assert!(out.stdout.is_empty(), "{}", text(out));
        assert!(!text(out).contains(TOKEN));
    };

    let expired = FakeGraph::start(meta_account(account_ads(), false)).await;
    expired.set_account(Reply::json(
        400,
        graph_error(
            190,
            463,
            "Error validating access token: Session has expired on Saturday, 05-Dec-26.\nThe current time is Sunday.",
        ),
    ));
    let out = meta_check(&envs(&test_db.url, &expired.url), &[CONNECTION]).await;
    fails(&out, "expired");
    fails(&out, "connection set-token --connection s1-conn");
    assert_eq!(expired.requests(), 0, "no insights after a refused read");

    let denied = FakeGraph::start(|_, _, _| {
        Reply::json(
            400,
            graph_error(
                10,
                0,
                "(#10) Application does not have permission for this action",
            ),
        )
    })
    .await;
    let out = meta_check(&envs(&test_db.url, &denied.url), &[CONNECTION]).await;
    fails(&out, "permission");
    assert_eq!(denied.account_reads().len(), 1);
    assert_eq!(denied.requests(), 1, "one insights request, not retried");

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let out = meta_check(&envs(&test_db.url, &closed), &[CONNECTION]).await;
    fails(&out, "could not connect");

    let mut conn = db.conn().await.unwrap();
    assert_eq!(
        connections::status(&mut conn, CONNECTION)
            .await
            .unwrap()
            .as_deref(),
        Some("ACTIVE"),
        "the check records no verdict"
    );
}

/// An unknown id, a connection of another provider, a META connection without a token, no
/// `meta.token_key`, a bad `--date`: exit 2 with one line, and Meta is not asked.
async fn a_connection_that_cannot_be_checked_exits_2(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    let mut catalog = meta_catalog();
    for (id, provider, account) in [("s1-mock", "mock", "1"), ("s1-bare", "META", "act_2002")] {
        catalog.connections.push(NewAdConnection {
            id: id.into(),
            seller_id: SELLER.into(),
            provider: provider.into(),
            external_account_id: account.into(),
            status: "ACTIVE".into(),
        });
    }
    {
        let mut conn = db.conn().await.unwrap();
        insert_catalog(&mut conn, &catalog).await.unwrap();
        connect_account(&mut conn).await;
    }
    let graph = FakeGraph::start(meta_account(account_ads(), false)).await;
    let envs = envs(&test_db.url, &graph.url);
    let refused = |out: &std::process::Output, needle: &str| {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{}", text(out));
        assert_eq!(err.trim().lines().count(), 1, "one line: {err:?}");
        assert!(err.contains(needle), "expected `{needle}` in {err:?}");
        assert!(out.stdout.is_empty(), "{}", text(out));
    };
    refused(
        &meta_check(&envs, &["nope"]).await,
        "no connection with id nope",
    );
    refused(
        &meta_check(&envs, &["s1-mock"]).await,
        "META connections only",
    );
    refused(
        &meta_check(&envs, &["s1-bare"]).await,
        "connection s1-bare has no access token",
    );
    let without_key: Vec<_> = envs
        .iter()
        .filter(|(k, _)| k != "ADS_STATS_META__TOKEN_KEY")
        .cloned()
        .collect();
    refused(
        &meta_check(&without_key, &[CONNECTION]).await,
        "meta.token_key",
    );
    refused(
        &meta_check(&envs, &[CONNECTION, "--date", "2026-13-01"]).await,
        "--date",
    );
    assert!(graph.account_reads().is_empty() && graph.requests() == 0);
}
