//! `stats.raw_retention`: raw rows fetched longer ago are deleted in small batches by the
//! sweeper; newer raw rows, and every daily and sellpage row, stay.

use std::time::{Duration, Instant};

use ads_stats::db::catalog::insert_catalog;
use ads_stats::db::models::NewRawStat;
use ads_stats::db::retention::{self, Pruned};
use ads_stats::db::{now_utc, writes, DbConn};
use ads_stats::db_run;
use chrono::NaiveDateTime;
use diesel::sql_types::BigInt;
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use crate::helpers::{app, migrated_db, seller_catalog, today, Backend, TestDb};
use crate::on_both_backends;

on_both_backends!(
    old_raw_rows_go_a_batch_at_a_time,
    the_sweeper_applies_the_raw_retention_and_keeps_daily_rows,
);

/// The job record (`sync_jobs.id`) a test batch's raw rows refer to.
fn record_id(job: &str) -> i64 {
    let batches = ["old", "new", "three-days-ago", "a-day-ago"];
    1 + batches
        .iter()
        .position(|b| *b == job)
        .expect("a known batch") as i64
}

fn raw_row(seller: &str, entity: &str, job: &str, fetched_at: NaiveDateTime) -> NewRawStat {
    NewRawStat {
        seller_id: seller.into(),
        level: "CAMPAIGN".into(),
        entity_id: entity.into(),
        stat_date: fetched_at.date(),
        spend_cents: 100,
        impressions: 1000,
        clicks: 10,
        content_views: 5,
        add_to_cart: 2,
        checkouts: 1,
        purchases: 1,
        revenue_cents: 300,
        cpm: 1.0,
        ctr: 1.0,
        roas: 3.0,
        provider: "mock".into(),
        job_record_id: Some(record_id(job)),
        fetched_at,
    }
}

fn days_ago(days: i64) -> NaiveDateTime {
    now_utc() - chrono::Duration::days(days)
}

/// Inserts `n` raw rows of one batch (job and fetch time) and folds them into daily rows, as a
/// sync does.
async fn synced_batch(conn: &mut DbConn, job: &str, n: usize, fetched_at: NaiveDateTime) {
    let rows: Vec<NewRawStat> = (0..n)
        // One reading per entity and day in a batch, as a provider answers.
        .map(|i| raw_row("s", &format!("{job}-entity-{i}"), job, fetched_at))
        .collect();
    writes::insert_raw(conn, &rows).await.unwrap();
    writes::fold_into_daily(
        conn,
        ads_stats::config::Aggregation::Sum,
        Some(record_id(job)),
        fetched_at,
        now_utc(),
    )
    .await
    .unwrap();
}

#[derive(QueryableByName)]
struct Total {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// (daily rows, sum of their `raw_count`).
async fn daily_raw_counts(conn: &mut DbConn) -> (i64, i64) {
    let (_, daily, _) = writes::tier_counts(conn, "s").await.unwrap();
    let rows: Vec<Total> = db_run!(conn, {
        diesel::sql_query(
            "SELECT CAST(COALESCE(SUM(raw_count), 0) AS BIGINT) AS n FROM ad_stats_daily",
        )
        .load(conn)
        .await
    })
    .unwrap();
    (daily, rows[0].n)
}

async fn old_raw_rows_go_a_batch_at_a_time(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    let mut conn = db.conn().await.unwrap();
    insert_catalog(&mut conn, &seller_catalog("s"))
        .await
        .unwrap();
    synced_batch(&mut conn, "old", 12, days_ago(40)).await;
    synced_batch(&mut conn, "new", 3, days_ago(1)).await;
    let (daily_before, folded_before) = daily_raw_counts(&mut conn).await;
    assert_eq!(folded_before, 15);

    let cut_off = days_ago(35);
    // 12 old rows, 5 a statement, 2 statements a sweep: 10 now, 2 left for the next sweep.
    let first = retention::prune_raw(&mut conn, cut_off, 5, 2)
        .await
        .unwrap();
    assert_eq!(
        first,
        Pruned {
            deleted: 10,
            batches: 2,
            more: true
        }
    );
    assert_eq!(retention::raw_rows_total(&mut conn).await.unwrap(), 5);
    let second = retention::prune_raw(&mut conn, cut_off, 5, 2)
        .await
        .unwrap();
    assert_eq!(
        second,
        Pruned {
            deleted: 2,
            batches: 1,
            more: false
        }
    );
    let third = retention::prune_raw(&mut conn, cut_off, 5, 2)
        .await
        .unwrap();
    assert_eq!(third.deleted, 0);

    // The newer rows are all there; the daily rows, and the raw rows they count, untouched.
    assert_eq!(retention::raw_rows_total(&mut conn).await.unwrap(), 3);
    assert_eq!(
        daily_raw_counts(&mut conn).await,
        (daily_before, folded_before)
    );
}

async fn the_sweeper_applies_the_raw_retention_and_keeps_daily_rows(backend: Backend) {
    // A real sync first: raw, daily and sellpage rows of today.
    let first = app(backend).with_catalog(seller_catalog("s")).spawn().await;
    first.enqueue_campaign_sync("s").await;
    first.wait_until_idle(Duration::from_secs(20)).await;
    let (raw, daily, sellpage) = first.tier_counts("s").await;
    assert!(raw > 0 && daily > 0 && sellpage > 0);
    let mut conn = first.conn().await;
    // Rows of a job three days ago (past a 2-day retention) and of one a day ago (within it).
    // More old rows than one sweeper pass deletes: the backlog must go on at the next poll,
    // not ten minutes later.
    let one_pass = retention::RAW_DELETE_BATCH as usize * retention::RAW_BATCHES_PER_SWEEP;
    let old: Vec<NewRawStat> = (0..one_pass + 7)
        .map(|_| raw_row("s", "s-cmp-1", "three-days-ago", days_ago(3)))
        .collect();
    let recent: Vec<NewRawStat> = (0..4)
        .map(|_| raw_row("s", "s-cmp-2", "a-day-ago", days_ago(1)))
        .collect();
    writes::insert_raw(&mut conn, &old).await.unwrap();
    writes::insert_raw(&mut conn, &recent).await.unwrap();
    drop(conn);
    let test_db = first.shutdown().await;

    // The sweeper's first pass, at start-up, applies the retention.
    let second = app(backend)
        .on_database(test_db)
        .with_settings(|s| s.stats.raw_retention = Duration::from_secs(2 * 86_400))
        .spawn()
        .await;
    let started = Instant::now();
    loop {
        let (now_raw, _, _) = second.tier_counts("s").await;
        if now_raw == raw + 4 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "raw rows: {now_raw}, expected {} once the old ones are gone",
            raw + 4
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut conn = second.conn().await;
    let kept = writes::raw_rows(&mut conn, "CAMPAIGN", "s-cmp-2", days_ago(1).date())
        .await
        .unwrap();
    assert_eq!(
        kept.iter()
            .filter(|r| r.job_record_id == Some(record_id("a-day-ago")))
            .count(),
        4
    );
    let today_rows = writes::raw_rows(&mut conn, "CAMPAIGN", "s-cmp-1", today())
        .await
        .unwrap();
    assert!(!today_rows.is_empty(), "today's sync keeps its raw rows");
    drop(conn);
    let (_, daily_after, sellpage_after) = second.tier_counts("s").await;
    assert_eq!((daily_after, sellpage_after), (daily, sellpage));
    second.shutdown().await;
}
