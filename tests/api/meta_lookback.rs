//! Issue 16 item 4: with `provider = "meta"`, scheduled syncs of a `META` connection cover its
//! local yesterday and today (one job per level, the range in the job id), `stats.lookback_days`
//! defaults to 28 (0 for the mock, an explicit value wins), the daily lookback waits for the
//! first tick at or after `stats.lookback_hour` in the connection's zone, and a seller whose
//! campaigns stopped delivering today still has yesterday synced.
//!
//! The scheduler's rules follow the `provider` setting, so the planning tests run their jobs on
//! the mock's numbers (a slow one where jobs must stay active); the paused-campaign test runs the
//! real Meta provider against the fake Graph API of `meta.rs`. Meta ranges there stay within 7
//! days (lookback 3); the default 28-day lookback through an async report run is tested in
//! `meta_async.rs`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ads_stats::config::{Aggregation, ProviderKind};
use ads_stats::db::catalog::{self, HierarchyTable};
use ads_stats::db::models::JobRecord;
use ads_stats::db::writes;
use ads_stats::providers::MetaProvider;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use crate::helpers::{ads_stats, app, merge, seller_catalog, Backend, TestApp, TestProvider};
use crate::lookback::marker;
use crate::meta::{connect_account, meta_catalog, meta_settings, FakeGraph, Reply, Seen};
use crate::on_both_backends;
use crate::timezones::set_timezone;

on_both_backends!(
    meta_connections_sync_yesterday_and_today,
    mock_connections_keep_todays_single_day,
    lookback_days_default_by_provider_and_an_explicit_value_wins,
    lookback_waits_for_lookback_hour_in_the_account_zone,
    a_seller_whose_campaigns_were_paused_today_still_has_yesterday_synced,
);

fn day(m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, m, d).unwrap()
}

fn at(m: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, m, d, h, mi, 0).unwrap()
}

/// (seller, from, to, level) of every job record, sorted, each checked to carry its range in its
/// id.
async fn job_sets(app: &TestApp) -> Vec<(String, NaiveDate, NaiveDate, String)> {
    let mut out: Vec<_> = app
        .jobs()
        .await
        .iter()
        .map(|j: &JobRecord| {
            assert_eq!(
                j.job_id,
                format!(
                    "sync__{}__{}__{}__{}",
                    j.seller_id, j.date_from, j.date_to, j.level
                )
            );
            assert_eq!(j.triggered_by, "SCHEDULE");
            (j.seller_id.clone(), j.date_from, j.date_to, j.level.clone())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// One job per level over `from..=to` for `seller`, as [`job_sets`] lists them.
fn set(
    seller: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Vec<(String, NaiveDate, NaiveDate, String)> {
    ["AD", "ADSET", "CAMPAIGN"]
        .iter()
        .map(|l| (seller.to_string(), from, to, l.to_string()))
        .collect()
}

fn sets(
    parts: Vec<Vec<(String, NaiveDate, NaiveDate, String)>>,
) -> Vec<(String, NaiveDate, NaiveDate, String)> {
    let mut all: Vec<_> = parts.into_iter().flatten().collect();
    all.sort();
    all
}

/// Sellers `tyo` (Asia/Tokyo, UTC+9) and `lax` (America/Los_Angeles, UTC-8 in November) on a
/// service configured for Meta.
async fn spawn_meta_two_zones(
    backend: Backend,
    provider: Arc<TestProvider>,
    lookback_days: Option<u32>,
) -> TestApp {
    let app = app(backend)
        .with_catalog(merge(seller_catalog("tyo"), seller_catalog("lax")))
        .with_provider(provider)
        .with_settings(move |s| {
            s.provider = ProviderKind::Meta;
            s.stats.aggregation = Aggregation::Latest;
            s.stats.lookback_days = lookback_days;
        })
        .spawn()
        .await;
    let mut conn = app.conn().await;
    set_timezone(&mut conn, "tyo-conn", "Asia/Tokyo").await;
    set_timezone(&mut conn, "lax-conn", "America/Los_Angeles").await;
    app
}

async fn meta_connections_sync_yesterday_and_today(backend: Backend) {
    // Slow jobs, so the second tick finds the first tick's still active.
    let app = spawn_meta_two_zones(
        backend,
        TestProvider::new(Duration::from_secs(3), 0),
        Some(0),
    )
    .await;
    let scheduler = app.app().scheduler();

    // 20:00 UTC on the 28th: 05:00 on the 29th in Tokyo, 12:00 on the 28th in Los Angeles.
    let s = scheduler.tick(at(11, 28, 20, 0)).await.unwrap();
    assert_eq!(
        (s.sellers, s.enqueued, s.deduplicated, s.lookback),
        (2, 6, 0, 0),
        "{s:?}"
    );
    assert_eq!(
        job_sets(&app).await,
        sets(vec![
            set("tyo", day(11, 28), day(11, 29)),
            set("lax", day(11, 27), day(11, 28)),
        ])
    );
    assert!(app
        .jobs()
        .await
        .iter()
        .any(|j| j.job_id == "sync__tyo__2026-11-28__2026-11-29__CAMPAIGN"));

    // Later the same local days: the same ids, deduplicated like today's jobs.
    let s = scheduler.tick(at(11, 28, 20, 5)).await.unwrap();
    assert_eq!((s.enqueued, s.deduplicated), (0, 6), "{s:?}");
    assert_eq!(app.jobs().await.len(), 6);

    // 15:00 UTC on the 29th: Tokyo's midnight (its 30th), 07:00 on the 29th in Los Angeles. Both
    // ranges move on by a day.
    let s = scheduler.tick(at(11, 29, 15, 0)).await.unwrap();
    assert_eq!(s.enqueued, 6, "{s:?}");
    assert_eq!(
        job_sets(&app).await,
        sets(vec![
            set("tyo", day(11, 28), day(11, 29)),
            set("tyo", day(11, 29), day(11, 30)),
            set("lax", day(11, 27), day(11, 28)),
            set("lax", day(11, 28), day(11, 29)),
        ])
    );
    app.wait_until_idle(Duration::from_secs(60)).await;
    let jobs = app.jobs().await;
    assert!(jobs.iter().all(|j| j.status == "SUCCEEDED"), "{jobs:#?}");
    // A two-day job writes both days.
    let mut conn = app.conn().await;
    for d in [day(11, 29), day(11, 30)] {
        assert!(
            writes::daily_row(&mut conn, "CAMPAIGN", "tyo-cmp-1", d)
                .await
                .unwrap()
                .is_some(),
            "{d}"
        );
    }
    drop(conn);
    app.shutdown().await;
}

async fn mock_connections_keep_todays_single_day(backend: Backend) {
    let app = app(backend)
        .with_catalog(seller_catalog("tyo"))
        .spawn()
        .await;
    set_timezone(&mut app.conn().await, "tyo-conn", "Asia/Tokyo").await;
    // 05:00 on the 29th in Tokyo: today only, and no lookback (off for the mock).
    let s = app.app().scheduler().tick(at(11, 28, 20, 0)).await.unwrap();
    assert_eq!((s.enqueued, s.lookback), (3, 0), "{s:?}");
    assert_eq!(job_sets(&app).await, set("tyo", day(11, 29), day(11, 29)));
    app.shutdown().await;
}

async fn lookback_days_default_by_provider_and_an_explicit_value_wins(backend: Backend) {
    // Meta, nothing set: 28 days before the local today, at 10:00 UTC (past 04:00 in UTC).
    let app = app(backend)
        .with_catalog(seller_catalog("s"))
        .with_settings(|s| {
            s.provider = ProviderKind::Meta;
            s.stats.aggregation = Aggregation::Latest;
        })
        .spawn()
        .await;
    assert_eq!(app.settings.stats.lookback_days, None);
    assert_eq!(app.settings.lookback_days(), 28);
    let s = app.app().scheduler().tick(at(11, 28, 10, 0)).await.unwrap();
    assert_eq!((s.enqueued, s.lookback), (6, 3), "{s:?}");
    assert_eq!(
        job_sets(&app).await,
        sets(vec![
            set("s", day(10, 31), day(11, 27)),
            set("s", day(11, 27), day(11, 28)),
        ])
    );
    // The 28-day jobs run (on the mock's numbers) and write every day of the range.
    app.wait_until_idle(Duration::from_secs(60)).await;
    let jobs = app.jobs().await;
    assert!(jobs.iter().all(|j| j.status == "SUCCEEDED"), "{jobs:#?}");
    let mut conn = app.conn().await;
    for d in [day(10, 31), day(11, 27)] {
        assert!(writes::daily_row(&mut conn, "AD", "s-ad-1", d)
            .await
            .unwrap()
            .is_some());
    }
    drop(conn);
    app.shutdown().await;

    // Meta with an explicit value: it wins.
    let app = app_with_lookback(backend, ProviderKind::Meta, Some(3)).await;
    assert_eq!(app.settings.lookback_days(), 3);
    app.app().scheduler().tick(at(11, 28, 10, 0)).await.unwrap();
    assert_eq!(
        job_sets(&app).await,
        sets(vec![
            set("s", day(11, 25), day(11, 27)),
            set("s", day(11, 27), day(11, 28)),
        ])
    );
    app.shutdown().await;

    // The mock, nothing set: no lookback; set explicitly, it runs.
    let app = app_with_lookback(backend, ProviderKind::Mock, None).await;
    assert_eq!(app.settings.lookback_days(), 0);
    let s = app.app().scheduler().tick(at(11, 28, 10, 0)).await.unwrap();
    assert_eq!((s.enqueued, s.lookback), (3, 0), "{s:?}");
    app.shutdown().await;
    let app = app_with_lookback(backend, ProviderKind::Mock, Some(2)).await;
    let s = app.app().scheduler().tick(at(11, 28, 10, 0)).await.unwrap();
    assert_eq!((s.enqueued, s.lookback), (6, 3), "{s:?}");
    assert_eq!(
        job_sets(&app).await,
        sets(vec![
            set("s", day(11, 26), day(11, 27)),
            set("s", day(11, 28), day(11, 28)),
        ])
    );
    app.shutdown().await;
}

async fn app_with_lookback(backend: Backend, provider: ProviderKind, days: Option<u32>) -> TestApp {
    app(backend)
        .with_catalog(seller_catalog("s"))
        .with_settings(move |s| {
            s.provider = provider;
            s.stats.aggregation = Aggregation::Latest;
            s.stats.lookback_days = days;
        })
        .spawn()
        .await
}

/// `ads-stats config` prints the lookback the service runs with, for Meta and for the mock.
#[tokio::test]
async fn config_prints_the_effective_lookback_days() {
    let config = |envs: &'static [(&'static str, &'static str)]| async move {
        let out = ads_stats()
            .arg("config")
            .envs(envs.iter().copied())
            .output()
            .await
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = config(&[
        ("ADS_STATS_PROVIDER", "meta"),
        ("ADS_STATS_STATS__AGGREGATION", "latest"),
    ])
    .await;
    assert!(text.contains("lookback_days = 28  # default\n"), "{text}");
    assert!(text.contains("lookback_hour = 4  # "), "{text}");
    let text = config(&[]).await;
    assert!(text.contains("lookback_days = 0  # default\n"), "{text}");
    let text = config(&[
        ("ADS_STATS_PROVIDER", "meta"),
        ("ADS_STATS_STATS__AGGREGATION", "latest"),
        ("ADS_STATS_STATS__LOOKBACK_DAYS", "5"),
    ])
    .await;
    assert!(
        text.contains("lookback_days = 5  # environment variable ADS_STATS_STATS__LOOKBACK_DAYS"),
        "{text}"
    );
}

async fn lookback_waits_for_lookback_hour_in_the_account_zone(backend: Backend) {
    let app = spawn_meta_two_zones(backend, TestProvider::new(Duration::ZERO, 0), Some(3)).await;
    assert_eq!(app.settings.stats.lookback_hour, 4, "the default hour");
    let scheduler = app.app().scheduler();
    let mut expected: Vec<(String, NaiveDate, NaiveDate)> = Vec::new();
    let tick = async |now: DateTime<Utc>, lookback: usize| {
        let s = scheduler.tick(now).await.unwrap();
        assert_eq!(s.lookback, lookback, "at {now}: {s:?}");
    };

    // 18:30 UTC on the 28th, one instant: 03:30 on the 29th in Tokyo (not yet), 10:30 on the
    // 28th in Los Angeles (due).
    tick(at(11, 28, 18, 30), 3).await;
    expected.push(("lax".into(), day(11, 25), day(11, 27)));
    // 03:55 in Tokyo: still not.
    tick(at(11, 28, 18, 55), 0).await;
    // 04:00 in Tokyo: the first tick at the hour queues its day's lookback, once.
    tick(at(11, 28, 19, 0), 3).await;
    expected.push(("tyo".into(), day(11, 26), day(11, 28)));
    tick(at(11, 28, 19, 5), 0).await;
    assert_eq!(lookback_ranges(&app).await, sorted(expected.clone()));
    let mut conn = app.conn().await;
    assert_eq!(marker(&mut conn, "tyo-conn").await, Some(day(11, 29)));
    assert_eq!(marker(&mut conn, "lax-conn").await, Some(day(11, 28)));
    drop(conn);

    // Los Angeles' midnight (08:00 UTC on the 29th) and 03:55 there: not before the hour.
    tick(at(11, 29, 8, 0), 0).await;
    tick(at(11, 29, 11, 55), 0).await;
    // 04:00 there.
    tick(at(11, 29, 12, 0), 3).await;
    expected.push(("lax".into(), day(11, 26), day(11, 28)));
    // Tokyo's midnight (15:00 UTC), then its 04:00 (19:00 UTC).
    tick(at(11, 29, 15, 0), 0).await;
    tick(at(11, 29, 19, 0), 3).await;
    expected.push(("tyo".into(), day(11, 27), day(11, 29)));
    tick(at(11, 29, 23, 0), 0).await;
    assert_eq!(lookback_ranges(&app).await, sorted(expected));
    app.wait_until_idle(Duration::from_secs(60)).await;
    app.shutdown().await;
}

/// (seller, from, to) of the lookback jobs: with Meta, the ranges that are not yesterday..today.
async fn lookback_ranges(app: &TestApp) -> Vec<(String, NaiveDate, NaiveDate)> {
    let mut out: Vec<(String, NaiveDate, NaiveDate)> = app
        .jobs()
        .await
        .into_iter()
        .filter(|j| j.level == "CAMPAIGN" && (j.date_to - j.date_from).num_days() != 1)
        .map(|j| (j.seller_id, j.date_from, j.date_to))
        .collect();
    out.sort();
    out
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

// ---------- a campaign paused today, on the fake Graph API ----------

/// `act_1001/insights` with one ad of campaign 120001 (ad set 230001, ad 340001) that delivered
/// on the 27th and the 28th only, its numbers times `round` (late conversions and spend that
/// Meta adds after the fact); only rows inside the asked `time_range`.
fn paused_campaign_account(
    round: Arc<AtomicI64>,
) -> impl Fn(usize, &Seen, &str) -> Reply + Send + Sync + 'static {
    move |_, seen, _| {
        if !seen.path.ends_with("/act_1001/insights") {
            return Reply::json(
                404,
                serde_json::json!({"error": {"message": "unknown path", "code": 100}}),
            );
        }
        let range: serde_json::Value =
            serde_json::from_str(seen.query.get("time_range").map_or("{}", String::as_str))
                .unwrap();
        let (since, until) = (
            range["since"].as_str().unwrap_or("").to_string(),
            range["until"].as_str().unwrap_or("").to_string(),
        );
        let k = round.load(Ordering::SeqCst);
        let rows: Vec<serde_json::Value> = DELIVERED
            .iter()
            .filter(|(d, _, _)| since.as_str() <= *d && *d <= until.as_str())
            .map(|(d, spend, impressions)| {
                let cents = spend * k;
                serde_json::json!({
                    "campaign_id": "120001", "adset_id": "230001", "ad_id": "340001",
                    "date_start": d, "date_stop": d,
                    "spend": format!("{}.{:02}", cents / 100, cents % 100),
                    "impressions": (impressions * k).to_string(), "inline_link_clicks": "3",
                })
            })
            .collect();
        Reply::json(200, serde_json::json!({"data": rows}))
    }
}

/// (date, spend in cents, impressions) of the fake's one delivering ad.
const DELIVERED: [(&str, i64, i64); 2] = [("2026-11-27", 1_234, 500), ("2026-11-28", 2_468, 900)];

async fn a_seller_whose_campaigns_were_paused_today_still_has_yesterday_synced(backend: Backend) {
    let round = Arc::new(AtomicI64::new(1));
    let graph = FakeGraph::start(paused_campaign_account(round.clone())).await;
    let meta = meta_settings(&graph.url);
    let provider = Arc::new(MetaProvider::new(&meta).unwrap());
    let app = app(backend)
        .with_catalog(meta_catalog())
        .with_settings(move |s| {
            s.provider = ProviderKind::Meta;
            s.stats.aggregation = Aggregation::Latest;
            s.stats.lookback_days = Some(3);
            s.meta = meta;
        })
        .with_provider(provider)
        .spawn()
        .await;
    connect_account(&mut app.conn().await).await;
    let scheduler = app.app().scheduler();

    // The 28th (the account's zone is UTC, as the fake's account read says): the seller
    // delivers; yesterday..today and the lookback are synced.
    let s = scheduler.tick(at(11, 28, 10, 0)).await.unwrap();
    assert_eq!((s.sellers, s.enqueued, s.lookback), (1, 6, 3), "{s:?}");
    app.wait_until_idle(Duration::from_secs(60)).await;
    let jobs = app.jobs().await;
    assert!(jobs.iter().all(|j| j.status == "SUCCEEDED"), "{jobs:#?}");
    let mut conn = app.conn().await;
    let spend =
        |row: Option<ads_stats::db::models::DailyStat>| row.expect("a daily row").spend_cents;
    assert_eq!(
        spend(
            writes::daily_row(&mut conn, "CAMPAIGN", "s1-cmp-1", day(11, 28))
                .await
                .unwrap()
        ),
        2_468
    );

    // The morning of the 29th: every campaign of the seller was paused, none delivers. Meta
    // keeps adding to the 28th (round 2).
    for k in 1..=4 {
        catalog::set_status(
            &mut conn,
            HierarchyTable::Campaigns,
            &format!("s1-cmp-{k}"),
            "PAUSED",
        )
        .await
        .unwrap();
    }
    drop(conn);
    round.store(2, Ordering::SeqCst);
    let s = scheduler.tick(at(11, 29, 5, 0)).await.unwrap();
    assert_eq!(
        (s.sellers, s.enqueued, s.lookback),
        (1, 6, 3),
        "still scheduled: {s:?}"
    );
    app.wait_until_idle(Duration::from_secs(60)).await;
    let jobs = app.jobs().await;
    assert!(jobs.iter().all(|j| j.status == "SUCCEEDED"), "{jobs:#?}");
    assert!(jobs
        .iter()
        .any(|j| j.job_id == "sync__s1__2026-11-28__2026-11-29__CAMPAIGN"));
    // Yesterday's fresh numbers are written at every level for the paused campaign's objects.
    let mut conn = app.conn().await;
    for (level, entity) in [
        ("CAMPAIGN", "s1-cmp-1"),
        ("ADSET", "s1-adset-1"),
        ("AD", "s1-ad-1"),
    ] {
        let row = writes::daily_row(&mut conn, level, entity, day(11, 28))
            .await
            .unwrap()
            .expect("a daily row");
        assert_eq!(
            (row.spend_cents, row.impressions),
            (2 * 2_468, 2 * 900),
            "{level}"
        );
        let row = writes::daily_row(&mut conn, level, entity, day(11, 27))
            .await
            .unwrap()
            .expect("a daily row");
        assert_eq!(
            (row.spend_cents, row.impressions),
            (2 * 1_234, 2 * 500),
            "{level}, lookback"
        );
    }
    drop(conn);

    // The seller stays scheduled while a scheduled job can reach its last delivering day (the
    // 28th: the lookback of the 1st covers the 28th to the 30th)...
    let s = scheduler.tick(at(12, 1, 10, 0)).await.unwrap();
    assert_eq!((s.sellers, s.enqueued, s.lookback), (1, 6, 3), "{s:?}");
    app.wait_until_idle(Duration::from_secs(60)).await;
    // ...and no longer once none can (yesterday and 3 days of lookback from the 3rd: the 29th).
    let s = scheduler.tick(at(12, 3, 10, 0)).await.unwrap();
    assert_eq!((s.sellers, s.enqueued, s.lookback), (0, 0, 0), "{s:?}");
    assert!(graph.requests() > 0);
    app.shutdown().await;
}
