//! The Meta provider against a fake Graph API started in the test (port 0): recorded-shape insights
//! pages, throttling with usage headers, an expired token, a 500, a slow answer. Every behaviour
//! runs on both backends; requests the fake received are counted to prove there is no hot loop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ads_stats::config::{Aggregation, MetaSettings, ProviderKind, Secret, Settings};
use ads_stats::crypto::TokenSealer;
use ads_stats::db::catalog::{self, insert_catalog, Catalog, HierarchyTable};
use ads_stats::db::models::{JobRecord, NewAdConnection, NewCampaign, RawStat};
use ads_stats::db::schema::{ad_connections, sync_jobs};
use ads_stats::db::{self, connections, writes, Db, DbConn};
use ads_stats::db_run;
use ads_stats::domain::{Level, Metrics};
use ads_stats::jobs::Trigger;
use ads_stats::pipeline::SyncRequest;
use ads_stats::providers::MetaProvider;
use base64::Engine;
use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::helpers::{
    ads_stats, app, migrated_db, scheduled_sellers, seller_catalog, Backend, TestApp, TestDb,
};
use crate::on_both_backends;

pub(crate) const KEY: [u8; 32] = [42; 32];
pub(crate) const TOKEN: &str = "EAAGm0PX4ZCpsBAPlainTokenThatMustNeverLeak0123456789";
pub(crate) const SELLER: &str = "s1";
pub(crate) const CONNECTION: &str = "s1-conn";
/// The test seller's ad account: Meta's shape (`act_` and digits), the only one a job may ask.
pub(crate) const ACCOUNT: &str = "act_1001";

pub(crate) fn key_b64() -> String {
    base64::engine::general_purpose::STANDARD.encode(KEY)
}

pub(crate) fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

// ---------- the fake Graph API ----------

/// One request the fake received.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) path: String,
    /// The URL's parameters and, for a POST, its form body's (Meta reads both alike).
    pub(crate) query: HashMap<String, String>,
    raw_target: String,
    pub(crate) authorization: Option<String>,
}

/// What the fake answers.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

impl Reply {
    pub(crate) fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    pub(crate) fn header(mut self, name: &'static str, value: serde_json::Value) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }

    fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Script = dyn Fn(usize, &Seen, &str) -> Reply + Send + Sync;

/// A Graph API on 127.0.0.1:0 answering by a script that sees the request number (from 0), the
/// request and the fake's own base URL.
pub(crate) struct FakeGraph {
    pub(crate) url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    count: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
    /// `GET act_{id}` is answered with this (by default an active UTC/USD account), outside the
    /// script and its request numbers: see `meta_account.rs`.
    account: Arc<Mutex<Reply>>,
    account_seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeGraph {
    pub(crate) async fn start(
        script: impl Fn(usize, &Seen, &str) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let script: Arc<Script> = Arc::new(script);
        let account = Arc::new(Mutex::new(crate::meta_account::account_reply(
            "UTC", "USD", 1,
        )));
        let account_seen = Arc::new(Mutex::new(Vec::new()));
        let task = {
            let (seen, count, url) = (seen.clone(), count.clone(), url.clone());
            let (account, account_seen) = (account.clone(), account_seen.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((mut stream, _)) = listener.accept().await else {
                        return;
                    };
                    let (seen, count, url, script) =
                        (seen.clone(), count.clone(), url.clone(), script.clone());
                    let (account, account_seen) = (account.clone(), account_seen.clone());
                    tokio::spawn(async move {
                        let mut buf = Vec::new();
                        let mut chunk = [0u8; 4096];
                        let end = loop {
                            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                break i + 4;
                            }
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        // A POST's form body (async report runs) follows the head.
                        let length: usize = head
                            .split("\r\n")
                            .filter_map(|l| l.split_once(':'))
                            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                            .and_then(|(_, v)| v.trim().parse().ok())
                            .unwrap_or(0);
                        while buf.len() < end + length {
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let request = parse(&head, &buf[end..end + length]);
                        let reply = if crate::meta_account::is_account_read(&request.path) {
                            account_seen.lock().unwrap().push(request.clone());
                            account.lock().unwrap().clone()
                        } else {
                            let n = count.fetch_add(1, Ordering::SeqCst);
                            seen.lock().unwrap().push(request.clone());
                            script(n, &request, &url)
                        };
                        tokio::time::sleep(reply.delay).await;
                        let mut out = format!(
                            "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                            reply.status,
                            reply.body.len()
                        );
                        for (name, value) in &reply.headers {
                            out.push_str(&format!("{name}: {value}\r\n"));
                        }
                        out.push_str("\r\n");
                        out.push_str(&reply.body);
                        let _ = stream.write_all(out.as_bytes()).await;
                        let _ = stream.shutdown().await;
                    });
                }
            })
        };
        Self {
            url,
            seen,
            count,
            task,
            account,
            account_seen,
        }
    }

    /// What `GET act_{id}` answers from now on.
    pub(crate) fn set_account(&self, reply: Reply) {
        *self.account.lock().unwrap() = reply;
    }

    /// The account reads received so far.
    pub(crate) fn account_reads(&self) -> Vec<Seen> {
        self.account_seen.lock().unwrap().clone()
    }

    pub(crate) fn requests(&self) -> usize {
        AtomicUsize::load(&self.count, Ordering::SeqCst)
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FakeGraph {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn parse(head: &str, body: &[u8]) -> Seen {
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let method = first.split_whitespace().next().unwrap_or("GET").to_string();
    let target = first.split_whitespace().nth(1).unwrap_or("/").to_string();
    let url = reqwest::Url::parse(&format!("http://fake{target}")).unwrap();
    let mut query: HashMap<String, String> = url.query_pairs().into_owned().collect();
    if method == "POST" {
        let form = reqwest::Url::parse(&format!("http://fake/?{}", String::from_utf8_lossy(body)))
            .unwrap();
        query.extend(form.query_pairs().into_owned());
    }
    let authorization = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.trim().to_string());
    Seen {
        method,
        path: url.path().to_string(),
        query,
        raw_target: target,
        authorization,
    }
}

pub(crate) fn graph_error(code: i64, subcode: i64, message: &str) -> serde_json::Value {
    serde_json::json!({"error": {"message": message, "type": "OAuthException", "code": code,
        "error_subcode": subcode, "fbtrace_id": "AbCdEfGhIjK"}})
}

fn empty_page() -> Reply {
    Reply::json(200, serde_json::json!({"data": []}))
}

/// A `level=ad` row as Meta sends it: every number a string, and the three ids. `level_id` is the
/// one the test cares about; the other two are made up from it (one ad per row and day).
pub(crate) fn row(
    level_id: (&str, &str),
    date: &str,
    spend: &str,
    impressions: &str,
    link_clicks: &str,
) -> serde_json::Value {
    let mut row = serde_json::json!({
        "campaign_id": format!("1{}", level_id.1), "adset_id": format!("5{}", level_id.1),
        "ad_id": format!("7{}", level_id.1), "date_start": date, "date_stop": date,
        "spend": spend, "impressions": impressions, "inline_link_clicks": link_clicks,
    });
    row[level_id.0] = level_id.1.into();
    row
}

fn actions(list: &[(&str, &str)]) -> serde_json::Value {
    list.iter()
        .map(|(t, v)| serde_json::json!({"action_type": t, "value": v}))
        .collect()
}

// ---------- set-up ----------

pub(crate) fn meta_settings(base_url: &str) -> MetaSettings {
    let mut meta = Settings::defaults_with(|_| {}).unwrap().meta;
    meta.base_url = base_url.to_string();
    meta.token_key = Secret::new(key_b64());
    meta.timeout = Duration::from_millis(400);
    meta.page_size = 2;
    meta
}

/// The test seller with Meta ids on cmp-1..3 (cmp-4 has none), both ad sets and ad 1, and the
/// sealed token.
pub(crate) async fn connect_account(conn: &mut DbConn) {
    for (table, id, ext) in [
        (HierarchyTable::Campaigns, "s1-cmp-1", "120001"),
        (HierarchyTable::Campaigns, "s1-cmp-2", "120002"),
        (HierarchyTable::Campaigns, "s1-cmp-3", "120003"),
        (HierarchyTable::Adsets, "s1-adset-1", "230001"),
        (HierarchyTable::Adsets, "s1-adset-2", "230002"),
        (HierarchyTable::Ads, "s1-ad-1", "340001"),
    ] {
        assert_eq!(
            catalog::set_external_id(conn, table, id, Some(ext))
                .await
                .unwrap(),
            1
        );
    }
    let sealed = TokenSealer::new(&KEY)
        .seal(CONNECTION, &Secret::new(TOKEN))
        .unwrap();
    connections::set_sealed_token(conn, CONNECTION, &sealed)
        .await
        .unwrap();
}

/// The test seller's catalogue, its connection on [`ACCOUNT`].
pub(crate) fn meta_catalog() -> Catalog {
    let mut catalog = seller_catalog(SELLER);
    catalog.connections[0].external_account_id = ACCOUNT.into();
    catalog
}

pub(crate) async fn meta_app(backend: Backend, graph: &FakeGraph) -> TestApp {
    meta_app_with(backend, graph, meta_catalog()).await
}

pub(crate) async fn meta_app_with(
    backend: Backend,
    graph: &FakeGraph,
    catalog: Catalog,
) -> TestApp {
    let meta = meta_settings(&graph.url);
    let provider = Arc::new(MetaProvider::new(&meta).unwrap());
    let app = app(backend)
        .with_catalog(catalog)
        .with_settings(move |s| {
            s.provider = ProviderKind::Meta;
            s.stats.aggregation = Aggregation::Latest;
            s.meta = meta;
        })
        .with_provider(provider)
        .spawn()
        .await;
    connect_account(&mut app.conn().await).await;
    app
}

pub(crate) async fn enqueue(app: &TestApp, level: Level, from: &str, to: &str) {
    let request = SyncRequest {
        seller_id: SELLER.into(),
        level,
        date_from: day(from),
        date_to: day(to),
    };
    app.app()
        .queue()
        .enqueue(&[request], Trigger::Manual)
        .await
        .expect("enqueue");
}

fn job<'a>(jobs: &'a [JobRecord], level: &str) -> &'a JobRecord {
    jobs.iter()
        .find(|j| j.level == level)
        .expect("job of level")
}

async fn connection_row(db: &Db) -> (String, Option<String>, Option<NaiveDateTime>) {
    let mut conn = db.conn().await.unwrap();
    let conn = &mut conn;
    db_run!(conn, {
        ad_connections::table
            .find(CONNECTION)
            .select((
                ad_connections::status,
                ad_connections::access_token_enc,
                ad_connections::paused_until,
            ))
            .first(conn)
            .await
            .unwrap()
    })
}

fn metrics_of(r: &RawStat) -> Metrics {
    Metrics {
        spend_cents: r.spend_cents,
        impressions: r.impressions,
        clicks: r.clicks,
        content_views: r.content_views,
        add_to_cart: r.add_to_cart,
        checkouts: r.checkouts,
        purchases: r.purchases,
        revenue_cents: r.revenue_cents,
        cpm: r.cpm,
        ctr: r.ctr,
        roas: r.roas,
    }
}

pub(crate) async fn raw(app: &TestApp, level: &str, entity: &str, date: &str) -> Vec<RawStat> {
    let mut conn = app.conn().await;
    writes::raw_rows(&mut conn, level, entity, day(date))
        .await
        .unwrap()
}

// ---------- behaviours ----------

on_both_backends!(
    two_pages_map_to_the_cent,
    throttling_pauses_the_account_without_a_hot_loop,
    usage_past_the_threshold_on_the_last_page_keeps_the_rows,
    usage_past_the_threshold_mid_query_defers_the_job,
    throttling_without_usage_headers_pauses_for_the_minimum,
    deleted_and_archived_objects_are_asked_for,
    a_repeated_next_page_fails_the_job,
    a_rejected_request_fails_at_once,
    an_expired_token_marks_only_the_token_that_failed,
    one_meta_id_on_two_entities_fails_the_job,
    an_expired_token_fails_the_job_and_stops_the_connection,
    a_server_error_then_success_writes_once,
    a_slow_answer_past_the_timeout_is_retried,
    no_plain_token_in_the_database_or_the_logs,
    connection_commands_seal_the_token_and_set_the_time_zone,
    each_ad_account_is_asked_with_its_own_token,
    a_redirect_is_a_failed_attempt_and_never_followed,
    a_bad_account_id_fails_the_job_without_a_request,
    connection_commands_refuse_a_bad_account_id,
);

/// Page 1: cmp-1 (event totals and pixel variants both present), a campaign we do not track,
/// cmp-2 (no actions at all); `paging.next` carrying an access_token as Meta's does. Page 2: cmp-1
/// with pixel variants only, cmp-3. Nothing for cmp-2 on the 21st or cmp-3 on the 20th.
fn two_pages(_n: usize, seen: &Seen, base: &str) -> Reply {
    // Rows outside the asked time_range are not sent, as Meta would not.
    let range: serde_json::Value =
        serde_json::from_str(seen.query.get("time_range").map_or("{}", String::as_str)).unwrap();
    let (since, until) = (
        range["since"].as_str().unwrap_or(""),
        range["until"].as_str().unwrap_or(""),
    );
    let in_range = |rows: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
        rows.into_iter()
            .filter(|r| {
                let d = r["date_start"].as_str().unwrap();
                since <= d && d <= until
            })
            .collect()
    };
    if seen.query.get("after").map(String::as_str) != Some("PAGE2") {
        let mut cmp1 = row(
            ("campaign_id", "120001"),
            "2026-11-20",
            "51.22",
            "6025",
            "120",
        );
        cmp1["clicks"] = "130".into();
        cmp1["actions"] = actions(&[
            ("link_click", "120"),
            ("view_content", "84"),
            ("offsite_conversion.fb_pixel_view_content", "80"),
            ("offsite_conversion.fb_pixel_add_to_cart", "10"),
            ("initiate_checkout", "5"),
            ("offsite_conversion.fb_pixel_purchase", "2"),
            ("purchase", "2"),
        ]);
        cmp1["action_values"] = actions(&[
            ("offsite_conversion.fb_pixel_purchase", "151.36"),
            ("purchase", "151.36"),
        ]);
        let stranger = row(("campaign_id", "999999"), "2026-11-20", "1000.00", "1", "1");
        let cmp2 = row(("campaign_id", "120002"), "2026-11-20", "0.29", "41", "1");
        // Meta's next link repeats the query with the cursor, and the access token, in it.
        let mut next = reqwest::Url::parse(&format!("{base}{}", seen.path)).unwrap();
        next.query_pairs_mut()
            .extend_pairs(seen.query.iter())
            .append_pair("access_token", TOKEN)
            .append_pair("after", "PAGE2");
        return Reply::json(
            200,
            serde_json::json!({"data": in_range(vec![cmp1, stranger, cmp2]),
                "paging": {"cursors": {"before": "PAGE1", "after": "PAGE2"}, "next": next.as_str()}}),
        );
    }
    let mut cmp1 = row(
        ("campaign_id", "120001"),
        "2026-11-21",
        "70.10",
        "8000",
        "160",
    );
    cmp1["actions"] = actions(&[
        ("offsite_conversion.fb_pixel_view_content", "100"),
        ("offsite_conversion.fb_pixel_add_to_cart", "12"),
        ("offsite_conversion.fb_pixel_initiate_checkout", "6"),
        ("offsite_conversion.fb_pixel_purchase", "3"),
    ]);
    cmp1["action_values"] = actions(&[("offsite_conversion.fb_pixel_purchase", "299.97")]);
    let mut cmp3 = row(
        ("campaign_id", "120003"),
        "2026-11-21",
        "12.3",
        "1500",
        "30",
    );
    cmp3["actions"] = actions(&[("purchase", "1")]);
    cmp3["action_values"] = actions(&[("purchase", "45")]);
    Reply::json(
        200,
        serde_json::json!({"data": in_range(vec![cmp1, cmp3]),
            "paging": {"cursors": {"before": "PAGE2", "after": "PAGE3"}}}),
    )
}

async fn two_pages_map_to_the_cent(backend: Backend) {
    let graph = FakeGraph::start(two_pages).await;
    let app = meta_app(backend, &graph).await;
    enqueue(&app, Level::Campaign, "2026-11-20", "2026-11-21").await;
    app.wait_until_idle(Duration::from_secs(20)).await;
    let jobs = app.jobs().await;
    assert_eq!(
        (jobs[0].status.as_str(), jobs[0].attempts),
        ("SUCCEEDED", 1),
        "{jobs:#?}"
    );
    // Three campaigns with Meta ids × two days; cmp-4 has no Meta id and is left out.
    assert_eq!(jobs[0].entities, Some(3));
    assert_eq!(app.tier_counts(SELLER).await.0, 6);
    let zero = Metrics::from_totals(0, 0, 0, 0, 0, 0, 0, 0);
    let expected = [
        (
            "s1-cmp-1",
            "2026-11-20",
            Metrics::from_totals(5122, 6025, 120, 84, 10, 5, 2, 15136),
        ),
        (
            "s1-cmp-2",
            "2026-11-20",
            Metrics::from_totals(29, 41, 1, 0, 0, 0, 0, 0),
        ),
        ("s1-cmp-3", "2026-11-20", zero),
        (
            "s1-cmp-1",
            "2026-11-21",
            Metrics::from_totals(7010, 8000, 160, 100, 12, 6, 3, 29997),
        ),
        ("s1-cmp-2", "2026-11-21", zero),
        (
            "s1-cmp-3",
            "2026-11-21",
            Metrics::from_totals(1230, 1500, 30, 0, 0, 0, 1, 4500),
        ),
    ];
    for (entity, date, metrics) in expected {
        let rows = raw(&app, "CAMPAIGN", entity, date).await;
        assert_eq!(rows.len(), 1, "{entity} {date}");
        assert_eq!(metrics_of(&rows[0]), metrics, "{entity} {date}");
        assert_eq!(rows[0].provider, "meta");
        let mut conn = app.conn().await;
        let daily = writes::daily_row(&mut conn, "CAMPAIGN", entity, day(date))
            .await
            .unwrap()
            .expect("daily row");
        assert_eq!(daily.spend_cents, metrics.spend_cents);
        assert_eq!(daily.revenue_cents, metrics.revenue_cents);
    }
    assert!(raw(&app, "CAMPAIGN", "s1-cmp-4", "2026-11-20")
        .await
        .is_empty());
    // Both pages asked for once, with the token in the header only.
    let seen = graph.seen();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    for s in &seen {
        assert_eq!(s.path, "/v23.0/act_1001/insights");
        assert_eq!(
            s.authorization.as_deref(),
            Some(&*format!("Bearer {TOKEN}"))
        );
        assert!(
            !s.raw_target.contains(TOKEN),
            "token in a URL: {}",
            s.raw_target
        );
    }
    let first = &seen[0].query;
    assert_eq!(first["level"], "ad");
    assert_eq!(first["time_increment"], "1");
    assert_eq!(first["limit"], "2");
    let range: serde_json::Value = serde_json::from_str(&first["time_range"]).unwrap();
    assert_eq!(
        range,
        serde_json::json!({"since": "2026-11-20", "until": "2026-11-21"})
    );
    for field in [
        "campaign_id",
        "adset_id",
        "ad_id",
        "spend",
        "impressions",
        "inline_link_clicks",
        "actions",
        "action_values",
    ] {
        assert!(first["fields"].split(',').any(|f| f == field), "{field}");
    }
    assert_eq!(seen[1].query["after"], "PAGE2");
    drop(app.shutdown().await);
}

fn usage_header(call_count: u32, regain_minutes: u32) -> serde_json::Value {
    serde_json::json!({"1234567890": [{"type": "ads_insights", "call_count": call_count,
        "total_cputime": 10, "total_time": 12, "estimated_time_to_regain_access": regain_minutes,
        "ads_api_access_tier": "standard_access"}]})
}

/// Takes the pause back to the past and makes the waiting jobs due, as the passing of time would.
async fn end_the_pause(db: &Db) {
    let mut conn = db.conn().await.unwrap();
    let conn = &mut conn;
    let past = db::now_utc() - chrono::Duration::seconds(1);
    db_run!(conn, {
        diesel::update(ad_connections::table)
            .set(ad_connections::paused_until.eq(Some(past)))
            .execute(conn)
            .await
            .unwrap();
        diesel::update(sync_jobs::table.filter(sync_jobs::status.eq("QUEUED")))
            .set(sync_jobs::run_at.eq(past))
            .execute(conn)
            .await
            .unwrap();
    });
}

async fn throttling_pauses_the_account_without_a_hot_loop(backend: Backend) {
    let graph = FakeGraph::start(|n, _, _| {
        if n == 0 {
            Reply::json(
                400,
                graph_error(
                    80000,
                    2446079,
                    "(#80000) There have been too many calls from this ad-account.",
                ),
            )
            .header("X-Business-Use-Case-Usage", usage_header(100, 2))
        } else {
            empty_page()
        }
    })
    .await;
    let app = meta_app(backend, &graph).await;
    let started = db::now_utc();
    enqueue(&app, Level::Campaign, "2026-11-20", "2026-11-20").await;
    let jobs = app
        .wait_for_jobs(Duration::from_secs(10), |j| {
            j.len() == 1 && j[0].status == "QUEUED" && j[0].last_error.is_some()
        })
        .await;
    assert_eq!(
        jobs[0].last_error.as_deref(),
        Some("the stats provider limited our requests")
    );
    assert_eq!(
        jobs[0].attempts, 0,
        "a throttled run waits; it uses no attempt"
    );
    let (status, _, paused_until) = connection_row(&app.db).await;
    assert_eq!(status, "ACTIVE");
    let paused_until = paused_until.expect("the account is paused");
    let ahead = (paused_until - started).num_seconds();
    assert!(
        (115..=125).contains(&ahead),
        "paused for the announced 2 minutes, not MIN_PAUSE: {ahead}s"
    );
    assert_eq!(jobs[0].run_at, paused_until, "the job waits for the pause");

    // Another job of the paused account waits without asking Meta or using an attempt.
    an_adset_job_waits_for_the_pause(&app, &graph, paused_until).await;
    assert_eq!(app.tier_counts(SELLER).await, (0, 0, 0));

    end_the_pause(&app.db).await;
    app.wait_until_idle(Duration::from_secs(20)).await;
    let jobs = app.jobs().await;
    assert_eq!(
        (
            job(&jobs, "CAMPAIGN").status.as_str(),
            job(&jobs, "CAMPAIGN").attempts
        ),
        ("SUCCEEDED", 1)
    );
    assert_eq!(
        (
            job(&jobs, "ADSET").status.as_str(),
            job(&jobs, "ADSET").attempts
        ),
        ("SUCCEEDED", 1)
    );
    assert_eq!(graph.requests(), 3);
    drop(app.shutdown().await);
}

/// The only page is in and complete, but the account is at 90.5% of its allowance (threshold
/// 75%), reset in 2 minutes: the rows are kept and the account's next job waits for the pause.
async fn usage_past_the_threshold_on_the_last_page_keeps_the_rows(backend: Backend) {
    let graph = FakeGraph::start(|_, _, _| {
        Reply::json(
            200,
            serde_json::json!({"data": [row(("campaign_id", "120001"), "2026-11-20", "1.00", "10", "1")]}),
        )
        .header(
            "X-Ad-Account-Usage",
            serde_json::json!({"acc_id_util_pct": 90.5, "reset_time_duration": 120,
                "ads_api_access_tier": "standard_access"}),
        )
    })
    .await;
    let app = meta_app(backend, &graph).await;
    let started = db::now_utc();
    enqueue(&app, Level::Campaign, "2026-11-20", "2026-11-20").await;
    app.wait_until_idle(Duration::from_secs(10)).await;
    let jobs = app.jobs().await;
    assert_eq!(
        (jobs[0].status.as_str(), jobs[0].attempts),
        ("SUCCEEDED", 1),
        "{jobs:#?}"
    );
    assert_eq!(
        raw(&app, "CAMPAIGN", "s1-cmp-1", "2026-11-20").await[0].spend_cents,
        100
    );
    let (_, _, paused_until) = connection_row(&app.db).await;
    let paused_until = paused_until.expect("the account is paused for later jobs");
    let ahead = (paused_until - started).num_seconds();
    assert!((115..=125).contains(&ahead), "{ahead}s");

    an_adset_job_waits_for_the_pause(&app, &graph, paused_until).await;
    drop(app.shutdown().await);
}

/// An ADSET job of the paused account (Meta asked once so far) goes back to QUEUED until the
/// pause ends, with no attempt used and nothing asked: with a 50 ms poll a hot loop would have
/// asked dozens of times within the wait.
async fn an_adset_job_waits_for_the_pause(
    app: &TestApp,
    graph: &FakeGraph,
    paused_until: chrono::NaiveDateTime,
) {
    enqueue(app, Level::Adset, "2026-11-20", "2026-11-20").await;
    let jobs = app
        .wait_for_jobs(Duration::from_secs(10), |j| {
            j.iter()
                .any(|j| j.level == "ADSET" && j.last_error.is_some())
        })
        .await;
    let adset = job(&jobs, "ADSET");
    assert_eq!((adset.status.as_str(), adset.attempts), ("QUEUED", 0));
    assert_eq!(adset.run_at, paused_until);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        graph.requests(),
        1,
        "no request while the account is paused"
    );
}

/// Page 1 of 2 comes with usage past the threshold: the query stops before the limit, the job
/// waits for the pause without using an attempt, and then reads both pages.
async fn usage_past_the_threshold_mid_query_defers_the_job(backend: Backend) {
    let graph = FakeGraph::start(|n, seen, base| {
        let usage = if n == 0 { 90.5 } else { 3.0 };
        let body = if seen.query.contains_key("after") {
            serde_json::json!({"data": [row(("campaign_id", "120002"), "2026-11-20", "2.00", "20", "2")]})
        } else {
            serde_json::json!({"data": [row(("campaign_id", "120001"), "2026-11-20", "1.00", "10", "1")],
                "paging": {"next": format!("{base}{}?after=P2", seen.path)}})
        };
        Reply::json(200, body).header(
            "X-Ad-Account-Usage",
            serde_json::json!({"acc_id_util_pct": usage, "reset_time_duration": 120}),
        )
    })
    .await;
    let app = meta_app(backend, &graph).await;
    enqueue(&app, Level::Campaign, "2026-11-20", "2026-11-20").await;
    let jobs = app
        .wait_for_jobs(Duration::from_secs(10), |j| {
            j[0].status == "QUEUED" && j[0].last_error.is_some()
        })
        .await;
    assert_eq!(jobs[0].attempts, 0);
    let (_, _, paused_until) = connection_row(&app.db).await;
    assert_eq!(Some(jobs[0].run_at), paused_until);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(graph.requests(), 1, "page 2 waits for the pause");
    assert_eq!(app.tier_counts(SELLER).await, (0, 0, 0));
    end_the_pause(&app.db).await;
    app.wait_until_idle(Duration::from_secs(20)).await;
    let jobs = app.jobs().await;
    assert_eq!(
        (jobs[0].status.as_str(), jobs[0].attempts),
        ("SUCCEEDED", 1)
    );
    assert_eq!(graph.requests(), 3);
    assert_eq!(
        raw(&app, "CAMPAIGN", "s1-cmp-2", "2026-11-20").await[0].spend_cents,
        200
    );
    drop(app.shutdown().await);
}

/// Code 4 (the app's limit) without usage headers: no time announced, the account still pauses
/// for MIN_PAUSE and the job waits.
async fn throttling_without_usage_headers_pauses_for_the_minimum(backend: Backend) {
    let graph = FakeGraph::start(|_, _, _| {
        Reply::json(
            400,
            graph_error(4, 1504022, "(#4) Application request limit reached"),
        )
    })
    .await;
    let app = meta_app(backend, &graph).await;
    let started = db::now_utc();
    enqueue(&app, Level::Campaign, "2026-11-20", "2026-11-20").await;
    let jobs = app
        .wait_for_jobs(Duration::from_secs(10), |j| {
            j[0].status == "QUEUED" && j[0].last_error.is_some()
        })
        .await;
    assert_eq!(jobs[0].attempts, 0);
    let (status, _, paused_until) = connection_row(&app.db).await;
    assert_eq!(status, "ACTIVE");
    let ahead = (paused_until.expect("paused") - started).num_seconds();
    assert!((55..=65).contains(&ahead), "MIN_PAUSE: {ahead}s");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(graph.requests(), 1, "no hot loop");
    drop(app.shutdown().await);
}

async fn an_expired_token_fails_the_job_and_stops_the_connection(backend: Backend) {
    let graph = FakeGraph::start(|_, _, _| {
        Reply::json(
            400,
            graph_error(
                190,
                463,
                "Error validating access token: Session has expired on Friday.",
            ),
        )
    })
    .await;
    let app = meta_app(backend, &graph).await;
    {
        let mut conn = app.conn().await;
        assert_eq!(scheduled_sellers(&mut conn).await, vec![SELLER]);
    }
    enqueue(&app, Level::Campaign, "2026-11-20", "2026-11-20").await;
    app.wait_until_idle(Duration::from_secs(10)).await;
    let jobs = app.jobs().await;
    assert_eq!(
        (jobs[0].status.as_str(), jobs[0].attempts),
        ("FAILED", 1),
        "{jobs:#?}"
    );
    assert_eq!(
        jobs[0].last_error.as_deref(),
        Some("the ad account's access token expired or was revoked; connect the account again")
    );
    assert_eq!(connection_row(&app.db).await.0, "EXPIRED");
    assert_eq!(graph.requests(), 1);
    assert_eq!(app.tier_counts(SELLER).await, (0, 0, 0));
    let mut conn = app.conn().await;
    assert!(
        catalog::scheduled_connections(&mut conn, None)
            .await
            .unwrap()
            .is_empty(),
        "the scheduler no longer picks the seller"
    );
    assert!(!catalog::is_eligible(&mut conn, SELLER).await.unwrap());
    drop(conn);
    drop(app.shutdown().await);
}

async fn a_server_error_then_success_writes_once(backend: Backend) {
    let graph = FakeGraph::start(|n, _, _| {
        if n == 0 {
            Reply {
                status: 500,
                headers: Vec::new(),
                body: "Internal Server Error".into(),
                delay: Duration::ZERO,
            }
        } else {
            Reply::json(
                200,
                serde_json::json!({"data": [row(("campaign_id", "120002"), "2026-11-20", "3.50", "100", "4")]}),
            )
        }
    })
    .await;
    let app = meta_app(backend, &graph).await;
    enqueue(&app, Level::Campaign, "2026-11-20", "2026-11-20").await;
    app.wait_until_idle(Duration::from_secs(10)).await;
    let jobs = app.jobs().await;
    assert_eq!(
        (jobs[0].status.as_str(), jobs[0].attempts),
        ("SUCCEEDED", 2),
        "{jobs:#?}"
    );
    assert_eq!(graph.requests(), 2);
    assert_eq!(
        app.tier_counts(SELLER).await.0,
        3,
        "one raw row per campaign: the failed attempt wrote none"
    );
    let rows = raw(&app, "CAMPAIGN", "s1-cmp-2", "2026-11-20").await;
    assert_eq!(
        metrics_of(&rows[0]),
        Metrics::from_totals(350, 100, 4, 0, 0, 0, 0, 0)
    );
    drop(app.shutdown().await);
}

async fn a_slow_answer_past_the_timeout_is_retried(backend: Backend) {
    let graph = FakeGraph::start(|n, _, _| {
        let reply = empty_page();
        if n == 0 {
            reply.after(Duration::from_secs(3))
        } else {
            reply
        }
    })
    .await;
    let app = meta_app(backend, &graph).await;
    let started = Instant::now();
    enqueue(&app, Level::Campaign, "2026-11-20", "2026-11-20").await;
    app.wait_until_idle(Duration::from_secs(10)).await;
    let jobs = app.jobs().await;
    assert_eq!(
        (jobs[0].status.as_str(), jobs[0].attempts),
        ("SUCCEEDED", 2),
        "{jobs:#?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "meta.timeout (400 ms) cut the slow answer: {:?}",
        started.elapsed()
    );
    assert_eq!(graph.requests(), 2);
    drop(app.shutdown().await);
}

/// The binary, as an operator runs it: `connection set-token` then `sync` against the fake with
/// debug logs, then a sync that meets an expired token. Neither the logs nor any table holds the
/// plain token afterwards.
async fn no_plain_token_in_the_database_or_the_logs(backend: Backend) {
    let graph = FakeGraph::start(|n, seen, base| {
        if n >= 2 {
            return Reply::json(
                400,
                graph_error(190, 460, "The session has been invalidated."),
            );
        }
        two_pages(n, seen, base)
    })
    .await;
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    {
        let mut conn = db.conn().await.unwrap();
        insert_catalog(&mut conn, &meta_catalog()).await.unwrap();
        connect_account(&mut conn).await;
        connections::set_sealed_token(&mut conn, CONNECTION, "placeholder")
            .await
            .unwrap();
    }
    let key = key_b64();
    let envs = [
        ("DATABASE_URL", test_db.url.as_str()),
        ("ADS_STATS_META__TOKEN_KEY", key.as_str()),
        ("ADS_STATS_PROVIDER", "meta"),
        ("ADS_STATS_STATS__AGGREGATION", "latest"),
        ("ADS_STATS_META__BASE_URL", graph.url.as_str()),
        ("RUST_LOG", "debug"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let set_token = run_with_stdin(
        &["connection", "set-token", "--connection", CONNECTION],
        &envs,
        &format!("  {TOKEN}\n"),
    )
    .await;
    assert_eq!(set_token.status.code(), Some(0), "{}", text(&set_token));
    let ok = run_with_stdin(
        &[
            "sync",
            "--seller",
            SELLER,
            "--date",
            "2026-11-20",
            "--level",
            "CAMPAIGN",
        ],
        &envs,
        "",
    )
    .await;
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    let expired = run_with_stdin(
        &[
            "sync",
            "--seller",
            SELLER,
            "--date",
            "2026-11-21",
            "--level",
            "CAMPAIGN",
        ],
        &envs,
        "",
    )
    .await;
    assert_eq!(expired.status.code(), Some(1), "{}", text(&expired));
    // The fake did get the real token (in the header), so it was really stored and used.
    assert!(graph
        .seen()
        .iter()
        .all(|s| s.authorization.as_deref() == Some(&*format!("Bearer {TOKEN}"))));
    for out in [&set_token, &ok, &expired] {
        let all = text(out);
        assert!(!all.contains(TOKEN), "the plain token in the output: {all}");
        assert!(!all.contains(&key_b64()), "the key in the output: {all}");
    }
    assert!(
        text(&ok).contains("debug") || text(&ok).contains("DEBUG"),
        "debug logs were on: {}",
        text(&ok)
    );
    assert_eq!(connection_row(&db).await.0, "EXPIRED");
    let sealed = connection_row(&db).await.1.expect("sealed token");
    assert_eq!(
        TokenSealer::new(&KEY)
            .open(CONNECTION, &sealed)
            .unwrap()
            .expose(),
        TOKEN
    );
    let dump = dump_database(&db, &test_db).await;
    assert!(dump.contains("s1-cmp-1"), "the dump reads the tables");
    assert!(!dump.contains(TOKEN), "the plain token is stored somewhere");
    drop(db);
}

pub(crate) fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub(crate) async fn run_with_stdin(
    args: &[&str],
    envs: &[(String, String)],
    stdin: &str,
) -> std::process::Output {
    let mut child = ads_stats()
        .args(args)
        .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ads-stats starts");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    child.wait_with_output().await.unwrap()
}

#[derive(QueryableByName)]
struct TextRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    v: String,
}

/// Every row of every table as text: the SQLite file's bytes (and its WAL), or PostgreSQL's rows as
/// JSON.
async fn dump_database(db: &Db, test_db: &TestDb) -> String {
    if let Some(path) = test_db.url.strip_prefix("sqlite://") {
        let mut all = String::new();
        for suffix in ["", "-wal"] {
            if let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) {
                all.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
        return all;
    }
    let mut conn = db.conn().await.unwrap();
    let conn = &mut conn;
    let mut all = String::new();
    for table in crate::schema::TABLES {
        let sql = format!("SELECT CAST(row_to_json(t) AS TEXT) AS v FROM {table} t");
        let rows: Vec<TextRow> =
            db_run!(conn, { diesel::sql_query(&sql).load(conn).await.unwrap() });
        for r in rows {
            all.push_str(&r.v);
            all.push('\n');
        }
    }
    all
}

async fn connection_commands_seal_the_token_and_set_the_time_zone(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    insert_catalog(&mut db.conn().await.unwrap(), &meta_catalog())
        .await
        .unwrap();
    let key = key_b64();
    let envs = [
        ("DATABASE_URL".to_string(), test_db.url.clone()),
        ("ADS_STATS_META__TOKEN_KEY".to_string(), key.clone()),
    ];
    let set_token =
        |connection: &'static str| ["connection", "set-token", "--connection", connection];
    let one_line_failure = |out: &std::process::Output, needle: &str| {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_ne!(out.status.code(), Some(0), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err:?}");
        assert!(err.contains(needle), "expected `{needle}` in {err:?}");
    };

    one_line_failure(
        &run_with_stdin(&set_token(CONNECTION), &envs, " \n").await,
        "no token",
    );
    one_line_failure(
        &run_with_stdin(&set_token("nope"), &envs, TOKEN).await,
        "no connection with id nope",
    );
    one_line_failure(
        &run_with_stdin(&set_token(CONNECTION), &envs[..1], TOKEN).await,
        "meta.token_key",
    );
    assert_eq!(
        connection_row(&db).await.1,
        None,
        "nothing stored by the failures"
    );

    catalog::set_status(
        &mut db.conn().await.unwrap(),
        HierarchyTable::AdConnections,
        CONNECTION,
        "EXPIRED",
    )
    .await
    .unwrap();
    let out = run_with_stdin(&set_token(CONNECTION), &envs, &format!("{TOKEN}\n")).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains(TOKEN));
    let (status, sealed, _) = connection_row(&db).await;
    assert_eq!(
        status, "ACTIVE",
        "a new token reconnects an EXPIRED account"
    );
    let sealed = sealed.expect("stored");
    assert!(!sealed.contains(TOKEN));
    assert_eq!(
        TokenSealer::new(&KEY)
            .open(CONNECTION, &sealed)
            .unwrap()
            .expose(),
        TOKEN
    );
    // A REVOKED connection takes the token but stays REVOKED: set-token only reconnects EXPIRED.
    catalog::set_status(
        &mut db.conn().await.unwrap(),
        HierarchyTable::AdConnections,
        CONNECTION,
        "REVOKED",
    )
    .await
    .unwrap();
    let out = run_with_stdin(&set_token(CONNECTION), &envs, "EAAnotherToken").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (status, resealed, _) = connection_row(&db).await;
    assert_eq!(status, "REVOKED", "{}", text(&out));
    assert_ne!(
        resealed.as_deref(),
        Some(sealed.as_str()),
        "the token is stored"
    );
    catalog::set_status(
        &mut db.conn().await.unwrap(),
        HierarchyTable::AdConnections,
        CONNECTION,
        "ACTIVE",
    )
    .await
    .unwrap();

    let set_zone = |zone: &'static str| {
        [
            "connection",
            "set",
            "--connection",
            CONNECTION,
            "--timezone",
            zone,
        ]
    };
    let out = run_with_stdin(&set_zone("Mars/Olympus_Mons"), &envs, "").await;
    assert_eq!(out.status.code(), Some(2));
    one_line_failure(&out, "IANA");
    let out = run_with_stdin(&set_zone("America/Los_Angeles"), &envs, "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let accounts = connections::active_accounts(&mut db.conn().await.unwrap(), SELLER)
        .await
        .unwrap();
    assert_eq!(accounts[0].timezone, "America/Los_Angeles");
    let out = run_with_stdin(
        &[
            "connection",
            "set",
            "--connection",
            "nope",
            "--timezone",
            "UTC",
        ],
        &envs,
        "",
    )
    .await;
    one_line_failure(&out, "no connection with id nope");
    drop(db);
}

/// A second META account (id given with `act_`) and a connection of another provider, each with a
/// campaign: Meta is asked once per META account, each with that account's own token.
async fn each_ad_account_is_asked_with_its_own_token(backend: Backend) {
    const OTHER_TOKEN: &str = "EAAOtherAccountTokenZZZ";
    let graph = FakeGraph::start(|_, seen, _| {
        let data = match seen.path.as_str() {
            "/v23.0/act_1001/insights" => vec![row(
                ("campaign_id", "120001"),
                "2026-11-20",
                "1.11",
                "11",
                "1",
            )],
            "/v23.0/act_777/insights" => vec![row(
                ("campaign_id", "120005"),
                "2026-11-20",
                "5.55",
                "55",
                "5",
            )],
            _ => Vec::new(),
        };
        Reply::json(200, serde_json::json!({ "data": data }))
    })
    .await;
    let mut catalog = meta_catalog();
    for (id, provider, account) in [
        ("s1-conn-2", "META", "act_777"),
        ("s1-conn-g", "GOOGLE", "g-1"),
    ] {
        catalog.connections.push(NewAdConnection {
            id: id.into(),
            seller_id: SELLER.into(),
            provider: provider.into(),
            external_account_id: account.into(),
            status: "ACTIVE".into(),
        });
    }
    for (k, connection) in [(5, "s1-conn-2"), (6, "s1-conn-g")] {
        catalog.campaigns.push(NewCampaign {
            id: format!("s1-cmp-{k}"),
            seller_id: SELLER.into(),
            connection_id: connection.into(),
            sellpage_id: None,
            name: format!("Campaign {k}"),
            status: "ACTIVE".into(),
            daily_budget_cents: 1_000,
        });
    }
    let app = meta_app_with(backend, &graph, catalog).await;
    {
        let mut conn = app.conn().await;
        for (id, ext) in [("s1-cmp-5", "120005"), ("s1-cmp-6", "120006")] {
            catalog::set_external_id(&mut conn, HierarchyTable::Campaigns, id, Some(ext))
                .await
                .unwrap();
        }
        for connection in ["s1-conn-2", "s1-conn-g"] {
            let sealed = TokenSealer::new(&KEY)
                .seal(connection, &Secret::new(OTHER_TOKEN))
                .unwrap();
            connections::set_sealed_token(&mut conn, connection, &sealed)
                .await
                .unwrap();
        }
    }
    enqueue(&app, Level::Campaign, "2026-11-20", "2026-11-20").await;
    app.wait_until_idle(Duration::from_secs(10)).await;
    let jobs = app.jobs().await;
    assert_eq!(jobs[0].status, "SUCCEEDED", "{jobs:#?}");
    assert_eq!(
        jobs[0].entities,
        Some(4),
        "cmp-1..3 and cmp-5; not cmp-4 (no id) nor cmp-6 (GOOGLE)"
    );
    let mut asked: Vec<(String, String)> = graph
        .seen()
        .into_iter()
        .map(|s| (s.path, s.authorization.unwrap_or_default()))
        .collect();
    asked.sort();
    assert_eq!(
        asked,
        vec![
            (
                "/v23.0/act_1001/insights".to_string(),
                format!("Bearer {TOKEN}")
            ),
            (
                "/v23.0/act_777/insights".to_string(),
                format!("Bearer {OTHER_TOKEN}")
            ),
        ]
    );
    let spend = |rows: Vec<RawStat>| rows.iter().map(|r| r.spend_cents).collect::<Vec<_>>();
    assert_eq!(
        spend(raw(&app, "CAMPAIGN", "s1-cmp-1", "2026-11-20").await),
        vec![111]
    );
    assert_eq!(
        spend(raw(&app, "CAMPAIGN", "s1-cmp-5", "2026-11-20").await),
        vec![555]
    );
    assert_eq!(
        spend(raw(&app, "CAMPAIGN", "s1-cmp-2", "2026-11-20").await),
        vec![0]
    );
    assert!(raw(&app, "CAMPAIGN", "s1-cmp-6", "2026-11-20")
        .await
        .is_empty());
    drop(app.shutdown().await);
}

// ---------- settings ----------

#[tokio::test]
async fn meta_settings_are_checked_at_start_up() {
    // Day-to-date numbers summed would double: `sum` is refused, naming both settings.
    crate::cli::config_errors(
        &[("ADS_STATS_PROVIDER", "meta")],
        &["stats.aggregation", "provider"],
    )
    .await;
    let meta = [
        ("ADS_STATS_PROVIDER", "meta"),
        ("ADS_STATS_STATS__AGGREGATION", "latest"),
    ];
    // Production without a key, and a key that is not 32 bytes anywhere.
    let prod = [
        meta[0],
        meta[1],
        ("ADS_STATS_ENV", "production"),
        ("JWT_SECRET", "a-real-production-secret-of-40-bytes-xyz"),
    ];
    crate::cli::config_errors(&prod, &["meta.token_key", "missing"]).await;
    let short = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
    crate::cli::config_errors(
        &[("ADS_STATS_META__TOKEN_KEY", short.as_str())],
        &["meta.token_key"],
    )
    .await;
    crate::cli::config_errors(
        &[("ADS_STATS_META__TOKEN_KEY", "not base64!")],
        &["meta.token_key"],
    )
    .await;
    crate::cli::config_errors(
        &[("ADS_STATS_META__USAGE_THRESHOLD", "0")],
        &["meta.usage_threshold"],
    )
    .await;
    // Meta's fourth value, `lifetime`, is not one we offer: the error names the key.
    crate::cli::config_errors(
        &[("ADS_STATS_META__ACTION_REPORT_TIME", "lifetime")],
        &["meta.action_report_time"],
    )
    .await;
    crate::cli::config_errors(
        &[(
            "ADS_STATS_META__ACTION_TYPES__PURCHASE",
            "purchase,,omni_purchase",
        )],
        &["meta.action_types.purchase"],
    )
    .await;
    // The token travels in a header: plain http only to a loopback host.
    for url in [
        "http://graph.facebook.com",
        "http://10.0.0.5:8080",
        "ftp://x.example",
    ] {
        crate::cli::config_errors(&[("ADS_STATS_META__BASE_URL", url)], &["meta.base_url"]).await;
    }
}

#[tokio::test]
async fn the_token_key_prints_redacted() {
    let key = key_b64();
    let out = ads_stats()
        .arg("config")
        .env("ADS_STATS_META__TOKEN_KEY", &key)
        .env("ADS_STATS_META__APP_SECRET", APP_SECRET)
        .env(
            "ADS_STATS_META__ACTION_TYPES__PURCHASE",
            "omni_purchase,purchase",
        )
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!stdout.contains(&key), "{stdout}");
    assert!(!stdout.contains(APP_SECRET), "{stdout}");
    assert!(
        stdout.contains(
            "app_secret = \"<redacted>\"  # environment variable ADS_STATS_META__APP_SECRET"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("action_report_time = \"mixed\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("purchase = \"omni_purchase,purchase\""),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "token_key = \"<redacted>\"  # environment variable ADS_STATS_META__TOKEN_KEY"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("api_version = \"v23.0\""), "{stdout}");
}

// ---------- deleted objects, paging, rejected requests, EXPIRED races ----------

/// Meta leaves deleted objects out of insights unless the filter names their status: the fake
/// sends the row of cmp-3's ad only when `filtering` asks for DELETED ads, as Meta would. Without
/// it cmp-3's real spend would be overwritten by a reading of zeros.
async fn deleted_and_archived_objects_are_asked_for(backend: Backend) {
    let graph = FakeGraph::start(|_, seen, _| {
        let filter: serde_json::Value = seen
            .query
            .get("filtering")
            .and_then(|f| serde_json::from_str(f).ok())
            .unwrap_or_default();
        let asks_deleted = filter.as_array().is_some_and(|f| {
            f.iter().any(|c| {
                c["field"] == "ad.effective_status"
                    && c["operator"] == "IN"
                    && c["value"]
                        .as_array()
                        .is_some_and(|v| v.iter().any(|s| s == "DELETED"))
            })
        });
        let mut rows = vec![row(
            ("campaign_id", "120001"),
            "2026-11-20",
            "1.00",
            "10",
            "1",
        )];
        if asks_deleted {
            rows.push(row(
                ("campaign_id", "120003"),
                "2026-11-20",
                "7.25",
                "70",
                "7",
            ));
        }
        Reply::json(200, serde_json::json!({ "data": rows }))
    })
    .await;
    let app = meta_app(backend, &graph).await;
    enqueue(&app, Level::Campaign, "2026-11-20", "2026-11-20").await;
    app.wait_until_idle(Duration::from_secs(10)).await;
    assert_eq!(app.jobs().await[0].status, "SUCCEEDED");
    assert_eq!(
        raw(&app, "CAMPAIGN", "s1-cmp-3", "2026-11-20").await[0].spend_cents,
        725,
        "the deleted campaign keeps its spend"
    );
    let filter: serde_json::Value =
        serde_json::from_str(&graph.seen()[0].query["filtering"]).unwrap();
    let statuses = filter[0]["value"].as_array().unwrap();
    for s in ["ACTIVE", "PAUSED", "ARCHIVED", "DELETED", "WITH_ISSUES"] {
        assert!(statuses.iter().any(|x| x == s), "{s} in {filter}");
    }
    drop(app.shutdown().await);
}

/// `paging.next` pointing at a page already read: the job fails at once (the answer breaks the
/// contract) instead of paging in a circle.
async fn a_repeated_next_page_fails_the_job(backend: Backend) {
    let graph = FakeGraph::start(|_, seen, base| {
        Reply::json(
            200,
            serde_json::json!({"data": [row(("campaign_id", "120001"), "2026-11-20", "1.00", "10", "1")],
                "paging": {"next": format!("{base}{}?after=SAME&limit=2", seen.path)}}),
        )
    })
    .await;
    let app = meta_app(backend, &graph).await;
    enqueue(&app, Level::Campaign, "2026-11-20", "2026-11-20").await;
    app.wait_until_idle(Duration::from_secs(10)).await;
    let jobs = app.jobs().await;
    assert_eq!(
        (jobs[0].status.as_str(), jobs[0].attempts),
        ("FAILED", 1),
        "{jobs:#?}"
    );
    assert_eq!(
        jobs[0].last_error.as_deref(),
        Some("the stats provider answered with unexpected data")
    );
    assert_eq!(
        graph.requests(),
        2,
        "page 1, then the first repeat of page 2 is refused"
    );
    assert_eq!(app.tier_counts(SELLER).await, (0, 0, 0));
    drop(app.shutdown().await);
}

/// A Graph error that is not about limits or the token (code 100, a bad parameter): the same
/// request would be refused again, so the job fails at once, with one request. (Not subcode
/// 1487534: that one asks for an async run, see `meta_async.rs`.)
async fn a_rejected_request_fails_at_once(backend: Backend) {
    let graph = FakeGraph::start(|_, _, _| {
        Reply::json(400, graph_error(100, 1815001, "(#100) Invalid parameter"))
    })
    .await;
    let app = meta_app(backend, &graph).await;
    enqueue(&app, Level::Campaign, "2026-11-20", "2026-11-20").await;
    app.wait_until_idle(Duration::from_secs(10)).await;
    let jobs = app.jobs().await;
    assert_eq!((jobs[0].status.as_str(), jobs[0].attempts), ("FAILED", 1));
    assert_eq!(
        jobs[0].last_error.as_deref(),
        Some("the stats provider rejected the request")
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(graph.requests(), 1);
    assert_eq!(connection_row(&app.db).await.0, "ACTIVE");
    drop(app.shutdown().await);
}

/// A 190 answer marks the connection EXPIRED only while it is ACTIVE and still holds the token the
/// request used: a token stored by `set-token` meanwhile, or a REVOKED connection, stays.
async fn an_expired_token_marks_only_the_token_that_failed(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    let mut conn = db.conn().await.unwrap();
    insert_catalog(&mut conn, &meta_catalog()).await.unwrap();
    let sealer = TokenSealer::new(&KEY);
    let old = sealer.seal(CONNECTION, &Secret::new("EAAold")).unwrap();
    let new = sealer.seal(CONNECTION, &Secret::new("EAAnew")).unwrap();
    connections::set_sealed_token(&mut conn, CONNECTION, &old)
        .await
        .unwrap();
    // set-token stores a new token while a job still holds the old one; then its 190 arrives.
    connections::store_token(&mut conn, CONNECTION, &new)
        .await
        .unwrap();
    assert_eq!(
        connections::mark_expired(&mut conn, CONNECTION, &old)
            .await
            .unwrap(),
        0
    );
    assert_eq!(connection_row(&db).await.0, "ACTIVE");
    // A REVOKED connection is not made EXPIRED (and so never reactivated by set-token).
    catalog::set_status(
        &mut conn,
        HierarchyTable::AdConnections,
        CONNECTION,
        "REVOKED",
    )
    .await
    .unwrap();
    assert_eq!(
        connections::mark_expired(&mut conn, CONNECTION, &new)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        connections::store_token(&mut conn, CONNECTION, &old)
            .await
            .unwrap(),
        Some(("REVOKED".to_string(), "REVOKED".to_string()))
    );
    // The token that failed, on an ACTIVE connection: EXPIRED; set-token reconnects it.
    catalog::set_status(
        &mut conn,
        HierarchyTable::AdConnections,
        CONNECTION,
        "ACTIVE",
    )
    .await
    .unwrap();
    assert_eq!(
        connections::mark_expired(&mut conn, CONNECTION, &old)
            .await
            .unwrap(),
        1
    );
    assert_eq!(connection_row(&db).await.0, "EXPIRED");
    assert_eq!(
        connections::store_token(&mut conn, CONNECTION, &new)
            .await
            .unwrap(),
        Some(("EXPIRED".to_string(), "ACTIVE".to_string()))
    );
    assert_eq!(
        connections::store_token(&mut conn, "nope", &new)
            .await
            .unwrap(),
        None
    );
    drop(conn);
    drop(db);
}

/// cmp-2 carries cmp-1's Meta id with a space around it (trimmed, it is the same id): the job
/// fails naming the id instead of giving one of them zeros or both the same numbers.
async fn one_meta_id_on_two_entities_fails_the_job(backend: Backend) {
    let graph = FakeGraph::start(|_, _, _| {
        Reply::json(
            200,
            serde_json::json!({"data": [row(("campaign_id", "120001"), "2026-11-20", "1.00", "10", "1")]}),
        )
    })
    .await;
    let app = meta_app(backend, &graph).await;
    catalog::set_external_id(
        &mut app.conn().await,
        HierarchyTable::Campaigns,
        "s1-cmp-2",
        Some(" 120001 "),
    )
    .await
    .unwrap();
    enqueue(&app, Level::Campaign, "2026-11-20", "2026-11-20").await;
    app.wait_until_idle(Duration::from_secs(10)).await;
    let jobs = app.jobs().await;
    assert_eq!(
        (jobs[0].status.as_str(), jobs[0].attempts),
        ("FAILED", 1),
        "{jobs:#?}"
    );
    assert_eq!(
        jobs[0].last_error.as_deref(),
        Some("the stats provider answered with unexpected data")
    );
    assert_eq!(app.tier_counts(SELLER).await, (0, 0, 0));
    drop(app.shutdown().await);
}

/// A 302 from the Graph host to another host is not followed: each attempt fails (and is retried
/// until the attempts run out), the other host is never asked, and nothing is written as zeros.
async fn a_redirect_is_a_failed_attempt_and_never_followed(backend: Backend) {
    let elsewhere = FakeGraph::start(|_, _, _| empty_page()).await;
    let target = format!("{}/v23.0/{ACCOUNT}/insights", elsewhere.url);
    let graph = FakeGraph::start(move |_, _, _| Reply {
        status: 302,
        headers: vec![("Location", target.clone())],
        body: String::new(),
        delay: Duration::ZERO,
    })
    .await;
    let app = meta_app(backend, &graph).await;
    enqueue(&app, Level::Campaign, "2026-11-20", "2026-11-20").await;
    let jobs = app
        .wait_for_jobs(Duration::from_secs(20), |jobs| {
            jobs.len() == 1 && jobs[0].status == "FAILED"
        })
        .await;
    let max_attempts = app.settings.jobs.max_attempts as i32;
    assert!(max_attempts > 1, "the test needs retries");
    assert_eq!(jobs[0].attempts, max_attempts, "{jobs:#?}");
    assert_eq!(
        jobs[0].last_error.as_deref(),
        Some("the stats provider request failed")
    );
    assert_eq!(graph.requests(), max_attempts as usize);
    assert_eq!(elsewhere.requests(), 0, "the redirect was followed");
    assert_eq!(app.tier_counts(SELLER).await, (0, 0, 0), "nothing written");
    drop(app.shutdown().await);
}

/// An account id that is not Meta's shape (here one that would walk the URL path to
/// `/me/accounts`) fails the job at its first attempt, before any request.
async fn a_bad_account_id_fails_the_job_without_a_request(backend: Backend) {
    let graph = FakeGraph::start(|_, _, _| empty_page()).await;
    let mut catalog = meta_catalog();
    catalog.connections[0].external_account_id =
        "1/../../../me/accounts?fields=access_token#".into();
    let app = meta_app_with(backend, &graph, catalog).await;
    enqueue(&app, Level::Campaign, "2026-11-20", "2026-11-20").await;
    let jobs = app
        .wait_for_jobs(Duration::from_secs(10), |jobs| {
            jobs.len() == 1 && jobs[0].status == "FAILED"
        })
        .await;
    assert_eq!(jobs[0].attempts, 1, "failed at once: {jobs:#?}");
    assert!(
        jobs[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("account id")),
        "{jobs:#?}"
    );
    assert_eq!(graph.requests(), 0, "{:?}", graph.seen());
    assert_eq!(app.tier_counts(SELLER).await, (0, 0, 0));
    drop(app.shutdown().await);
}

/// `connection set --account-id` takes only `(act_)digits`, and the other connection commands
/// refuse a connection whose stored id is anything else: exit 2, one line, nothing stored.
async fn connection_commands_refuse_a_bad_account_id(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    let bad = "1/../../../me/accounts?fields=access_token#";
    let mut catalog = meta_catalog();
    catalog.connections[0].external_account_id = bad.into();
    insert_catalog(&mut db.conn().await.unwrap(), &catalog)
        .await
        .unwrap();
    let envs = [
        ("DATABASE_URL".to_string(), test_db.url.clone()),
        ("ADS_STATS_META__TOKEN_KEY".to_string(), key_b64()),
    ];
    let refused = |out: &std::process::Output| {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{}", text(out));
        assert_eq!(err.trim().lines().count(), 1, "one line: {err:?}");
        assert!(err.contains("account id"), "{err}");
    };
    let set = |extra: &[&'static str]| {
        let mut args = vec!["connection", "set", "--connection", CONNECTION];
        args.extend_from_slice(extra);
        args
    };
    refused(
        &run_with_stdin(
            &["connection", "set-token", "--connection", CONNECTION],
            &envs,
            TOKEN,
        )
        .await,
    );
    refused(&run_with_stdin(&set(&["--timezone", "Europe/Berlin"]), &envs, "").await);
    for wrong in ["act_s1", "12/../me", "act_", " 1001", "act_1001?x=1"] {
        let mut args = set(&["--account-id"]);
        args.push(wrong);
        refused(&run_with_stdin(&args, &envs, "").await);
    }
    let stored = |db: &Db| {
        let db = db.clone();
        async move {
            connections::account_id(&mut db.conn().await.unwrap(), CONNECTION)
                .await
                .unwrap()
        }
    };
    assert_eq!(stored(&db).await.as_deref(), Some(bad), "nothing changed");
    assert_eq!(connection_row(&db).await.1, None, "no token stored");

    // The right id is taken, and then the token is.
    let out = run_with_stdin(&set(&["--account-id", "act_1001"]), &envs, "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(stored(&db).await.as_deref(), Some("act_1001"));
    let out = run_with_stdin(
        &["connection", "set-token", "--connection", CONNECTION],
        &envs,
        TOKEN,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(connection_row(&db).await.1.is_some());
}

// ---------- a Meta-like account: ad rows, attribution, statuses, appsecret_proof ----------

/// The app secret the Meta-like fake requires when a test says so, and the proof Meta expects for
/// [`TOKEN`]: HMAC-SHA256 of the token keyed by the secret, in lowercase hex (computed outside
/// this code base, with Python's `hmac`).
pub(crate) const APP_SECRET: &str = "app-secret-for-tests";
pub(crate) const TOKEN_PROOF: &str =
    "82b45da93e67067d1230a5595a269c71fa48adabf5efbd66dcf7b872b7cd515e";

/// Every `effective_status` Meta documents for ads.
const AD_STATUSES: [&str; 12] = [
    "ACTIVE",
    "PAUSED",
    "DELETED",
    "PENDING_REVIEW",
    "DISAPPROVED",
    "PREAPPROVED",
    "PENDING_BILLING_INFO",
    "CAMPAIGN_PAUSED",
    "ARCHIVED",
    "ADSET_PAUSED",
    "IN_PROCESS",
    "WITH_ISSUES",
];

/// One ad as Meta knows it: its ids, status, its ad set's attribution setting and its days.
#[derive(Debug, Clone)]
pub(crate) struct FakeAd {
    pub(crate) campaign: &'static str,
    pub(crate) adset: &'static str,
    pub(crate) ad: &'static str,
    pub(crate) status: &'static str,
    pub(crate) attribution: &'static str,
    pub(crate) days: Vec<FakeDay>,
}

/// One ad's day: money in cents (the fake writes it as Meta's decimal strings), counts, and the
/// action types with their counts and values (cents).
#[derive(Debug, Clone)]
pub(crate) struct FakeDay {
    pub(crate) date: &'static str,
    pub(crate) spend: i64,
    pub(crate) impressions: i64,
    pub(crate) clicks: i64,
    pub(crate) actions: Vec<(&'static str, i64)>,
    pub(crate) values: Vec<(&'static str, i64)>,
}

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn graph_refusal(code: i64, kind: &str, message: &str) -> Reply {
    Reply::json(
        400,
        serde_json::json!({"error": {"message": message, "type": kind, "code": code,
            "fbtrace_id": "AbCdEfGhIjK"}}),
    )
}

/// How the fake account treats large synchronous queries and async report runs (see
/// [`meta_graph`]). The default refuses nothing and completes a run after two polls.
#[derive(Debug, Clone)]
pub(crate) struct AsyncMeta {
    /// A synchronous query over more days than this (first and last counted) is refused with
    /// `refusal`; `None`: every synchronous query is answered.
    pub(crate) sync_max_days: Option<i64>,
    /// (code, subcode) of the refusal: Meta's "reduce the amount of data" / "use async".
    pub(crate) refusal: (i64, i64),
    /// Polls of a run that answer `Job Not Started`/`Job Running` (percent growing) before
    /// `outcome`.
    pub(crate) running_polls: usize,
    /// The run's last status: `Job Completed`, `Job Failed` or `Job Skipped`.
    pub(crate) outcome: &'static str,
    /// The first poll of all (over every run) answers only after this long.
    pub(crate) first_poll_delay: Duration,
    /// After its first poll, the first run is gone: Meta answers code 100 subcode 33 ("does not
    /// exist, cannot be loaded due to missing permissions"), as for a run it no longer keeps.
    pub(crate) forget_first_run: bool,
}

impl Default for AsyncMeta {
    fn default() -> Self {
        Self {
            sync_max_days: None,
            refusal: (100, 1_487_534),
            running_polls: 2,
            outcome: "Job Completed",
            first_poll_delay: Duration::ZERO,
            forget_first_run: false,
        }
    }
}

/// What the fake's async side saw: each run's POSTed parameters (index = run number) and every
/// poll's run id.
#[derive(Debug, Default, Clone)]
pub(crate) struct AsyncRuns {
    pub(crate) posts: Vec<HashMap<String, String>>,
    pub(crate) polls: Vec<String>,
    pub(crate) reads: usize,
}

/// Run ids the fake hands out: digits, as Meta's.
pub(crate) fn run_id(n: usize) -> String {
    format!("{}", 6_000_000_001u64 + n as u64)
}

/// `act_1001/insights` as Meta documents it, over `ads` (see [`meta_graph`]), with no size
/// limit on synchronous queries.
pub(crate) fn meta_account(
    ads: Vec<FakeAd>,
    secret: bool,
) -> impl Fn(usize, &Seen, &str) -> Reply + Send + Sync + 'static {
    meta_graph(ads, secret, AsyncMeta::default(), Arc::default())
}

/// `act_1001/insights` as Meta documents it, over `ads`:
/// - with `secret`, a request without the right `appsecret_proof` is refused (code 100);
/// - `level` groups the ads' rows (ad, adset, campaign); a campaign or ad set whose ads use
///   different attribution settings gets its row WITHOUT `actions`/`action_values`, as Meta
///   answers, so only ad-level requests see every conversion;
/// - `filtering` on `<level>.effective_status` picks the ads by status; without it, deleted and
///   archived ads are left out;
/// - only the `fields` asked for are sent; `time_range` and `time_increment=1` give one row per
///   day; pages of `limit` rows with a `paging.next` link carrying the token, as Meta's do;
/// - a synchronous query over more than `opts.sync_max_days` days is refused with `opts.refusal`;
/// - `POST act_1001/insights` starts an async run of those parameters (`{"report_run_id"}`),
///   `GET /{run}` answers `async_status`/`async_percent_completion` (running for
///   `opts.running_polls` polls, then `opts.outcome`), `GET /{run}/insights` pages the run's rows
///   as a synchronous answer would (only once completed); `runs` records them;
/// - every answer carries the four usage headers, far below any threshold.
pub(crate) fn meta_graph(
    ads: Vec<FakeAd>,
    secret: bool,
    opts: AsyncMeta,
    runs: Arc<Mutex<AsyncRuns>>,
) -> impl Fn(usize, &Seen, &str) -> Reply + Send + Sync + 'static {
    move |_, seen, base| {
        if secret {
            match seen.query.get("appsecret_proof").map(String::as_str) {
                None => {
                    return graph_refusal(
                        100,
                        "GraphMethodException",
                        "API calls from the server require an appsecret_proof argument",
                    )
                }
                Some(p) if p != TOKEN_PROOF => {
                    return graph_refusal(
                        100,
                        "GraphMethodException",
                        "Invalid appsecret_proof provided in the API argument",
                    )
                }
                Some(_) => {}
            }
        }
        let parts: Vec<&str> = seen.path.trim_start_matches('/').split('/').collect();
        let run_of = |id: &str| {
            let runs = runs.lock().unwrap();
            (0..runs.posts.len()).find(|n| run_id(*n) == id)
        };
        match (seen.method.as_str(), parts.as_slice()) {
            ("GET", ["v23.0", "act_1001", "insights"]) => {
                let range: serde_json::Value =
                    serde_json::from_str(seen.query.get("time_range").map_or("", String::as_str))
                        .unwrap_or_default();
                let days = match (range["since"].as_str(), range["until"].as_str()) {
                    (Some(a), Some(b)) => (day(b) - day(a)).num_days() + 1,
                    _ => 0,
                };
                if opts.sync_max_days.is_some_and(|max| days > max) {
                    let (code, subcode) = opts.refusal;
                    // Code 2 comes as a server error, code 100 as a bad request.
                    let status = if code == 2 { 500 } else { 400 };
                    return Reply::json(
                        status,
                        graph_error(
                            code,
                            subcode,
                            "Please reduce the amount of data you're asking for, then retry your request",
                        ),
                    );
                }
                match insight_rows(&ads, &seen.query) {
                    Ok(rows) => insights_page(&rows, seen, base),
                    Err(refusal) => refusal,
                }
            }
            ("POST", ["v23.0", "act_1001", "insights"]) => {
                let mut runs = runs.lock().unwrap();
                runs.posts.push(seen.query.clone());
                let id = run_id(runs.posts.len() - 1);
                with_usage(Reply::json(200, serde_json::json!({ "report_run_id": id })))
            }
            ("GET", ["v23.0", id]) if run_of(id).is_some() => {
                let mut runs = runs.lock().unwrap();
                runs.polls.push(id.to_string());
                let first_of_all = runs.polls.len() == 1;
                let polled = runs.polls.iter().filter(|p| p == id).count();
                if opts.forget_first_run && *id == run_id(0) && polled > 1 {
                    return Reply::json(
                        400,
                        graph_error(
                            100,
                            33,
                            "Unsupported get request. Object does not exist, cannot be loaded due to missing permissions, or does not support this operation",
                        ),
                    );
                }
                let (status, percent) = if polled <= opts.running_polls {
                    let percent = (polled - 1) * 100 / (opts.running_polls + 1);
                    let status = if polled == 1 {
                        "Job Not Started"
                    } else {
                        "Job Running"
                    };
                    (status, percent)
                } else {
                    (
                        opts.outcome,
                        if opts.outcome == "Job Completed" {
                            100
                        } else {
                            0
                        },
                    )
                };
                let reply = with_usage(Reply::json(
                    200,
                    serde_json::json!({"id": id, "account_id": "1001", "async_status": status,
                        "async_percent_completion": percent}),
                ));
                if first_of_all {
                    reply.after(opts.first_poll_delay)
                } else {
                    reply
                }
            }
            ("GET", ["v23.0", id, "insights"]) if run_of(id).is_some() => {
                let n = run_of(id).unwrap();
                let (params, done) = {
                    let mut runs = runs.lock().unwrap();
                    runs.reads += 1;
                    let polled = runs.polls.iter().filter(|p| p == id).count();
                    (
                        runs.posts[n].clone(),
                        polled > opts.running_polls && opts.outcome == "Job Completed",
                    )
                };
                if !done {
                    return graph_refusal(100, "OAuthException", "Report not ready");
                }
                match insight_rows(&ads, &params) {
                    Ok(rows) => insights_page(&rows, seen, base),
                    Err(refusal) => refusal,
                }
            }
            _ => graph_refusal(100, "GraphMethodException", "Unsupported get request."),
        }
    }
}

/// The rows Meta would answer the insights parameters `params` with (see [`meta_graph`]).
fn insight_rows(
    ads: &[FakeAd],
    params: &HashMap<String, String>,
) -> Result<Vec<serde_json::Value>, Reply> {
    let level = params.get("level").map_or("account", String::as_str);
    if !["ad", "adset", "campaign"].contains(&level) {
        return Err(graph_refusal(
            100,
            "OAuthException",
            "(#100) level must be one of ...",
        ));
    }
    let q = |k: &str| params.get(k).cloned().unwrap_or_default();
    let fields: Vec<String> = q("fields").split(',').map(str::to_string).collect();
    let asked = |f: &str| fields.iter().any(|x| x == f);
    let filtering: serde_json::Value = serde_json::from_str(&q("filtering")).unwrap_or_default();
    let statuses: Vec<String> = filtering
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| {
            c["operator"] == "IN"
                && c["field"]
                    .as_str()
                    .is_some_and(|f| f.ends_with(".effective_status"))
        })
        .and_then(|c| c["value"].as_array())
        .map(|v| {
            v.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_else(|| {
            AD_STATUSES
                .iter()
                .filter(|s| !["DELETED", "ARCHIVED"].contains(s))
                .map(|s| s.to_string())
                .collect()
        });
    let range: serde_json::Value = serde_json::from_str(&q("time_range")).unwrap_or_default();
    let (since, until) = (
        range["since"].as_str().unwrap_or("").to_string(),
        range["until"].as_str().unwrap_or("").to_string(),
    );
    // Group the ads' days by (date, the level's id), keeping the attributions met.
    type Group = (
        Vec<&'static str>,
        Vec<FakeDay>,
        &'static str,
        &'static str,
        &'static str,
    );
    let mut groups: std::collections::BTreeMap<(String, String), Group> = Default::default();
    for ad in ads
        .iter()
        .filter(|a| statuses.iter().any(|s| s == a.status))
    {
        let key = match level {
            "campaign" => ad.campaign,
            "adset" => ad.adset,
            _ => ad.ad,
        };
        for d in ad
            .days
            .iter()
            .filter(|d| since.as_str() <= d.date && d.date <= until.as_str())
        {
            let g = groups
                .entry((d.date.to_string(), key.to_string()))
                .or_insert_with(|| (Vec::new(), Vec::new(), ad.campaign, ad.adset, ad.ad));
            g.0.push(ad.attribution);
            g.1.push(d.clone());
        }
    }
    let rows: Vec<serde_json::Value> = groups
        .into_iter()
        .map(|((date, _), (attributions, days, campaign, adset, ad))| {
            let mut row = serde_json::json!({"date_start": date, "date_stop": date});
            for (field, id, from) in [
                ("campaign_id", campaign, "campaign"),
                ("adset_id", adset, "adset"),
                ("ad_id", ad, "ad"),
            ] {
                // A grouped row has the ids of its level and above only.
                let above = match level {
                    "campaign" => from == "campaign",
                    "adset" => from != "ad",
                    _ => true,
                };
                if asked(field) && above {
                    row[field] = id.into();
                }
            }
            let sum = |f: fn(&FakeDay) -> i64| days.iter().map(f).sum::<i64>();
            if asked("spend") {
                row["spend"] = money(sum(|d| d.spend)).into();
            }
            if asked("impressions") {
                row["impressions"] = sum(|d| d.impressions).to_string().into();
            }
            if asked("inline_link_clicks") {
                row["inline_link_clicks"] = sum(|d| d.clicks).to_string().into();
            }
            let one_attribution = attributions.iter().all(|a| *a == attributions[0]);
            if one_attribution {
                let mut counts: std::collections::BTreeMap<&str, i64> = Default::default();
                let mut values: std::collections::BTreeMap<&str, i64> = Default::default();
                for d in &days {
                    for (t, n) in &d.actions {
                        *counts.entry(t).or_default() += n;
                    }
                    for (t, v) in &d.values {
                        *values.entry(t).or_default() += v;
                    }
                }
                if asked("actions") && !counts.is_empty() {
                    row["actions"] = counts
                        .iter()
                        .map(|(t, n)| serde_json::json!({"action_type": t, "value": n.to_string()}))
                        .collect();
                }
                if asked("action_values") && !values.is_empty() {
                    row["action_values"] = values
                        .iter()
                        .map(|(t, v)| serde_json::json!({"action_type": t, "value": money(*v)}))
                        .collect();
                }
            }
            row
        })
        .collect();
    Ok(rows)
}

/// One page of `rows` for the request `seen` (`limit`, `after`), with a `paging.next` link to the
/// same path when rows are left, and the usage headers.
fn insights_page(rows: &[serde_json::Value], seen: &Seen, base: &str) -> Reply {
    let q = |k: &str| seen.query.get(k).cloned().unwrap_or_default();
    let limit: usize = q("limit").parse().unwrap_or(25);
    let offset: usize = seen
        .query
        .get("after")
        .and_then(|a| a.strip_prefix("row"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let page: Vec<_> = rows.iter().skip(offset).take(limit).cloned().collect();
    let mut body = serde_json::json!({ "data": page });
    if offset + limit < rows.len() {
        let mut next = reqwest::Url::parse(&format!("{base}{}", seen.path)).unwrap();
        next.query_pairs_mut()
            .extend_pairs(seen.query.iter().filter(|(k, _)| k.as_str() != "after"))
            .append_pair("access_token", TOKEN)
            .append_pair("after", &format!("row{}", offset + limit));
        body["paging"] = serde_json::json!({"cursors": {"after": format!("row{}", offset + limit)},
            "next": next.as_str()});
    }
    with_usage(Reply::json(200, body))
}

/// `reply` with the four usage headers Meta sends, far below any threshold.
fn with_usage(reply: Reply) -> Reply {
    reply
        .header("X-Business-Use-Case-Usage", usage_header(3, 0))
        .header(
            "X-Ad-Account-Usage",
            serde_json::json!({"acc_id_util_pct": 2.5, "reset_time_duration": 0,
                "ads_api_access_tier": "standard_access"}),
        )
        .header(
            "X-App-Usage",
            serde_json::json!({"call_count": 4, "total_cputime": 1, "total_time": 2}),
        )
        .header(
            "X-FB-Ads-Insights-Throttle",
            serde_json::json!({"app_id_util_pct": 1.5, "acc_id_util_pct": 2.5,
                "ads_api_access_tier": "standard_access"}),
        )
}

/// Our catalogue for the Meta-like account: the test seller plus an ARCHIVED ad set (ad-4) and an
/// ad set with an ad under cmp-2, a PAUSED campaign cmp-5 (page-2) with an ad set and ad, a
/// PAUSED ad-7, and an ad set and ad under cmp-3 that Meta has DELETED. Meta ids on all of them
/// (campaigns 12000k, ad sets 23000k, ads 34000k).
pub(crate) fn account_catalog() -> Catalog {
    let mut c = meta_catalog();
    let adset = |k: u32, campaign: u32, status: &str| ads_stats::db::models::NewAdset {
        id: format!("s1-adset-{k}"),
        seller_id: SELLER.into(),
        campaign_id: format!("s1-cmp-{campaign}"),
        name: format!("Ad set {k}"),
        status: status.into(),
        daily_budget_cents: None,
    };
    let ad = |k: u32, adset: u32, status: &str| ads_stats::db::models::NewAd {
        id: format!("s1-ad-{k}"),
        seller_id: SELLER.into(),
        adset_id: format!("s1-adset-{adset}"),
        name: format!("Ad {k}"),
        status: status.into(),
    };
    c.campaigns.push(NewCampaign {
        id: "s1-cmp-5".into(),
        seller_id: SELLER.into(),
        connection_id: CONNECTION.into(),
        sellpage_id: Some("s1-page-2".into()),
        name: "Campaign 5".into(),
        status: "PAUSED".into(),
        daily_budget_cents: 3_000,
    });
    c.adsets.extend([
        adset(3, 1, "ARCHIVED"),
        adset(4, 2, "ACTIVE"),
        adset(5, 5, "ACTIVE"),
        adset(6, 3, "ACTIVE"),
    ]);
    c.ads.extend([
        ad(4, 3, "ACTIVE"),
        ad(5, 4, "ACTIVE"),
        ad(6, 5, "ACTIVE"),
        ad(7, 2, "PAUSED"),
        ad(8, 6, "ACTIVE"),
    ]);
    c
}

pub(crate) async fn set_account_ids(app: &TestApp) {
    let mut conn = app.conn().await;
    let mut ids = vec![(
        HierarchyTable::Campaigns,
        "s1-cmp-5".to_string(),
        "120005".to_string(),
    )];
    for k in 3..=6 {
        ids.push((
            HierarchyTable::Adsets,
            format!("s1-adset-{k}"),
            format!("23000{k}"),
        ));
    }
    for k in 2..=8 {
        ids.push((
            HierarchyTable::Ads,
            format!("s1-ad-{k}"),
            format!("34000{k}"),
        ));
    }
    for (table, id, ext) in ids {
        assert_eq!(
            catalog::set_external_id(&mut conn, table, &id, Some(&ext))
                .await
                .unwrap(),
            1,
            "{id}"
        );
    }
}

fn fake_day(
    date: &'static str,
    spend: i64,
    impressions: i64,
    clicks: i64,
    actions: &[(&'static str, i64)],
    values: &[(&'static str, i64)],
) -> FakeDay {
    FakeDay {
        date,
        spend,
        impressions,
        clicks,
        actions: actions.to_vec(),
        values: values.to_vec(),
    }
}

/// The account's ads over 2026-11-20..21. cmp-1's ad sets use different attribution settings
/// (so a campaign-level answer for it has no conversions); ad 340099 is not in our catalogue
/// (its campaign and ad set are), ad 349999 is in nothing of ours.
pub(crate) fn account_ads() -> Vec<FakeAd> {
    let (d1, d2) = ("2026-11-20", "2026-11-21");
    let ad = |campaign, adset, ad, status, attribution, days| FakeAd {
        campaign,
        adset,
        ad,
        status,
        attribution,
        days,
    };
    vec![
        ad(
            "120001",
            "230001",
            "340001",
            "ACTIVE",
            "7d_click_1d_view",
            vec![
                fake_day(
                    d1,
                    1234,
                    1000,
                    20,
                    &[
                        ("view_content", 30),
                        ("offsite_conversion.fb_pixel_view_content", 28),
                        ("add_to_cart", 5),
                        ("initiate_checkout", 3),
                        ("purchase", 2),
                        ("offsite_conversion.fb_pixel_purchase", 2),
                        ("omni_purchase", 3),
                    ],
                    &[
                        ("purchase", 5998),
                        ("offsite_conversion.fb_pixel_purchase", 5998),
                        ("omni_purchase", 8997),
                    ],
                ),
                fake_day(
                    d2,
                    2050,
                    1500,
                    31,
                    &[("view_content", 41), ("purchase", 1), ("omni_purchase", 1)],
                    &[("purchase", 1999), ("omni_purchase", 1999)],
                ),
            ],
        ),
        ad(
            "120001",
            "230001",
            "340002",
            "ACTIVE",
            "7d_click_1d_view",
            vec![fake_day(
                d1,
                29,
                41,
                1,
                &[
                    ("offsite_conversion.fb_pixel_add_to_cart", 1),
                    ("offsite_conversion.fb_pixel_purchase", 1),
                ],
                &[("offsite_conversion.fb_pixel_purchase", 1999)],
            )],
        ),
        ad(
            "120001",
            "230002",
            "340003",
            "ACTIVE",
            "1d_click",
            vec![
                fake_day(
                    d1,
                    777,
                    700,
                    7,
                    &[("initiate_checkout", 2), ("purchase", 1)],
                    &[("purchase", 4500)],
                ),
                fake_day(d2, 801, 810, 9, &[], &[]),
            ],
        ),
        ad(
            "120001",
            "230003",
            "340004",
            "ARCHIVED",
            "1d_click",
            vec![fake_day(
                d1,
                333,
                333,
                3,
                &[("purchase", 1)],
                &[("purchase", 1001)],
            )],
        ),
        ad(
            "120002",
            "230004",
            "340005",
            "ACTIVE",
            "7d_click_1d_view",
            vec![
                fake_day(
                    d1,
                    5122,
                    6025,
                    120,
                    &[("view_content", 84), ("add_to_cart", 10), ("purchase", 2)],
                    &[("purchase", 15136)],
                ),
                fake_day(
                    d2,
                    7010,
                    8000,
                    160,
                    &[("purchase", 3)],
                    &[("purchase", 29997)],
                ),
            ],
        ),
        ad(
            "120005",
            "230005",
            "340006",
            "CAMPAIGN_PAUSED",
            "7d_click_1d_view",
            vec![fake_day(
                d1,
                1500,
                900,
                12,
                &[("purchase", 1)],
                &[("purchase", 3000)],
            )],
        ),
        ad(
            "120001",
            "230002",
            "340007",
            "PAUSED",
            "1d_click",
            vec![fake_day(d1, 110, 110, 1, &[], &[])],
        ),
        ad(
            "120003",
            "230006",
            "340008",
            "DELETED",
            "7d_click_1d_view",
            vec![fake_day(
                d2,
                725,
                70,
                7,
                &[("purchase", 1)],
                &[("purchase", 1250)],
            )],
        ),
        ad(
            "120001",
            "230001",
            "340099",
            "ACTIVE",
            "7d_click_1d_view",
            vec![
                fake_day(d1, 200, 200, 2, &[("purchase", 1)], &[("purchase", 500)]),
                fake_day(d2, 300, 300, 3, &[], &[]),
            ],
        ),
        ad(
            "129999",
            "239999",
            "349999",
            "ACTIVE",
            "7d_click_1d_view",
            vec![
                fake_day(d1, 100000, 1, 1, &[], &[]),
                fake_day(d2, 100000, 1, 1, &[], &[]),
            ],
        ),
    ]
}

/// What a reader computes from the fake's ad rows with the default action types: per (entity of
/// `level`, date) the sums of every metric we keep, keyed by our entity id (rows whose id at that
/// level is none of ours are left out), and the number of ad rows left out.
fn reader_sums(
    level: Level,
    ours: &HashMap<&str, &str>,
) -> (HashMap<(String, NaiveDate), [i64; 8]>, u64) {
    reader_sums_of(&account_ads(), level, ours)
}

/// [`reader_sums`] over any ads: what a reader computes from the fake's ad rows for `level`.
pub(crate) fn reader_sums_of(
    ads: &[FakeAd],
    level: Level,
    ours: &HashMap<&str, &str>,
) -> (HashMap<(String, NaiveDate), [i64; 8]>, u64) {
    let first = |list: &[(&str, i64)], types: [&str; 2]| {
        types
            .iter()
            .find_map(|t| list.iter().find(|(x, _)| x == t).map(|(_, n)| *n))
            .unwrap_or(0)
    };
    let mut sums: HashMap<(String, NaiveDate), [i64; 8]> = HashMap::new();
    let mut unmatched = 0;
    for ad in ads {
        let ext = match level {
            Level::Campaign => ad.campaign,
            Level::Adset => ad.adset,
            Level::Ad => ad.ad,
        };
        for d in &ad.days {
            let Some(id) = ours.get(ext) else {
                unmatched += 1;
                continue;
            };
            let s = sums.entry((id.to_string(), day(d.date))).or_default();
            let row = [
                d.spend,
                d.impressions,
                d.clicks,
                first(
                    &d.actions,
                    ["view_content", "offsite_conversion.fb_pixel_view_content"],
                ),
                first(
                    &d.actions,
                    ["add_to_cart", "offsite_conversion.fb_pixel_add_to_cart"],
                ),
                first(
                    &d.actions,
                    [
                        "initiate_checkout",
                        "offsite_conversion.fb_pixel_initiate_checkout",
                    ],
                ),
                first(
                    &d.actions,
                    ["purchase", "offsite_conversion.fb_pixel_purchase"],
                ),
                first(
                    &d.values,
                    ["purchase", "offsite_conversion.fb_pixel_purchase"],
                ),
            ];
            for (a, b) in s.iter_mut().zip(row) {
                *a += b;
            }
        }
    }
    (sums, unmatched)
}

pub(crate) fn totals_of(d: &ads_stats::db::models::DailyStat) -> [i64; 8] {
    [
        d.spend_cents,
        d.impressions,
        d.clicks,
        d.content_views,
        d.add_to_cart,
        d.checkouts,
        d.purchases,
        d.revenue_cents,
    ]
}

pub(crate) async fn daily_rows(
    app: &TestApp,
    level: &str,
) -> Vec<ads_stats::db::models::DailyStat> {
    use ads_stats::db::models::DailyStat;
    use ads_stats::db::schema::ad_stats_daily;
    let mut conn = app.conn().await;
    let conn = &mut conn;
    db_run!(conn, {
        ad_stats_daily::table
            .filter(ad_stats_daily::seller_id.eq(SELLER))
            .filter(ad_stats_daily::level.eq(level))
            .select(DailyStat::as_select())
            .load(conn)
            .await
            .unwrap()
    })
}

/// The app against the Meta-like fake over [`account_catalog`], with the Meta settings adjusted.
pub(crate) async fn account_app(
    backend: Backend,
    graph: &FakeGraph,
    adjust: impl FnOnce(&mut MetaSettings),
) -> TestApp {
    let mut meta = meta_settings(&graph.url);
    adjust(&mut meta);
    let provider = Arc::new(MetaProvider::new(&meta).unwrap());
    let app = app(backend)
        .with_catalog(account_catalog())
        .with_settings(move |s| {
            s.provider = ProviderKind::Meta;
            s.stats.aggregation = Aggregation::Latest;
            s.meta = meta;
        })
        .with_provider(provider)
        .spawn()
        .await;
    connect_account(&mut app.conn().await).await;
    set_account_ids(&app).await;
    app
}

/// The value of `ads_stats_provider_unmatched_rows_total{provider="meta"}`, polled until it is
/// `expected` (it is recorded a moment after the job's record commits) or the deadline passes.
pub(crate) async fn unmatched_rows_metric(app: &TestApp, expected: f64) -> f64 {
    let started = Instant::now();
    loop {
        let response = app
            .send(app.request(reqwest::Method::GET, "/metrics"))
            .await;
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        let value = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("ads_stats_provider_unmatched_rows_total{provider=\"meta\"} ")
            })
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(f64::NAN);
        if value == expected || started.elapsed() > Duration::from_secs(10) {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Over [`account_catalog`]: Meta id → ours per level, and which of ours deliver (ACTIVE
/// themselves and above), as `(level name, level, ours, delivering)`.
pub(crate) fn account_levels() -> [AccountLevel; 3] {
    let campaigns: HashMap<&'static str, &'static str> = HashMap::from([
        ("120001", "s1-cmp-1"),
        ("120002", "s1-cmp-2"),
        ("120003", "s1-cmp-3"),
        ("120005", "s1-cmp-5"),
    ]);
    let adsets: HashMap<&'static str, &'static str> = HashMap::from([
        ("230001", "s1-adset-1"),
        ("230002", "s1-adset-2"),
        ("230003", "s1-adset-3"),
        ("230004", "s1-adset-4"),
        ("230005", "s1-adset-5"),
        ("230006", "s1-adset-6"),
    ]);
    let ads: HashMap<&'static str, &'static str> = HashMap::from([
        ("340001", "s1-ad-1"),
        ("340002", "s1-ad-2"),
        ("340003", "s1-ad-3"),
        ("340004", "s1-ad-4"),
        ("340005", "s1-ad-5"),
        ("340006", "s1-ad-6"),
        ("340007", "s1-ad-7"),
        ("340008", "s1-ad-8"),
    ]);
    let delivering = [
        (
            "CAMPAIGN",
            Level::Campaign,
            vec!["s1-cmp-1", "s1-cmp-2", "s1-cmp-3"],
        ),
        (
            "ADSET",
            Level::Adset,
            vec!["s1-adset-1", "s1-adset-2", "s1-adset-4", "s1-adset-6"],
        ),
        (
            "AD",
            Level::Ad,
            vec!["s1-ad-1", "s1-ad-2", "s1-ad-3", "s1-ad-5", "s1-ad-8"],
        ),
    ];
    let [c, a, d] = delivering;
    [
        (c.0, c.1, campaigns, c.2),
        (a.0, a.1, adsets, a.2),
        (d.0, d.1, ads, d.2),
    ]
}

/// One level of [`account_levels`].
pub(crate) type AccountLevel = (
    &'static str,
    Level,
    HashMap<&'static str, &'static str>,
    Vec<&'static str>,
);

on_both_backends!(
    ad_rows_sum_to_every_level_to_the_cent,
    action_type_settings_choose_the_counted_type,
    appsecret_proof_is_sent_exactly_when_a_secret_is_set,
);

/// Campaign, ad-set and ad jobs over two days: every number written equals, to the cent, the sum
/// a reader computes from the fake's ad rows, including a PAUSED campaign, an ARCHIVED ad set, a
/// PAUSED ad and an ad Meta DELETED; cmp-1 (mixed attribution) keeps its purchases; rows of ads we
/// do not know are counted and not written; the sellpage rollup adds the campaigns up.
async fn ad_rows_sum_to_every_level_to_the_cent(backend: Backend) {
    let graph = FakeGraph::start(meta_account(account_ads(), false)).await;
    let app = account_app(backend, &graph, |_| {}).await;
    for level in [Level::Campaign, Level::Adset, Level::Ad] {
        enqueue(&app, level, "2026-11-20", "2026-11-21").await;
    }
    app.wait_until_idle(Duration::from_secs(30)).await;
    let jobs = app.jobs().await;
    assert!(
        jobs.iter()
            .all(|j| j.status == "SUCCEEDED" && j.attempts == 1),
        "{jobs:#?}"
    );
    let levels = account_levels();
    let mut unmatched_total = 0;
    let mut campaign_sums = HashMap::new();
    for (name, level, ours, delivering) in levels {
        let (mut expected, unmatched) = reader_sums(level, &ours);
        unmatched_total += unmatched;
        // A delivering entity without rows on a day reads zeros; the others only have their rows.
        for id in delivering {
            for date in ["2026-11-20", "2026-11-21"] {
                expected.entry((id.to_string(), day(date))).or_default();
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
        assert_eq!(written.len(), expected.len(), "{name}: {written:#?}");
        if level == Level::Campaign {
            campaign_sums = expected;
        }
    }
    // The regression this guards: cmp-1's ad sets differ in attribution, so only ad rows carry
    // its purchases (2 + 1 + 1 + 1 of ours, and the one of ad 340099 we do not track).
    assert_eq!(
        campaign_sums[&("s1-cmp-1".to_string(), day("2026-11-20"))][6],
        6
    );
    // The PAUSED campaign's spend of the 20th and the DELETED ad's of the 21st are kept.
    assert_eq!(
        campaign_sums[&("s1-cmp-5".to_string(), day("2026-11-20"))][0],
        1500
    );
    assert_eq!(
        campaign_sums[&("s1-cmp-3".to_string(), day("2026-11-21"))][0],
        725
    );
    // Sellpages add their campaigns up.
    assert_sellpages_add_up(
        &app,
        &campaign_sums,
        &[day("2026-11-20"), day("2026-11-21")],
    )
    .await;
    // Ad 349999's two rows at each level, and ad 340099's two at ad level.
    assert_eq!(unmatched_total, 8);
    assert_eq!(unmatched_rows_metric(&app, 8.0).await, 8.0);
    // Every request asked as Ads Manager shows: ad rows with the three ids, every status,
    // each ad set's own attribution, conversions reported the `mixed` way.
    let seen = graph.seen();
    assert!(
        seen.len() >= 3 * 2,
        "paged at 2 rows a page: {}",
        seen.len()
    );
    for s in seen.iter().filter(|s| !s.query.contains_key("after")) {
        assert_eq!(s.query["level"], "ad");
        assert_eq!(s.query["time_increment"], "1");
        assert_eq!(s.query["use_unified_attribution_setting"], "true");
        assert_eq!(s.query["action_report_time"], "mixed");
        assert!(
            !s.query.contains_key("appsecret_proof"),
            "no app secret set"
        );
        let fields: Vec<&str> = s.query["fields"].split(',').collect();
        for f in [
            "campaign_id",
            "adset_id",
            "ad_id",
            "date_start",
            "spend",
            "impressions",
            "inline_link_clicks",
            "actions",
            "action_values",
        ] {
            assert!(fields.contains(&f), "{f} in {fields:?}");
        }
        let filtering: serde_json::Value = serde_json::from_str(&s.query["filtering"]).unwrap();
        assert_eq!(filtering.as_array().map(Vec::len), Some(1), "{filtering}");
        assert_eq!(filtering[0]["field"], "ad.effective_status");
        assert_eq!(filtering[0]["operator"], "IN");
        let mut asked: Vec<&str> = filtering[0]["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        asked.sort();
        let mut all = AD_STATUSES.to_vec();
        all.sort();
        assert_eq!(asked, all);
    }
    drop(app.shutdown().await);
}

/// `meta.action_types.purchase = ["omni_purchase", "purchase"]`: ad-1's purchases and revenue
/// come from `omni_purchase` (3 and 89.97 where `purchase` says 2 and 59.98); the other steps
/// keep their defaults. `meta.action_report_time = "impression"` is what Meta is asked.
async fn action_type_settings_choose_the_counted_type(backend: Backend) {
    let graph = FakeGraph::start(meta_account(account_ads(), false)).await;
    let app = account_app(backend, &graph, |m| {
        m.action_types.purchase = vec!["omni_purchase".into(), "purchase".into()];
        m.action_types.content_view = vec!["offsite_conversion.fb_pixel_view_content".into()];
        m.action_report_time = ads_stats::config::ActionReportTime::Impression;
    })
    .await;
    enqueue(&app, Level::Ad, "2026-11-20", "2026-11-20").await;
    app.wait_until_idle(Duration::from_secs(20)).await;
    assert_eq!(app.jobs().await[0].status, "SUCCEEDED");
    let ad1 = writes::daily_row(&mut app.conn().await, "AD", "s1-ad-1", day("2026-11-20"))
        .await
        .unwrap()
        .expect("ad-1's row");
    assert_eq!(
        (
            ad1.purchases,
            ad1.revenue_cents,
            ad1.content_views,
            ad1.add_to_cart
        ),
        (3, 8997, 28, 5)
    );
    // Ad-3 has no omni_purchase: the next type in the list counts.
    let ad3 = writes::daily_row(&mut app.conn().await, "AD", "s1-ad-3", day("2026-11-20"))
        .await
        .unwrap()
        .expect("ad-3's row");
    assert_eq!((ad3.purchases, ad3.revenue_cents), (1, 4500));
    for s in graph.seen() {
        assert_eq!(s.query["action_report_time"], "impression");
    }
    drop(app.shutdown().await);
}

/// An app that requires the app secret: with `meta.app_secret` set every request (every page)
/// carries Meta's proof and the job succeeds; without it no request carries one, Meta refuses
/// with code 100 and the job fails at once, writing nothing.
async fn appsecret_proof_is_sent_exactly_when_a_secret_is_set(backend: Backend) {
    let graph = FakeGraph::start(meta_account(account_ads(), true)).await;
    let app = account_app(backend, &graph, |m| m.app_secret = Secret::new(APP_SECRET)).await;
    enqueue(&app, Level::Campaign, "2026-11-20", "2026-11-21").await;
    app.wait_until_idle(Duration::from_secs(20)).await;
    let jobs = app.jobs().await;
    assert_eq!(
        (jobs[0].status.as_str(), jobs[0].attempts),
        ("SUCCEEDED", 1),
        "{jobs:#?}"
    );
    let seen = graph.seen();
    assert!(seen.len() >= 2, "more than one page: {}", seen.len());
    for s in &seen {
        assert_eq!(
            s.query.get("appsecret_proof").map(String::as_str),
            Some(TOKEN_PROOF)
        );
        assert!(
            !s.raw_target.contains(APP_SECRET),
            "the secret itself never travels"
        );
    }
    assert_eq!(
        raw(&app, "CAMPAIGN", "s1-cmp-2", "2026-11-21").await[0].spend_cents,
        7010
    );
    drop(app.shutdown().await);

    let graph = FakeGraph::start(meta_account(account_ads(), true)).await;
    let app = account_app(backend, &graph, |_| {}).await;
    enqueue(&app, Level::Campaign, "2026-11-20", "2026-11-20").await;
    app.wait_until_idle(Duration::from_secs(20)).await;
    let jobs = app.jobs().await;
    assert_eq!(
        (jobs[0].status.as_str(), jobs[0].attempts),
        ("FAILED", 1),
        "{jobs:#?}"
    );
    assert_eq!(
        jobs[0].last_error.as_deref(),
        Some("the stats provider rejected the request")
    );
    assert_eq!(graph.requests(), 1);
    assert!(!graph.seen()[0].query.contains_key("appsecret_proof"));
    assert_eq!(app.tier_counts(SELLER).await, (0, 0, 0));
    drop(app.shutdown().await);
}

/// The account's sellpages add their campaigns up on every date of `dates`, to the cent:
/// page-1 = cmp-1 + cmp-2, page-2 = cmp-3 + cmp-5 (`campaign_sums` as [`reader_sums_of`] gives
/// them for the campaign level).
pub(crate) async fn assert_sellpages_add_up(
    app: &TestApp,
    campaign_sums: &HashMap<(String, NaiveDate), [i64; 8]>,
    dates: &[NaiveDate],
) {
    for (page, members) in [
        ("s1-page-1", ["s1-cmp-1", "s1-cmp-2"]),
        ("s1-page-2", ["s1-cmp-3", "s1-cmp-5"]),
    ] {
        for date in dates {
            let mut sum = [0i64; 8];
            for c in members {
                if let Some(t) = campaign_sums.get(&(c.to_string(), *date)) {
                    for (a, b) in sum.iter_mut().zip(t) {
                        *a += b;
                    }
                }
            }
            let row = writes::sellpage_row(&mut app.conn().await, page, *date)
                .await
                .unwrap()
                .expect("sellpage row");
            let got = [
                row.ad_spend_cents,
                row.impressions,
                row.clicks,
                row.content_views,
                row.add_to_cart,
                row.checkouts,
                row.purchases,
                row.revenue_cents,
            ];
            assert_eq!(got, sum, "{page} {date}");
        }
    }
}
