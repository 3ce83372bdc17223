//! Crashes of the real process: SIGKILL at arbitrary moments, and in the middle of a job's write
//! transaction. Jobs are never lost and stats never counted twice.

use std::time::{Duration, Instant};

use ads_stats::db::catalog::insert_catalog;
use ads_stats::db::{Db, DbConn};
use ads_stats::db_run;
use diesel::sql_types::BigInt;
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use crate::helpers::{
    assert_books_balance, generated_catalog, migrated_db, panics_in, seller_catalog,
    wait_until_idle, Backend, SeededRng, ServiceProcess, TestDb,
};
use crate::on_both_backends;

on_both_backends!(crash_loop_loses_no_job_and_counts_no_run_twice);

/// Sellers in the crash loop: 600 jobs a tick, more than the workers finish between two kills.
const SELLERS: usize = 200;
/// SIGKILLs, each at a random moment of a fresh process's life.
const KILLS: usize = 20;

/// The service with the scheduler ticking every 2 s on a catalogue of 200 sellers is killed with
/// SIGKILL 20 times, each 0.2–2 s after it starts listening (so in ticks, claims, fetches, write
/// transactions and rescues alike), and restarted each time; a last start without the scheduler
/// drains what is left. Then every job has succeeded, and every daily row holds exactly the runs
/// that succeeded: nothing lost, nothing counted twice. `CRASH_SEED=…` replays the kill delays.
async fn crash_loop_loses_no_job_and_counts_no_run_twice(backend: Backend) {
    let started = Instant::now();
    let (mut rng, seed) = SeededRng::from_env_or_clock("CRASH_SEED");
    println!("crash loop on {backend:?}: seed {seed} (CRASH_SEED={seed} replays the kill delays)");
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    let catalog = generated_catalog("crash", SELLERS);
    insert_catalog(&mut db.conn().await.unwrap(), &catalog)
        .await
        .unwrap();

    let common = [
        ("DATABASE_URL", test_db.url.as_str()),
        // Kills cost an attempt each time they hit a running job; they must never use them up.
        ("ADS_STATS_JOBS__MAX_ATTEMPTS", "1000"),
        // Jobs of a killed process come back 2 s after its last heartbeat.
        ("ADS_STATS_JOBS__RESCUE_AFTER", "2s"),
        ("ADS_STATS_JOBS__POLL_INTERVAL", "100ms"),
        ("ADS_STATS_JOBS__BACKOFF", "100ms"),
    ];
    let ticking = [
        &common[..],
        &[("ADS_STATS_SCHEDULER__CRON", "*/2 * * * * *")],
    ]
    .concat();
    let mut lifetimes = Vec::with_capacity(KILLS);
    for kill in 1..=KILLS {
        let service = ServiceProcess::start(&ticking).await;
        let lifetime = rng.duration_between(Duration::from_millis(200), Duration::from_secs(2));
        lifetimes.push(lifetime.as_millis());
        tokio::time::sleep(lifetime).await;
        let log = service.crash().await;
        assert!(
            panics_in(&log).is_empty(),
            "kill {kill} (seed {seed}): the service panicked before it was killed:\n{log}"
        );
    }
    let killed_at = started.elapsed();

    let calm = [&common[..], &[("ADS_STATS_SCHEDULER__ENABLED", "false")]].concat();
    let service = ServiceProcess::start(&calm).await;
    wait_until_idle(&db, Duration::from_secs(45)).await;
    let (status, log) = service.terminate().await;
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(panics_in(&log).is_empty(), "{log}");

    let books = assert_books_balance(&db, &catalog).await;
    assert!(
        books.jobs >= SELLERS * 3,
        "at least one tick's worth of jobs ran (seed {seed}): {books}"
    );
    println!(
        "crash loop on {backend:?}: seed {seed}, lifetimes {lifetimes:?} ms, {KILLS} kills \
         in {killed_at:.1?}, drained at {:.1?}; {books}",
        started.elapsed()
    );
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(conn: &mut DbConn, sql: &str) -> i64 {
    let rows: Vec<Count> = db_run!(conn, { diesel::sql_query(sql).load(conn).await }).expect(sql);
    rows[0].n
}

/// Raw rows in the database.
async fn raw_rows(db: &Db) -> i64 {
    let mut conn = db.conn().await.unwrap();
    count(&mut conn, "SELECT COUNT(*) AS n FROM ad_stats_raw").await
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
    // RUNNING is set before the provider is asked; the kill must come once all three jobs wait
    // on the lock inside their write transactions, which PostgreSQL shows as ungranted locks on
    // this schema's `ad_stats_daily`.
    loop {
        let mut conn = db.conn().await.unwrap();
        let waiting = count(
            &mut conn,
            "SELECT COUNT(*) AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
             WHERE NOT l.granted AND c.relname = 'ad_stats_daily' \
             AND c.relnamespace = current_schema()::regnamespace",
        )
        .await;
        if waiting == 3 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the jobs never reached their write: {waiting} waiting on the lock"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    service.crash().await;
    blocker.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        raw_rows(&db).await,
        0,
        "the killed transactions left no raw rows"
    );

    restart_calmly_until_idle(&test_db, &db).await;
    let mut conn = db.conn().await.unwrap();
    let (raw, daily, sellpage) = ads_stats::db::writes::tier_counts(&mut conn, "s1")
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
