//! Crashes of the real process: SIGKILL at arbitrary moments, and in the middle of a job's write
//! transaction. Jobs are never lost and stats never counted twice.

use std::time::{Duration, Instant};

use ads_stats::db::catalog::insert_catalog;
use ads_stats::db::{Db, DbConn};
use ads_stats::db_run;
use diesel::sql_types::BigInt;
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use crate::helpers::{merge, migrated_db, seller_catalog, Backend, ServiceProcess, TestDb};
use crate::on_both_backends;

on_both_backends!(killed_at_random_moments_the_books_still_balance);

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(conn: &mut DbConn, sql: &str) -> i64 {
    let rows: Vec<Count> = db_run!(conn, { diesel::sql_query(sql).load(conn).await }).expect(sql);
    rows[0].n
}

/// (active jobs, raw rows, raw rows the SUCCEEDED records claim, sum of daily raw_count)
async fn books(db: &Db) -> (i64, i64, i64, i64) {
    let mut conn = db.conn().await.unwrap();
    let active = count(
        &mut conn,
        "SELECT COUNT(*) AS n FROM sync_jobs WHERE status IN ('QUEUED', 'RUNNING')",
    )
    .await;
    let raw = count(&mut conn, "SELECT COUNT(*) AS n FROM ad_stats_raw").await;
    let claimed = count(
        &mut conn,
        "SELECT CAST(COALESCE(SUM(raw_rows), 0) AS BIGINT) AS n FROM sync_jobs WHERE status = 'SUCCEEDED'",
    )
    .await;
    let folded = count(
        &mut conn,
        "SELECT CAST(COALESCE(SUM(raw_count), 0) AS BIGINT) AS n FROM ad_stats_daily",
    )
    .await;
    (active, raw, claimed, folded)
}

async fn wait_until_idle(db: &Db, limit: Duration) {
    let started = Instant::now();
    while books(db).await.0 > 0 {
        assert!(
            started.elapsed() < limit,
            "jobs still active after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts the service without the scheduler, lets it finish every job left behind (orphans are
/// taken back after 1 s), and stops it with SIGTERM.
async fn restart_calmly_until_idle(test_db: &TestDb, db: &Db) {
    let service = ServiceProcess::start(&[
        ("DATABASE_URL", test_db.url.as_str()),
        ("ADS_STATS_SCHEDULER__ENABLED", "false"),
        ("ADS_STATS_JOBS__POLL_INTERVAL", "100ms"),
        ("ADS_STATS_JOBS__RESCUE_AFTER", "1s"),
    ])
    .await;
    wait_until_idle(db, Duration::from_secs(30)).await;
    let (status, log) = service.terminate().await;
    assert_eq!(status.code(), Some(0), "{log}");
}

async fn killed_at_random_moments_the_books_still_balance(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    let sellers: Vec<String> = (0..12).map(|i| format!("seller-{i}")).collect();
    let catalog = sellers
        .iter()
        .map(|s| seller_catalog(s))
        .reduce(merge)
        .unwrap();
    insert_catalog(&mut db.conn().await.unwrap(), &catalog)
        .await
        .unwrap();
    let busy = [
        ("DATABASE_URL", test_db.url.as_str()),
        ("ADS_STATS_SCHEDULER__CRON", "* * * * * *"),
        ("ADS_STATS_JOBS__POLL_INTERVAL", "100ms"),
        ("ADS_STATS_JOBS__RESCUE_AFTER", "1s"),
    ];
    // Each round kills the service a little later into its work.
    for round in 0..4u64 {
        let service = ServiceProcess::start(&busy).await;
        tokio::time::sleep(Duration::from_millis(900 + 170 * round)).await;
        service.crash().await;
        let (_, raw, claimed, folded) = books(&db).await;
        assert_eq!(
            raw, claimed,
            "round {round}: raw rows without a SUCCEEDED job, or the reverse"
        );
        assert_eq!(
            raw, folded,
            "round {round}: raw rows not folded exactly once"
        );
    }
    // A calm restart finishes whatever the crashes left behind.
    restart_calmly_until_idle(&test_db, &db).await;
    let (_, raw, claimed, folded) = books(&db).await;
    assert!(raw > 0, "the service did some work");
    assert_eq!(raw, claimed);
    assert_eq!(raw, folded);
}

/// Holds PostgreSQL's lock on `ad_stats_daily` so every job stops inside its write transaction,
/// after its raw insert; the process is killed there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_inside_the_write_transaction_nothing_is_lost_or_doubled() {
    let test_db = TestDb::new(Backend::Postgres).await;
    let db = migrated_db(&test_db).await;
    insert_catalog(&mut db.conn().await.unwrap(), &seller_catalog("s1"))
        .await
        .unwrap();
    let mut blocker = AsyncPgConnection::establish(&test_db.url).await.unwrap();
    blocker
        .batch_execute("BEGIN; LOCK TABLE ad_stats_daily IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();

    let service = ServiceProcess::start(&[
        ("DATABASE_URL", test_db.url.as_str()),
        ("ADS_STATS_SCHEDULER__CRON", "* * * * * *"),
        ("ADS_STATS_JOBS__POLL_INTERVAL", "100ms"),
    ])
    .await;
    // Wait until the jobs are RUNNING and stuck behind the lock (their raw rows not yet visible).
    let started = Instant::now();
    loop {
        let mut conn = db.conn().await.unwrap();
        let running = count(
            &mut conn,
            "SELECT COUNT(*) AS n FROM sync_jobs WHERE status = 'RUNNING'",
        )
        .await;
        if running == 3 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "jobs never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    service.crash().await;
    blocker.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        books(&db).await.1,
        0,
        "the killed transactions left no raw rows"
    );

    restart_calmly_until_idle(&test_db, &db).await;
    let mut conn = db.conn().await.unwrap();
    let (raw, daily, sellpage) = ads_stats::db::stats::tier_counts(&mut conn, "s1")
        .await
        .unwrap();
    assert_eq!(
        (raw, daily, sellpage),
        (4 + 2 + 3, 4 + 2 + 3, 2),
        "each entity counted exactly once"
    );
    let attempts = count(
        &mut conn,
        "SELECT CAST(SUM(attempts) AS BIGINT) AS n FROM sync_jobs WHERE status = 'SUCCEEDED'",
    )
    .await;
    assert_eq!(
        attempts, 6,
        "three jobs, each run once by the dead process and once after it"
    );
}
