//! The scheduler enqueues today's jobs (today in each connection's zone) for eligible sellers only, never piles up, and runs on its
//! cron schedule.

use std::time::Duration;

use ads_stats::db::catalog::{self, HierarchyTable};
use chrono::{TimeZone, Utc};

use crate::helpers::{add_seller, app, merge, seller_catalog, Backend, TestProvider};
use crate::on_both_backends;
use crate::timezones::set_timezone;

on_both_backends!(
    ticks_enqueue_for_eligible_sellers_only,
    a_fast_schedule_ticks_on_its_own
);

async fn ticks_enqueue_for_eligible_sellers_only(backend: Backend) {
    let mut c = merge(seller_catalog("good"), seller_catalog("suspended"));
    c = merge(c, seller_catalog("revoked"));
    add_seller(&mut c, "empty", "ACTIVE", "ACTIVE");
    let provider = TestProvider::new(Duration::from_secs(3), 0);
    let app = app(backend)
        .with_catalog(c)
        .with_provider(provider)
        .spawn()
        .await;
    let mut conn = app.conn().await;
    set_timezone(&mut conn, "good-conn", "Pacific/Auckland").await;
    catalog::set_status(&mut conn, HierarchyTable::Sellers, "suspended", "SUSPENDED")
        .await
        .unwrap();
    catalog::set_status(
        &mut conn,
        HierarchyTable::AdConnections,
        "revoked-conn",
        "REVOKED",
    )
    .await
    .unwrap();
    drop(conn);

    // 20:00 UTC on 2026-11-28 is already 29 November in Auckland.
    let now = Utc.with_ymd_and_hms(2026, 11, 28, 20, 0, 0).unwrap();
    let summary = app.app().scheduler().tick(now).await.unwrap();
    assert_eq!(
        (summary.sellers, summary.enqueued, summary.deduplicated),
        (1, 3, 0)
    );
    let jobs = app.jobs().await;
    assert_eq!(jobs.len(), 3);
    for j in &jobs {
        assert_eq!(j.seller_id, "good");
        assert_eq!(j.triggered_by, "SCHEDULE");
        assert_eq!(
            j.date_from.to_string(),
            "2026-11-29",
            "today in the connection's time zone"
        );
        assert!(j.job_id.starts_with("sync__good__2026-11-29__2026-11-29__"));
    }
    // The next tick finds them still active: nothing new.
    let again = app.app().scheduler().tick(now).await.unwrap();
    assert_eq!((again.enqueued, again.deduplicated), (0, 3));
    assert_eq!(app.jobs().await.len(), 3);
    app.shutdown().await;
}

async fn a_fast_schedule_ticks_on_its_own(backend: Backend) {
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .with_settings(|s| {
            s.scheduler.enabled = true;
            s.scheduler.cron = "* * * * * *".into(); // every second
        })
        .spawn()
        .await;
    let jobs = app
        .wait_for_jobs(Duration::from_secs(10), |jobs| {
            jobs.iter().filter(|j| j.status == "SUCCEEDED").count() >= 3
        })
        .await;
    assert!(jobs
        .iter()
        .all(|j| j.triggered_by == "SCHEDULE" && j.seller_id == "s1"));
    let health: serde_json::Value = app.health().await.json().await.unwrap();
    assert_eq!(health["scheduler"]["enabled"], true);
    assert!(health["scheduler"]["lastTick"].is_string(), "{health}");
    assert!(health["scheduler"]["nextTick"].is_string(), "{health}");
    // The cluster-wide history: the latest mark in `scheduler_ticks`, ticked by this instance.
    let tick = &health["scheduler"]["clusterLastTick"];
    assert_eq!(tick["instance"], app.app().instance(), "{health}");
    let mark = tick["mark"].as_str().expect("mark");
    chrono::DateTime::parse_from_rfc3339(mark).expect("an RFC 3339 mark");
    let mut conn = app.db.conn().await.unwrap();
    let recorded = ads_stats::db::ticks::all(&mut conn).await.unwrap();
    drop(conn);
    assert!(
        recorded
            .iter()
            .any(|t| t.mark.and_utc() == chrono::DateTime::parse_from_rfc3339(mark).unwrap()),
        "{mark} is a recorded mark: {recorded:#?}"
    );
    if !tick["finishedAt"].is_null() {
        assert!(
            tick["enqueued"].is_i64() && tick["sellers"] == 1,
            "{health}"
        );
    }
    app.shutdown().await;
}
