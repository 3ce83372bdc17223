//! "Today" is the local date of each ACTIVE ad connection (`ad_connections.timezone`): scheduled
//! jobs just before and just after local midnight in Auckland and Los Angeles, a seller with
//! connections in two zones, a zone nobody knows, and manual syncs without a date.

use std::collections::BTreeSet;

use ads_stats::db::catalog::{self, HierarchyTable};
use ads_stats::db::models::NewAdConnection;
use ads_stats::db::DbConn;
use ads_stats::db_run;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;

use crate::helpers::{app, merge, seller_catalog, Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    ticks_date_each_sellers_jobs_by_its_connections_zone,
    a_seller_in_two_zones_gets_a_job_set_per_local_date,
    an_unknown_zone_counts_as_utc_and_the_tick_goes_on,
    a_manual_sync_without_a_date_uses_the_connections_zones,
);

/// Sets a connection's zone the way the operator's CLI does (that one also validates it).
pub async fn set_timezone(conn: &mut DbConn, connection_id: &str, zone: &str) {
    let changed = db_run!(conn, {
        diesel::sql_query("UPDATE ad_connections SET timezone = $1 WHERE id = $2")
            .bind::<Text, _>(zone)
            .bind::<Text, _>(connection_id)
            .execute(conn)
            .await
    })
    .expect("update the zone");
    assert_eq!(changed, 1, "no connection {connection_id}");
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

/// (seller, date, level) of every scheduled one-day job, checking each id's format on the way.
async fn scheduled(app: &TestApp) -> BTreeSet<(String, NaiveDate)> {
    let mut out = BTreeSet::new();
    for j in app.jobs().await {
        assert_eq!(j.date_from, j.date_to, "one-day jobs only: {}", j.job_id);
        assert_eq!(
            j.job_id,
            format!(
                "sync__{}__{}__{}__{}",
                j.seller_id, j.date_from, j.date_to, j.level
            )
        );
        out.insert((j.seller_id, j.date_from));
    }
    out
}

fn set(items: &[(&str, NaiveDate)]) -> BTreeSet<(String, NaiveDate)> {
    items.iter().map(|(s, d)| (s.to_string(), *d)).collect()
}

async fn ticks_date_each_sellers_jobs_by_its_connections_zone(backend: Backend) {
    let c = merge(
        merge(seller_catalog("akl"), seller_catalog("lax")),
        seller_catalog("utc"),
    );
    // The cron zone must not date anything any more.
    let app = app(backend)
        .with_catalog(c)
        .with_settings(|s| s.scheduler.timezone = "Asia/Tokyo".into())
        .spawn()
        .await;
    let mut conn = app.conn().await;
    set_timezone(&mut conn, "akl-conn", "Pacific/Auckland").await;
    set_timezone(&mut conn, "lax-conn", "America/Los_Angeles").await;
    drop(conn);
    let scheduler = app.app().scheduler();
    let (d28, d29) = (day(2026, 11, 28), day(2026, 11, 29));

    // 10:59:59 UTC on the 28th: 23:59:59 in Auckland (UTC+13), 02:59:59 in Los Angeles (UTC-8).
    let s = scheduler.tick(at(2026, 11, 28, 10, 59, 59)).await.unwrap();
    assert_eq!((s.sellers, s.enqueued), (3, 9));
    assert_eq!(
        scheduled(&app).await,
        set(&[("akl", d28), ("lax", d28), ("utc", d28)])
    );

    // One second later Auckland is on the 29th while UTC and Los Angeles are still on the 28th.
    scheduler.tick(at(2026, 11, 28, 11, 0, 0)).await.unwrap();
    assert_eq!(
        scheduled(&app).await,
        set(&[("akl", d28), ("akl", d29), ("lax", d28), ("utc", d28)])
    );

    // 07:59:59 UTC on the 29th: 23:59:59 on the 28th in Los Angeles, while UTC is on the 29th.
    scheduler.tick(at(2026, 11, 29, 7, 59, 59)).await.unwrap();
    assert_eq!(
        scheduled(&app).await,
        set(&[
            ("akl", d28),
            ("akl", d29),
            ("lax", d28),
            ("utc", d28),
            ("utc", d29)
        ])
    );

    // Midnight in Los Angeles.
    scheduler.tick(at(2026, 11, 29, 8, 0, 0)).await.unwrap();
    assert!(scheduled(&app).await.contains(&("lax".to_string(), d29)));
    assert_eq!(scheduled(&app).await.len(), 6);
    app.shutdown().await;
}

async fn a_seller_in_two_zones_gets_a_job_set_per_local_date(backend: Backend) {
    let mut c = seller_catalog("two");
    // A second account of the same seller, in another zone (its campaigns do not matter: a job
    // covers the seller's delivering entities for its date).
    c.connections.push(NewAdConnection {
        id: "two-conn-2".into(),
        seller_id: "two".into(),
        provider: "META".into(),
        external_account_id: "act_two_2".into(),
        status: "ACTIVE".into(),
    });
    let app = app(backend).with_catalog(c).spawn().await;
    let mut conn = app.conn().await;
    set_timezone(&mut conn, "two-conn", "Pacific/Auckland").await;
    set_timezone(&mut conn, "two-conn-2", "America/Los_Angeles").await;
    drop(conn);
    let scheduler = app.app().scheduler();

    // 11:30 UTC on the 28th: the 29th in Auckland, the 28th in Los Angeles.
    let s = scheduler.tick(at(2026, 11, 28, 11, 30, 0)).await.unwrap();
    assert_eq!((s.sellers, s.enqueued, s.deduplicated), (1, 6, 0));
    assert_eq!(
        scheduled(&app).await,
        set(&[("two", day(2026, 11, 28)), ("two", day(2026, 11, 29))])
    );

    // Once both zones are on the same date, one job set.
    let s = scheduler.tick(at(2026, 11, 29, 9, 0, 0)).await.unwrap();
    assert_eq!(s.enqueued + s.deduplicated, 3, "{s:?}");

    // A connection that is not ACTIVE does not date anything.
    let mut conn = app.conn().await;
    catalog::set_status(
        &mut conn,
        HierarchyTable::AdConnections,
        "two-conn-2",
        "REVOKED",
    )
    .await
    .unwrap();
    drop(conn);
    let s = scheduler.tick(at(2026, 11, 30, 11, 30, 0)).await.unwrap();
    assert_eq!(s.enqueued + s.deduplicated, 3, "{s:?}");
    assert!(scheduled(&app)
        .await
        .contains(&("two".to_string(), day(2026, 12, 1))));
    assert!(!scheduled(&app)
        .await
        .contains(&("two".to_string(), day(2026, 11, 30))));
    app.shutdown().await;
}

async fn an_unknown_zone_counts_as_utc_and_the_tick_goes_on(backend: Backend) {
    let c = merge(seller_catalog("bad"), seller_catalog("akl"));
    let app = app(backend).with_catalog(c).spawn().await;
    let mut conn = app.conn().await;
    set_timezone(&mut conn, "bad-conn", "Mars/Olympus_Mons").await;
    set_timezone(&mut conn, "akl-conn", "Pacific/Auckland").await;
    drop(conn);
    let s = app
        .app()
        .scheduler()
        .tick(at(2026, 11, 28, 11, 30, 0))
        .await
        .unwrap();
    assert_eq!((s.sellers, s.enqueued), (2, 6));
    assert_eq!(
        scheduled(&app).await,
        set(&[("akl", day(2026, 11, 29)), ("bad", day(2026, 11, 28))])
    );
    app.shutdown().await;
}

/// The local date now in a fixed-offset zone (`Etc/GMT-14` is UTC+14: POSIX signs are reversed).
fn today_in(zone: &str) -> NaiveDate {
    let tz: chrono_tz::Tz = zone.parse().unwrap();
    Utc::now().with_timezone(&tz).date_naive()
}

async fn a_manual_sync_without_a_date_uses_the_connections_zones(backend: Backend) {
    let mut c = merge(seller_catalog("east"), seller_catalog("both"));
    c.connections.push(NewAdConnection {
        id: "both-conn-2".into(),
        seller_id: "both".into(),
        provider: "META".into(),
        external_account_id: "act_both_2".into(),
        status: "ACTIVE".into(),
    });
    let app = app(backend).with_catalog(c).spawn().await;
    let mut conn = app.conn().await;
    // UTC+14 and UTC-12 are 26 hours apart: their dates always differ, whatever the clock says.
    set_timezone(&mut conn, "east-conn", "Etc/GMT-14").await;
    set_timezone(&mut conn, "both-conn", "Etc/GMT-14").await;
    set_timezone(&mut conn, "both-conn-2", "Etc/GMT+12").await;
    drop(conn);

    let dates_of = |body: &serde_json::Value| -> Vec<String> {
        body["jobIds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_str().unwrap().split("__").nth(2).unwrap().to_string())
            .collect()
    };
    // Today is read before and after the request: a midnight in between may give either.
    let before = today_in("Etc/GMT-14");
    let res = app.post_sync(Some(&app.token("east")), None).await;
    assert_eq!(res.status(), 202);
    let body: serde_json::Value = res.json().await.unwrap();
    let dates = dates_of(&body);
    assert_eq!(dates.len(), 3, "{body}");
    assert!(
        [before, today_in("Etc/GMT-14")]
            .iter()
            .any(|d| dates.iter().all(|x| *x == d.to_string())),
        "{body}: expected today at UTC+14 ({before})"
    );

    let (east, west) = (today_in("Etc/GMT-14"), today_in("Etc/GMT+12"));
    let res = app.post_sync(Some(&app.token("both")), None).await;
    assert_eq!(res.status(), 202);
    let body: serde_json::Value = res.json().await.unwrap();
    let dates: BTreeSet<String> = dates_of(&body).into_iter().collect();
    assert_eq!(body["jobIds"].as_array().unwrap().len(), 6, "{body}");
    let expected: BTreeSet<String> = [east, west].iter().map(|d| d.to_string()).collect();
    let (east2, west2) = (today_in("Etc/GMT-14"), today_in("Etc/GMT+12"));
    let expected2: BTreeSet<String> = [east2, west2].iter().map(|d| d.to_string()).collect();
    assert!(
        dates == expected || dates == expected2,
        "{body}: {expected:?}"
    );

    // An explicit date is honoured as before, once, whatever the zones.
    let res = app
        .post_sync(Some(&app.token("both")), Some(r#"{"date":"2026-11-01"}"#))
        .await;
    assert_eq!(res.status(), 202);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(dates_of(&body), vec!["2026-11-01"; 3], "{body}");
    app.shutdown().await;
}
