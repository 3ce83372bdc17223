//! The stats read API: exactly the rows in the tables, page after page without gaps or repeats,
//! the same rows as CSV, sums with ratios from the sums, bad parameters refused, and every query
//! served from an index.

use std::collections::HashSet;

use ads_stats::db::models::{DailyStat, SellpageStat};
use ads_stats::db::schema::{ad_stats_daily, sellpage_stats_daily};
use ads_stats::db_run;
use ads_stats::domain::{ratios, Level};
use ads_stats::pipeline::SyncRequest;
use chrono::NaiveDate;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use reqwest::Method;
use serde_json::Value;

use crate::helpers::{app, merge, seller_catalog, today, Backend, TestApp, TestDb};
use crate::on_both_backends;

on_both_backends!(
    pages_hold_exactly_the_table_rows_without_gaps_or_repeats,
    sellpage_pages_hold_exactly_the_table_rows,
    summary_sums_per_entity_with_ratios_from_the_sums,
    csv_carries_the_same_rows,
    filters_stay_inside_the_callers_seller,
    bad_parameters_are_400_with_a_code,
    odd_ids_survive_csv_and_cursors_and_control_characters_are_400,
);

/// Ids with a comma, a quote and the cursor's own separator; a CSV reader and the cursor must
/// both get them back whole.
async fn odd_ids_survive_csv_and_cursors_and_control_characters_are_400(backend: Backend) {
    use diesel::sql_types::{Date as SqlDate, Text as SqlText, Timestamp};
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .spawn()
        .await;
    let ids = ["a,b", "say \"hi\"", "x|y", "plain", "z|"];
    let day = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap();
    {
        let mut conn = app.conn().await;
        let conn = &mut conn;
        for id in ids {
            db_run!(conn, {
                diesel::sql_query(
                    "INSERT INTO ad_stats_daily (seller_id, level, entity_id, stat_date, spend_cents, \
                     impressions, clicks, content_views, add_to_cart, checkouts, purchases, \
                     revenue_cents, cpm, ctr, roas, raw_count, updated_at) \
                     VALUES ($1, 'AD', $2, $3, 100, 1000, 10, 5, 2, 1, 1, 300, 1.0, 1.0, 3.0, 1, $4)",
                )
                .bind::<SqlText, _>("s1")
                .bind::<SqlText, _>(id)
                .bind::<SqlDate, _>(day)
                .bind::<Timestamp, _>(ads_stats::db::now_utc())
                .execute(conn)
                .await
            })
            .unwrap();
        }
    }
    let path = "/api/ads-manager/stats?level=AD&from=2026-11-01&to=2026-11-30&limit=2";
    let (rows, pages) = all_pages(&app, path, "s1").await;
    assert_eq!(pages, 3);
    let mut expected: Vec<&str> = ids.to_vec();
    expected.sort();
    let got: Vec<&str> = rows
        .iter()
        .map(|r| r["entityId"].as_str().unwrap())
        .collect();
    assert_eq!(got, expected, "every id once, in order, across cursors");
    let response = app
        .send(
            app.request(
                Method::GET,
                "/api/ads-manager/stats?level=AD&from=2026-11-01&to=2026-11-30",
            )
            .bearer_auth(app.token("s1"))
            .header("Accept", "text/csv"),
        )
        .await;
    assert_eq!(response.headers()["vary"], "Accept");
    let table = parse_csv(&response.text().await.unwrap());
    let column = table[0].iter().position(|h| h == "entityId").unwrap();
    let from_csv: Vec<&str> = table[1..].iter().map(|r| r[column].as_str()).collect();
    assert_eq!(from_csv, expected);
    // A NUL cannot reach PostgreSQL (it would be a 500 there): refused as bad input everywhere.
    let nul_cursor: String = "2026-11-01|\0"
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    for (path, code) in [
        (
            "/api/ads-manager/stats?level=AD&from=2026-11-01&to=2026-11-30&entityId=%00"
                .to_string(),
            "invalid_query",
        ),
        (
            "/api/ads-manager/sellpages/stats?from=2026-11-01&to=2026-11-30&sellpageId=a%00b"
                .to_string(),
            "invalid_query",
        ),
        (
            format!(
                "/api/ads-manager/stats?level=AD&from=2026-11-01&to=2026-11-30&cursor={nul_cursor}"
            ),
            "invalid_cursor",
        ),
    ] {
        let response = get(&app, &path, "s1").await;
        assert_eq!(response.status(), 400, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], code, "{path}");
    }
    app.shutdown().await;
}

/// The last `days` days, oldest first.
fn days(n: i64) -> Vec<NaiveDate> {
    (0..n)
        .rev()
        .map(|k| today() - chrono::Duration::days(k))
        .collect()
}

/// Two sellers, each synced at every level on several days (s1 twice on the last day).
async fn synced_app(backend: Backend) -> TestApp {
    let app = app(backend)
        .with_catalog(merge(seller_catalog("s1"), seller_catalog("s2")))
        .spawn()
        .await;
    for (seller, n) in [("s1", 6), ("s2", 3)] {
        for day in days(n) {
            for level in Level::ALL {
                let request = SyncRequest::one_day(seller, level, day);
                app.app().pipeline().run(&request).await.expect("sync");
            }
        }
    }
    let request = SyncRequest::one_day("s1", Level::Campaign, today());
    app.app().pipeline().run(&request).await.expect("sync");
    app
}

async fn get(app: &TestApp, path: &str, seller: &str) -> reqwest::Response {
    app.send(
        app.request(Method::GET, path)
            .bearer_auth(app.token(seller)),
    )
    .await
}

async fn get_json(app: &TestApp, path: &str, seller: &str) -> Value {
    let response = get(app, path, seller).await;
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

/// Follows `nextCursor` from the first page to the last; every row of every page, in order.
async fn all_pages(app: &TestApp, path: &str, seller: &str) -> (Vec<Value>, usize) {
    let mut rows = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}&cursor={c}"),
            None => path.to_string(),
        };
        let body = get_json(app, &url, seller).await;
        pages += 1;
        rows.extend(body["rows"].as_array().unwrap().iter().cloned());
        match body["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => {
                assert!(body["nextCursor"].is_null());
                return (rows, pages);
            }
        }
        assert!(pages < 1000, "pagination never ends");
    }
}

fn timestamp(t: chrono::NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn daily_json(d: &DailyStat) -> Value {
    serde_json::json!({
        "level": d.level, "entityId": d.entity_id, "date": d.stat_date.to_string(),
        "spendCents": d.spend_cents, "impressions": d.impressions, "clicks": d.clicks,
        "contentViews": d.content_views, "addToCart": d.add_to_cart, "checkouts": d.checkouts,
        "purchases": d.purchases, "revenueCents": d.revenue_cents, "cpm": d.cpm, "ctr": d.ctr,
        "roas": d.roas, "rawCount": d.raw_count, "updatedAt": timestamp(d.updated_at),
        // The seed's connections keep the default currency.
        "currency": "USD",
    })
}

/// The seller's daily rows at the level, straight from the table, in (date, entity) order.
async fn table_daily(app: &TestApp, seller: &str, level: &str) -> Vec<DailyStat> {
    let mut conn = app.conn().await;
    let conn = &mut conn;
    db_run!(conn, {
        ad_stats_daily::table
            .filter(ad_stats_daily::seller_id.eq(seller))
            .filter(ad_stats_daily::level.eq(level))
            .order((ad_stats_daily::stat_date, ad_stats_daily::entity_id))
            .select(DailyStat::as_select())
            .load(conn)
            .await
    })
    .unwrap()
}

async fn table_sellpages(app: &TestApp, seller: &str) -> Vec<SellpageStat> {
    let mut conn = app.conn().await;
    let conn = &mut conn;
    db_run!(conn, {
        sellpage_stats_daily::table
            .filter(sellpage_stats_daily::seller_id.eq(seller))
            .order((
                sellpage_stats_daily::stat_date,
                sellpage_stats_daily::sellpage_id,
            ))
            .select(SellpageStat::as_select())
            .load(conn)
            .await
    })
    .unwrap()
}

fn range() -> String {
    let all = days(6);
    format!("from={}&to={}", all[0], all[all.len() - 1])
}

async fn pages_hold_exactly_the_table_rows_without_gaps_or_repeats(backend: Backend) {
    let app = synced_app(backend).await;
    for level in ["CAMPAIGN", "ADSET", "AD"] {
        let expected: Vec<Value> = table_daily(&app, "s1", level)
            .await
            .iter()
            .map(daily_json)
            .collect();
        assert!(expected.len() > 7, "enough rows for several pages");
        let path = format!("/api/ads-manager/stats?level={level}&{}&limit=7", range());
        let (rows, pages) = all_pages(&app, &path, "s1").await;
        assert_eq!(pages, expected.len().div_ceil(7).max(1));
        let keys: HashSet<(String, String)> = rows
            .iter()
            .map(|r| (r["date"].to_string(), r["entityId"].to_string()))
            .collect();
        assert_eq!(keys.len(), rows.len(), "no row twice");
        assert_eq!(
            rows, expected,
            "{level}: exactly the table's rows, in order"
        );
    }
    // The default page is 100 rows; a narrower range holds exactly its days.
    let day = today().to_string();
    let body = get_json(
        &app,
        &format!("/api/ads-manager/stats?level=AD&from={day}&to={day}"),
        "s1",
    )
    .await;
    let expected: Vec<Value> = table_daily(&app, "s1", "AD")
        .await
        .iter()
        .filter(|d| d.stat_date == today())
        .map(daily_json)
        .collect();
    assert_eq!(body["rows"].as_array().unwrap(), &expected);
    assert!(body["nextCursor"].is_null());
    app.shutdown().await;
}

async fn sellpage_pages_hold_exactly_the_table_rows(backend: Backend) {
    let app = synced_app(backend).await;
    let expected: Vec<Value> = table_sellpages(&app, "s1")
        .await
        .iter()
        .map(|s| {
            serde_json::json!({
                "sellpageId": s.sellpage_id, "date": s.stat_date.to_string(),
                "adSpendCents": s.ad_spend_cents, "impressions": s.impressions,
                "clicks": s.clicks, "contentViews": s.content_views, "addToCart": s.add_to_cart,
                "checkouts": s.checkouts, "purchases": s.purchases,
                "revenueCents": s.revenue_cents, "cpm": s.cpm, "ctr": s.ctr, "roas": s.roas,
                "campaignCount": s.campaign_count, "updatedAt": timestamp(s.updated_at),
                "currency": s.currency,
            })
        })
        .collect();
    assert_eq!(expected.len(), 12, "two sellpages a day for six days");
    let path = format!("/api/ads-manager/sellpages/stats?{}&limit=5", range());
    let (rows, pages) = all_pages(&app, &path, "s1").await;
    assert_eq!(pages, 3);
    assert_eq!(rows, expected);
    let one = get_json(
        &app,
        &format!(
            "/api/ads-manager/sellpages/stats?{}&sellpageId=s1-page-2",
            range()
        ),
        "s1",
    )
    .await;
    let only: Vec<&Value> = expected
        .iter()
        .filter(|r| r["sellpageId"] == "s1-page-2")
        .collect();
    assert_eq!(
        one["rows"].as_array().unwrap().iter().collect::<Vec<_>>(),
        only
    );
    app.shutdown().await;
}

async fn summary_sums_per_entity_with_ratios_from_the_sums(backend: Backend) {
    let app = synced_app(backend).await;
    let body = get_json(
        &app,
        &format!("/api/ads-manager/stats/summary?level=CAMPAIGN&{}", range()),
        "s1",
    )
    .await;
    let daily = table_daily(&app, "s1", "CAMPAIGN").await;
    let mut entities: Vec<&str> = daily.iter().map(|d| d.entity_id.as_str()).collect();
    entities.sort();
    entities.dedup();
    let rows = body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), entities.len());
    let sum = |of: &[&DailyStat], f: fn(&DailyStat) -> i64| of.iter().map(|d| f(d)).sum::<i64>();
    let check = |row: &Value, of: &[&DailyStat]| {
        let spend = sum(of, |d| d.spend_cents);
        let impressions = sum(of, |d| d.impressions);
        let clicks = sum(of, |d| d.clicks);
        let revenue = sum(of, |d| d.revenue_cents);
        let (cpm, ctr, roas) = ratios(spend, impressions, clicks, revenue);
        assert_eq!(row["spendCents"], spend);
        assert_eq!(row["impressions"], impressions);
        assert_eq!(row["clicks"], clicks);
        assert_eq!(row["purchases"], sum(of, |d| d.purchases));
        assert_eq!(row["revenueCents"], revenue);
        assert_eq!(row["rawCount"], sum(of, |d| d.raw_count));
        assert_eq!(row["cpm"].as_f64().unwrap(), cpm, "ratios from the sums");
        assert_eq!(row["ctr"].as_f64().unwrap(), ctr);
        assert_eq!(row["roas"].as_f64().unwrap(), roas);
        assert!(row.get("date").is_none() && row.get("updatedAt").is_none());
    };
    for (row, entity) in rows.iter().zip(&entities) {
        assert_eq!(row["entityId"], *entity);
        assert_eq!(row["level"], "CAMPAIGN");
        let of: Vec<&DailyStat> = daily.iter().filter(|d| d.entity_id == *entity).collect();
        check(row, &of);
    }
    let all: Vec<&DailyStat> = daily.iter().collect();
    check(&body["total"], &all);
    // Averaging the daily ratios would give another number: the test above would notice.
    let mean_roas = daily.iter().map(|d| d.roas).sum::<f64>() / daily.len() as f64;
    assert_ne!(body["total"]["roas"].as_f64().unwrap(), mean_roas);
    app.shutdown().await;
}

/// A minimal RFC 4180 reader, enough for the API's own output (quoted fields included).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field, mut quoted, mut chars) =
        (Vec::new(), String::new(), false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    rows
}

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn csv_carries_the_same_rows(backend: Backend) {
    let app = synced_app(backend).await;
    for (path, page_size) in [
        (
            format!("/api/ads-manager/stats?level=AD&{}&limit=10", range()),
            10,
        ),
        (
            format!("/api/ads-manager/sellpages/stats?{}&limit=4", range()),
            4,
        ),
        (
            format!("/api/ads-manager/stats/summary?level=AD&{}", range()),
            0,
        ),
    ] {
        let json = get_json(&app, &path, "s1").await;
        let response = app
            .send(
                app.request(Method::GET, &path)
                    .bearer_auth(app.token("s1"))
                    .header("Accept", "text/csv"),
            )
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "text/csv; charset=utf-8"
        );
        let next = response
            .headers()
            .get("x-next-cursor")
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(next.as_deref(), json["nextCursor"].as_str(), "{path}");
        assert_eq!(next.is_some(), page_size > 0);
        let text = response.text().await.unwrap();
        assert!(text.ends_with("\r\n"));
        let table = parse_csv(&text);
        let rows = json["rows"].as_array().unwrap();
        assert_eq!(table.len(), rows.len() + 1, "a header and the same rows");
        let header = &table[0];
        for (line, row) in table[1..].iter().zip(rows) {
            assert_eq!(line.len(), header.len());
            for (name, value) in header.iter().zip(line) {
                assert_eq!(*value, cell(&row[name.as_str()]), "{path}: {name}");
            }
        }
    }
    app.shutdown().await;
}

async fn filters_stay_inside_the_callers_seller(backend: Backend) {
    let app = synced_app(backend).await;
    let entity = "s1-cmp-1";
    let mine = get_json(
        &app,
        &format!(
            "/api/ads-manager/stats?level=CAMPAIGN&{}&entityId={entity}",
            range()
        ),
        "s1",
    )
    .await;
    let rows = mine["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    assert!(rows.iter().all(|r| r["entityId"] == entity));
    for path in [
        format!(
            "/api/ads-manager/stats?level=CAMPAIGN&{}&entityId={entity}",
            range()
        ),
        format!(
            "/api/ads-manager/sellpages/stats?{}&sellpageId=s1-page-1",
            range()
        ),
    ] {
        let theirs = get_json(&app, &path, "s2").await;
        assert_eq!(theirs["rows"], serde_json::json!([]), "{path}");
        assert!(theirs["nextCursor"].is_null());
    }
    let summary = get_json(
        &app,
        &format!("/api/ads-manager/stats/summary?level=CAMPAIGN&{}", range()),
        "s2",
    )
    .await;
    assert!(summary["rows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["entityId"].as_str().unwrap().starts_with("s2-")));
    app.shutdown().await;
}

async fn bad_parameters_are_400_with_a_code(backend: Backend) {
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .spawn()
        .await;
    let ok = "from=2026-01-01&to=2026-01-31";
    let cases = [
        (
            "/api/ads-manager/stats?level=AD&from=2026-02-01&to=2026-01-01",
            "invalid_range",
        ),
        (
            "/api/ads-manager/stats?level=AD&from=2025-01-01&to=2026-01-02",
            "invalid_range",
        ),
        (
            "/api/ads-manager/stats/summary?level=AD&from=2026-02-01&to=2026-01-01",
            "invalid_range",
        ),
        (
            "/api/ads-manager/sellpages/stats?from=2024-01-01&to=2026-01-01",
            "invalid_range",
        ),
        (
            "/api/ads-manager/stats?level=KEYWORD&from=2026-01-01&to=2026-01-31",
            "invalid_level",
        ),
        (
            "/api/ads-manager/stats/summary?from=2026-01-01&to=2026-01-31",
            "invalid_level",
        ),
        (
            "/api/ads-manager/stats?level=AD&from=2026-1-1&to=2026-01-31",
            "invalid_date",
        ),
        (
            "/api/ads-manager/stats?level=AD&to=2026-01-31",
            "invalid_date",
        ),
        (
            "/api/ads-manager/sellpages/stats?from=2026-02-30&to=2026-03-01",
            "invalid_date",
        ),
    ];
    for (path, code) in cases {
        let response = get(&app, path, "s1").await;
        assert_eq!(response.status(), 400, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], code, "{path}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    for (extra, code) in [
        ("limit=0", "invalid_limit"),
        ("limit=1001", "invalid_limit"),
        ("limit=ten", "invalid_limit"),
        ("cursor=not-a-cursor", "invalid_cursor"),
        ("cursor=7a7a", "invalid_cursor"),
        ("frm=2026-01-01", "invalid_query"),
    ] {
        for base in [
            format!("/api/ads-manager/stats?level=AD&{ok}"),
            format!("/api/ads-manager/sellpages/stats?{ok}"),
        ] {
            let path = format!("{base}&{extra}");
            let response = get(&app, &path, "s1").await;
            assert_eq!(response.status(), 400, "{path}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], code, "{path}: {body}");
        }
    }
    // 366 days, both ends included, is the longest range: in a common year too.
    let response = get(
        &app,
        "/api/ads-manager/stats?level=AD&from=2025-01-01&to=2026-01-01",
        "s1",
    )
    .await;
    assert_eq!(response.status(), 200);
    // A year with a leap day is allowed; the longest range there is.
    let response = get(
        &app,
        "/api/ads-manager/stats?level=AD&from=2024-01-01&to=2024-12-31",
        "s1",
    )
    .await;
    assert_eq!(response.status(), 200);
    let anonymous = app
        .send(app.request(
            Method::GET,
            &format!("/api/ads-manager/stats?level=AD&{ok}"),
        ))
        .await;
    assert_eq!(anonymous.status(), 401);
    let wrong_method = app
        .send(
            app.request(Method::POST, "/api/ads-manager/stats/summary")
                .bearer_auth(app.token("s1")),
        )
        .await;
    assert_eq!(wrong_method.status(), 405);
    app.shutdown().await;
}

/// At 1,000 sellers every read is an index range scan, never a scan of the whole table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_is_served_from_an_index_at_1000_sellers() {
    let test_db = TestDb::new(Backend::Postgres).await;
    let _db = crate::helpers::migrated_db(&test_db).await;
    let mut conn = AsyncPgConnection::establish(&test_db.url).await.unwrap();
    // 1,000 sellers x 10 ads x 3 levels x 30 days of daily rows, 3 sellpages each a day.
    conn.batch_execute(
        "INSERT INTO ad_stats_daily (seller_id, level, entity_id, stat_date, spend_cents, impressions, \
           clicks, content_views, add_to_cart, checkouts, purchases, revenue_cents, cpm, ctr, roas, raw_count) \
         SELECT 's' || s, l, 's' || s || '-' || l || '-' || e, DATE '2026-11-01' + d, 100, 1000, 10, 5, 2, 1, 1, 300, 1.0, 1.0, 3.0, 1 \
         FROM generate_series(1, 1000) s, generate_series(1, 10) e, generate_series(0, 29) d, \
              unnest(ARRAY['CAMPAIGN', 'ADSET', 'AD']) l; \
         INSERT INTO sellpage_stats_daily (seller_id, sellpage_id, stat_date, ad_spend_cents, impressions, \
           clicks, content_views, add_to_cart, checkouts, purchases, revenue_cents, cpm, ctr, roas, campaign_count) \
         SELECT 's' || s, 's' || s || '-page-' || p, DATE '2026-11-01' + d, 100, 1000, 10, 5, 2, 1, 1, 300, 1.0, 1.0, 3.0, 2 \
         FROM generate_series(1, 1000) s, generate_series(1, 3) p, generate_series(0, 29) d; \
         ANALYZE ad_stats_daily; ANALYZE sellpage_stats_daily;",
    )
    .await
    .unwrap();
    let from = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    let to = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
    #[derive(QueryableByName)]
    struct Line {
        #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
        line: String,
    }
    let reads = ads_stats::db::reads::explainable("s500", from, to);
    assert_eq!(reads.len(), 5);
    for (sql, index) in reads.into_iter().zip([
        "ix_ad_stats_daily_seller_level_date_entity",
        "ix_ad_stats_daily_seller_level_date_entity",
        "ix_sellpage_stats_daily_seller_date_page",
        // Filtered to one entity or sellpage: any index on it will do.
        "Index",
        "Index",
    ]) {
        let plan: Vec<Line> = diesel::sql_query(format!("EXPLAIN {sql}"))
            .load(&mut conn)
            .await
            .unwrap();
        let plan: Vec<String> = plan.into_iter().map(|l| l.line).collect();
        let text = plan.join("\n");
        assert!(text.contains(index), "{sql}\n{text}");
        assert!(!text.contains("Seq Scan"), "{sql}\n{text}");
    }
}
