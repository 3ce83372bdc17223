//! Issue 16 item 5: Meta's async report runs. The fake (`meta::meta_graph`) refuses large
//! synchronous queries as Meta does, serves `POST act_1001/insights` → `report_run_id`,
//! `GET /{run}` (running, then a final status) and `GET /{run}/insights` with paging. Each test
//! runs on both backends; the last one is the issue's done-when test.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ads_stats::config::{MetaSettings, Secret};
use ads_stats::db::schema::{ad_connections, sync_jobs};
use ads_stats::db::{self, connections};
use ads_stats::db_run;
use ads_stats::domain::Level;
use chrono::NaiveDate;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::helpers::{Backend, TestApp};
use crate::meta::{
    account_ads, account_app, account_levels, assert_sellpages_add_up, daily_rows, enqueue,
    meta_graph, raw, reader_sums_of, run_id, totals_of, unmatched_rows_metric, AsyncMeta,
    AsyncRuns, FakeAd, FakeDay, FakeGraph, Seen, APP_SECRET, CONNECTION, SELLER, TOKEN_PROOF,
};
use crate::on_both_backends;

on_both_backends!(
    each_refusal_code_switches_to_an_async_run,
    a_range_longer_than_async_after_days_goes_async_without_trying_sync,
    failed_and_skipped_runs_fail_the_attempt,
    async_timeout_gives_up_and_the_retry_polls_the_same_run,
    a_retried_attempt_polls_the_same_run,
    a_kept_run_meta_no_longer_knows_is_replaced,
    appsecret_proof_on_the_account_read_and_every_async_call,
    done_when_a_28_day_sync_through_an_async_run_matches_the_ad_rows_to_the_cent,
    the_scheduled_28_day_lookback_goes_through_an_async_run_to_the_cent,
);

/// The fake over `ads` with `opts`, and what its async side records.
async fn graph(
    ads: Vec<FakeAd>,
    secret: bool,
    opts: AsyncMeta,
) -> (FakeGraph, Arc<Mutex<AsyncRuns>>) {
    let runs = Arc::new(Mutex::new(AsyncRuns::default()));
    let graph = FakeGraph::start(meta_graph(ads, secret, opts, runs.clone())).await;
    (graph, runs)
}

/// Polls come fast in tests (Meta's runs take seconds to minutes; ours a few polls).
fn fast_polls(m: &mut MetaSettings) {
    m.async_poll_interval = Duration::from_millis(10);
}

/// The synchronous insights queries (first pages) the fake received.
fn sync_queries(graph: &FakeGraph) -> Vec<Seen> {
    graph
        .seen()
        .into_iter()
        .filter(|s| s.method == "GET" && s.path == "/v23.0/act_1001/insights")
        .filter(|s| !s.query.contains_key("after"))
        .collect()
}

/// `sync_jobs.report_run_id` of every job, by level.
async fn kept_runs(app: &TestApp) -> HashMap<String, Option<String>> {
    let mut conn = app.conn().await;
    let conn = &mut conn;
    db_run!(conn, {
        sync_jobs::table
            .select((sync_jobs::level, sync_jobs::report_run_id))
            .load::<(String, Option<String>)>(conn)
            .await
            .unwrap()
    })
    .into_iter()
    .collect()
}

fn kept(run: usize) -> Option<String> {
    Some(format!(r#"{{"{CONNECTION}":"{}"}}"#, run_id(run)))
}

/// Each of Meta's three "too much data" refusals of the synchronous query (code 100 subcodes
/// 1487534 and 1504018, code 2 subcode 1504038) makes the same attempt ask for an async run
/// with the same parameters; its rows are written as the synchronous ones would be.
async fn each_refusal_code_switches_to_an_async_run(backend: Backend) {
    for refusal in [(100, 1_487_534), (100, 1_504_018), (2, 1_504_038)] {
        let opts = AsyncMeta {
            sync_max_days: Some(1),
            refusal,
            ..AsyncMeta::default()
        };
        let (graph, runs) = graph(account_ads(), false, opts).await;
        let app = account_app(backend, &graph, fast_polls).await;
        enqueue(&app, Level::Campaign, "2026-11-20", "2026-11-21").await;
        app.wait_until_idle(Duration::from_secs(20)).await;
        let jobs = app.jobs().await;
        assert_eq!(
            (jobs[0].status.as_str(), jobs[0].attempts),
            ("SUCCEEDED", 1),
            "{refusal:?}: {jobs:#?}"
        );
        let sync = sync_queries(&graph);
        assert_eq!(sync.len(), 1, "{refusal:?}: one refused synchronous query");
        let runs = runs.lock().unwrap().clone();
        assert_eq!(runs.posts.len(), 1, "{refusal:?}");
        // The same parameters, POSTed.
        for key in [
            "level",
            "time_range",
            "time_increment",
            "fields",
            "filtering",
            "use_unified_attribution_setting",
            "action_report_time",
        ] {
            assert_eq!(runs.posts[0].get(key), sync[0].query.get(key), "{key}");
        }
        assert!(runs.polls.len() >= 3, "running twice, then completed");
        assert!(runs.reads >= 2, "paged at 2 rows a page: {}", runs.reads);
        assert_eq!(
            raw(&app, "CAMPAIGN", "s1-cmp-2", "2026-11-21").await[0].spend_cents,
            7010,
            "{refusal:?}"
        );
        drop(app.shutdown().await);
    }
}

/// A job over more days than `meta.async_after_days` (first and last day counted) asks for an
/// async run without trying the synchronous query; a job of exactly that many days asks
/// synchronously.
async fn a_range_longer_than_async_after_days_goes_async_without_trying_sync(backend: Backend) {
    let (graph, runs) = graph(account_ads(), false, AsyncMeta::default()).await;
    let app = account_app(backend, &graph, |m| {
        fast_polls(m);
        m.async_after_days = 2;
    })
    .await;
    enqueue(&app, Level::Campaign, "2026-11-20", "2026-11-21").await;
    app.wait_until_idle(Duration::from_secs(20)).await;
    assert_eq!(runs.lock().unwrap().posts.len(), 0, "2 days: synchronous");
    assert_eq!(sync_queries(&graph).len(), 1);
    let sync_before = graph.seen().len();

    enqueue(&app, Level::Campaign, "2026-11-19", "2026-11-21").await;
    app.wait_until_idle(Duration::from_secs(20)).await;
    let jobs = app.jobs().await;
    assert!(
        jobs.iter()
            .all(|j| j.status == "SUCCEEDED" && j.attempts == 1),
        "{jobs:#?}"
    );
    let later = &graph.seen()[sync_before..];
    assert!(
        later
            .iter()
            .all(|s| s.path != "/v23.0/act_1001/insights" || s.method == "POST"),
        "3 days: no synchronous query: {later:#?}"
    );
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.posts.len(), 1);
    let range: serde_json::Value = serde_json::from_str(&runs.posts[0]["time_range"]).unwrap();
    assert_eq!(
        range,
        serde_json::json!({"since": "2026-11-19", "until": "2026-11-21"})
    );
    assert_eq!(runs.posts[0]["level"], "ad");
    assert!(
        !runs.posts[0].contains_key("limit"),
        "paging belongs to the reads"
    );
    assert!(runs.polls.iter().all(|p| *p == run_id(0)));
    assert_eq!(
        raw(&app, "CAMPAIGN", "s1-cmp-2", "2026-11-21")
            .await
            .iter()
            .map(|r| r.spend_cents)
            .collect::<Vec<_>>(),
        vec![7010, 7010],
        "both syncs wrote the same numbers"
    );
    drop(app.shutdown().await);
}

/// A run that ends `Job Failed` or `Job Skipped` fails the attempt with nothing written; the run
/// is dropped from the job, so each retry starts a new one (and meets the same end here).
async fn failed_and_skipped_runs_fail_the_attempt(backend: Backend) {
    for outcome in ["Job Failed", "Job Skipped"] {
        let opts = AsyncMeta {
            outcome,
            ..AsyncMeta::default()
        };
        let (graph, runs) = graph(account_ads(), false, opts).await;
        let app = account_app(backend, &graph, |m| {
            fast_polls(m);
            m.async_after_days = 1;
        })
        .await;
        enqueue(&app, Level::Campaign, "2026-11-20", "2026-11-21").await;
        app.wait_until_idle(Duration::from_secs(20)).await;
        let jobs = app.jobs().await;
        assert_eq!(
            (jobs[0].status.as_str(), jobs[0].attempts),
            ("FAILED", 3),
            "{outcome}: {jobs:#?}"
        );
        assert_eq!(
            jobs[0].last_error.as_deref(),
            Some("the stats provider request failed")
        );
        let runs = runs.lock().unwrap().clone();
        assert_eq!(runs.posts.len(), 3, "{outcome}: a new run per attempt");
        assert_eq!(runs.reads, 0, "{outcome}: no rows read");
        assert_eq!(kept_runs(&app).await["CAMPAIGN"], None, "{outcome}");
        assert_eq!(app.tier_counts(SELLER).await, (0, 0, 0), "{outcome}");
        drop(app.shutdown().await);
    }
}

/// A run still going after `meta.async_timeout` fails the attempt; the run stays on the job and
/// every retry polls it again instead of starting another.
async fn async_timeout_gives_up_and_the_retry_polls_the_same_run(backend: Backend) {
    let opts = AsyncMeta {
        running_polls: 1_000_000,
        ..AsyncMeta::default()
    };
    let (graph, runs) = graph(account_ads(), false, opts).await;
    let app = account_app(backend, &graph, |m| {
        fast_polls(m);
        m.async_after_days = 1;
        m.async_timeout = Duration::from_millis(150);
    })
    .await;
    enqueue(&app, Level::Campaign, "2026-11-20", "2026-11-21").await;
    app.wait_until_idle(Duration::from_secs(20)).await;
    let jobs = app.jobs().await;
    assert_eq!(
        (jobs[0].status.as_str(), jobs[0].attempts),
        ("FAILED", 3),
        "{jobs:#?}"
    );
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.posts.len(), 1, "one run for the three attempts");
    assert!(runs.polls.len() >= 3 * 2, "{:?}", runs.polls);
    assert!(runs.polls.iter().all(|p| *p == run_id(0)));
    assert_eq!(kept_runs(&app).await["CAMPAIGN"], kept(0));
    assert_eq!(app.tier_counts(SELLER).await, (0, 0, 0));
    drop(app.shutdown().await);
}

/// The first attempt is cut off after its run started (its first poll answers after
/// `meta.timeout`); the retry polls the same run, reads it and writes the numbers: Meta saw
/// exactly one POST.
async fn a_retried_attempt_polls_the_same_run(backend: Backend) {
    let opts = AsyncMeta {
        first_poll_delay: Duration::from_secs(3),
        ..AsyncMeta::default()
    };
    let (graph, runs) = graph(account_ads(), false, opts).await;
    let app = account_app(backend, &graph, |m| {
        fast_polls(m);
        m.async_after_days = 1;
    })
    .await;
    enqueue(&app, Level::Campaign, "2026-11-20", "2026-11-21").await;
    app.wait_until_idle(Duration::from_secs(20)).await;
    let jobs = app.jobs().await;
    assert_eq!(
        (jobs[0].status.as_str(), jobs[0].attempts),
        ("SUCCEEDED", 2),
        "{jobs:#?}"
    );
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.posts.len(), 1, "the retry started no second run");
    assert!(runs.polls.iter().all(|p| *p == run_id(0)));
    assert_eq!(kept_runs(&app).await["CAMPAIGN"], kept(0));
    assert_eq!(
        raw(&app, "CAMPAIGN", "s1-cmp-2", "2026-11-21").await[0].spend_cents,
        7010
    );
    drop(app.shutdown().await);
}

/// A kept run Meta no longer knows (it keeps runs for a limited time; it answers code 100
/// subcode 33, which elsewhere means a missing permission) is not an error of the connection: the
/// retry starts a new run, reads it, and the connection stays ACTIVE.
async fn a_kept_run_meta_no_longer_knows_is_replaced(backend: Backend) {
    let opts = AsyncMeta {
        first_poll_delay: Duration::from_secs(3),
        forget_first_run: true,
        ..AsyncMeta::default()
    };
    let (graph, runs) = graph(account_ads(), false, opts).await;
    let app = account_app(backend, &graph, |m| {
        fast_polls(m);
        m.async_after_days = 1;
    })
    .await;
    enqueue(&app, Level::Campaign, "2026-11-20", "2026-11-21").await;
    app.wait_until_idle(Duration::from_secs(20)).await;
    let jobs = app.jobs().await;
    assert_eq!(
        (jobs[0].status.as_str(), jobs[0].attempts),
        ("SUCCEEDED", 2),
        "{jobs:#?}"
    );
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.posts.len(), 2, "the forgotten run was replaced once");
    assert_eq!(
        runs.polls.iter().filter(|p| **p == run_id(0)).count(),
        2,
        "the cut-off poll, then the one Meta answered `does not exist`"
    );
    assert_eq!(kept_runs(&app).await["CAMPAIGN"], kept(1));
    let status: String = {
        let mut conn = app.conn().await;
        let conn = &mut conn;
        db_run!(conn, {
            ad_connections::table
                .find(CONNECTION)
                .select(ad_connections::status)
                .first(conn)
                .await
                .unwrap()
        })
    };
    assert_eq!(status, "ACTIVE");
    assert_eq!(
        raw(&app, "CAMPAIGN", "s1-cmp-2", "2026-11-21").await[0].spend_cents,
        7010
    );
    drop(app.shutdown().await);
}

/// With `meta.app_secret` set, the account read, the run's POST, every poll and every page read
/// carry Meta's proof (the fake refuses any call without it).
async fn appsecret_proof_on_the_account_read_and_every_async_call(backend: Backend) {
    let (graph, runs) = graph(account_ads(), true, AsyncMeta::default()).await;
    let app = account_app(backend, &graph, |m| {
        fast_polls(m);
        m.async_after_days = 1;
        m.app_secret = Secret::new(APP_SECRET);
    })
    .await;
    {
        let mut conn = app.conn().await;
        connections::schedule_account_read(&mut conn, CONNECTION, db::now_utc())
            .await
            .unwrap();
    }
    enqueue(&app, Level::Campaign, "2026-11-20", "2026-11-21").await;
    app.wait_until_idle(Duration::from_secs(20)).await;
    let jobs = app.jobs().await;
    assert_eq!(
        (jobs[0].status.as_str(), jobs[0].attempts),
        ("SUCCEEDED", 1),
        "{jobs:#?}"
    );
    let reads = graph.account_reads();
    assert!(!reads.is_empty(), "the due account read ran");
    let seen = graph.seen();
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.posts.len(), 1);
    assert!(runs.polls.len() >= 3 && runs.reads >= 2);
    assert_eq!(seen.len(), 1 + runs.polls.len() + runs.reads);
    for s in reads.iter().chain(&seen) {
        assert_eq!(
            s.query.get("appsecret_proof").map(String::as_str),
            Some(TOKEN_PROOF),
            "{} {}",
            s.method,
            s.path
        );
    }
    assert_eq!(
        raw(&app, "CAMPAIGN", "s1-cmp-2", "2026-11-21").await[0].spend_cents,
        7010
    );
    drop(app.shutdown().await);
}

/// The fake account's ads over the 28 days from `from`: each ad's two template days of
/// [`account_ads`] alternate (even days the first, odd days the second), with spend,
/// impressions and clicks growing week by week so no two weeks are alike.
fn ads_over_28_days(from: NaiveDate) -> Vec<FakeAd> {
    let template = account_ads();
    let first_day = template
        .iter()
        .flat_map(|a| a.days.iter().map(|d| d.date))
        .min()
        .unwrap();
    template
        .into_iter()
        .map(|ad| {
            let mut days = Vec::new();
            for d in &ad.days {
                let odd = i64::from(d.date != first_day);
                for week in 0..14 {
                    let date = from + chrono::Duration::days(2 * week + odd);
                    let date: &'static str = Box::leak(date.to_string().into_boxed_str());
                    days.push(FakeDay {
                        date,
                        spend: d.spend + week * 13,
                        impressions: d.impressions + week * 100,
                        clicks: d.clicks + week,
                        ..d.clone()
                    });
                }
            }
            FakeAd { days, ..ad }
        })
        .collect()
}

/// ISSUE 16 DONE-WHEN: a manual sync of the three levels over 28 days (today-27 .. today) for the
/// fake account goes through async report runs (the range is longer than
/// `meta.async_after_days`, and the fake would refuse it synchronously), and every number written
/// equals to the cent the sums a reader computes from the fake's ad rows: ad, ad-set and campaign
/// rows in `ad_stats_daily` and the sellpage rollup in `sellpage_stats_daily`, with ads of mixed
/// attribution, paused/archived/deleted ads and several pages.
async fn done_when_a_28_day_sync_through_an_async_run_matches_the_ad_rows_to_the_cent(
    backend: Backend,
) {
    let today = chrono::Utc::now().date_naive();
    let from = today - chrono::Duration::days(27);
    let ads = ads_over_28_days(from);
    let opts = AsyncMeta {
        sync_max_days: Some(7),
        ..AsyncMeta::default()
    };
    let (graph, runs) = graph(ads.clone(), false, opts).await;
    let app = account_app(backend, &graph, fast_polls).await;
    let (from_s, to_s) = (from.to_string(), today.to_string());
    for level in [Level::Campaign, Level::Adset, Level::Ad] {
        enqueue(&app, level, &from_s, &to_s).await;
    }
    app.wait_until_idle(Duration::from_secs(60)).await;
    let jobs = app.jobs().await;
    assert!(
        jobs.iter()
            .all(|j| j.status == "SUCCEEDED" && j.attempts == 1),
        "{jobs:#?}"
    );
    assert!(sync_queries(&graph).is_empty(), "no synchronous query");
    {
        let runs = runs.lock().unwrap().clone();
        assert_eq!(runs.posts.len(), 3, "one async run per level job");
        assert!(runs.reads >= 3 * 10, "many pages of 2 rows: {}", runs.reads);
    }
    let kept = kept_runs(&app).await;
    assert_eq!(kept.len(), 3);
    assert!(kept.values().all(Option::is_some), "{kept:?}");

    let dates: Vec<NaiveDate> = from.iter_days().take(28).collect();
    assert_eq!(dates.last(), Some(&today));
    let mut unmatched_total = 0;
    let mut campaign_sums = HashMap::new();
    for (name, level, ours, delivering) in account_levels() {
        let (mut expected, unmatched) = reader_sums_of(&ads, level, &ours);
        unmatched_total += unmatched;
        // A delivering entity without rows on a day reads zeros; the others only have their rows.
        for id in delivering {
            for date in &dates {
                expected.entry((id.to_string(), *date)).or_default();
            }
        }
        let written: HashMap<(String, NaiveDate), [i64; 8]> = daily_rows(&app, name)
            .await
            .iter()
            .map(|d| ((d.entity_id.clone(), d.stat_date), totals_of(d)))
            .collect();
        let mut keys: Vec<_> = expected.keys().collect();
        keys.sort();
        for key in keys {
            assert_eq!(written.get(key), Some(&expected[key]), "{name} {key:?}");
        }
        assert_eq!(written.len(), expected.len(), "{name}");
        if level == Level::Campaign {
            campaign_sums = expected;
        }
    }
    // cmp-1's ad sets differ in attribution: only ad rows carry its purchases, every day.
    for date in &dates {
        assert!(
            campaign_sums[&("s1-cmp-1".to_string(), *date)][6] > 0,
            "{date}"
        );
    }
    // The PAUSED campaign's spend is kept.
    assert!(campaign_sums[&("s1-cmp-5".to_string(), from)][0] > 0);
    // Sellpages add their campaigns up.
    assert_sellpages_add_up(&app, &campaign_sums, &dates).await;
    // Rows of ads we do not know were counted, never written.
    assert_eq!(unmatched_total, 8 * 14);
    assert_eq!(
        unmatched_rows_metric(&app, unmatched_total as f64).await,
        unmatched_total as f64
    );
    drop(app.shutdown().await);
}

/// Issue 16 items 4 and 5 together: with `provider = "meta"` and `stats.lookback_days` left at its
/// default, the first tick after `stats.lookback_hour` queues yesterday+today (synchronous, two
/// days) and the 28 days before today, which Meta only answers through an async report run; the
/// daily rows of those 28 days equal the fake's ad rows to the cent at all three levels.
async fn the_scheduled_28_day_lookback_goes_through_an_async_run_to_the_cent(backend: Backend) {
    use ads_stats::config::{Aggregation, ProviderKind};
    use ads_stats::providers::MetaProvider;
    use chrono::TimeZone;

    use crate::helpers::app as test_app;
    use crate::meta::{account_catalog, connect_account, meta_settings, set_account_ids};

    let today = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
    let from = today - chrono::Duration::days(28);
    let yesterday = today.pred_opt().unwrap();
    let ads = ads_over_28_days(from);
    let opts = AsyncMeta {
        sync_max_days: Some(7),
        ..AsyncMeta::default()
    };
    let (graph, runs) = graph(ads.clone(), false, opts).await;
    let mut meta = meta_settings(&graph.url);
    fast_polls(&mut meta);
    let provider = std::sync::Arc::new(MetaProvider::new(&meta).unwrap());
    let app = test_app(backend)
        .with_catalog(account_catalog())
        .with_settings(move |s| {
            s.provider = ProviderKind::Meta;
            s.stats.aggregation = Aggregation::Latest;
            s.stats.lookback_days = None;
            s.meta = meta;
        })
        .with_provider(provider)
        .spawn()
        .await;
    connect_account(&mut app.conn().await).await;
    set_account_ids(&app).await;

    // 03:59 in the account's zone (UTC): today's jobs, no lookback yet.
    let scheduler = app.app().scheduler();
    let early = chrono::Utc
        .with_ymd_and_hms(2026, 11, 29, 3, 59, 0)
        .unwrap();
    let s = scheduler.tick(early).await.unwrap();
    assert_eq!((s.enqueued, s.lookback), (3, 0), "{s:?}");
    app.wait_until_idle(Duration::from_secs(60)).await;
    // 04:05: the 28-day lookback.
    let after = chrono::Utc.with_ymd_and_hms(2026, 11, 29, 4, 5, 0).unwrap();
    let s = scheduler.tick(after).await.unwrap();
    assert_eq!(s.lookback, 3, "{s:?}");
    app.wait_until_idle(Duration::from_secs(60)).await;
    let jobs = app.jobs().await;
    assert!(jobs.iter().all(|j| j.status == "SUCCEEDED"), "{jobs:#?}");
    for level in ["CAMPAIGN", "ADSET", "AD"] {
        let lookback = format!("sync__{SELLER}__{from}__{yesterday}__{level}");
        assert!(
            jobs.iter().any(|j| j.job_id == lookback),
            "{lookback} in {jobs:#?}"
        );
        let recent = format!("sync__{SELLER}__{yesterday}__{today}__{level}");
        assert!(jobs.iter().any(|j| j.job_id == recent), "{recent}");
    }
    // Only the three 28-day jobs went async; the two-day ones were answered synchronously.
    assert_eq!(runs.lock().unwrap().posts.len(), 3);
    assert!(!sync_queries(&graph).is_empty());

    let dates: Vec<NaiveDate> = from.iter_days().take(28).collect();
    assert_eq!(dates.last(), Some(&yesterday));
    for (name, level, ours, _) in account_levels() {
        let (expected, _) = reader_sums_of(&ads, level, &ours);
        let written: HashMap<(String, NaiveDate), [i64; 8]> = daily_rows(&app, name)
            .await
            .iter()
            .map(|d| ((d.entity_id.clone(), d.stat_date), totals_of(d)))
            .collect();
        assert!(!expected.is_empty());
        for (key, sums) in &expected {
            assert!(dates.contains(&key.1), "{key:?}");
            assert_eq!(written.get(key), Some(sums), "{name} {key:?}");
        }
    }
    drop(app.shutdown().await);
}
