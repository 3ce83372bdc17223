//! A slow provider still fits the cadence: a job waiting on the provider holds one of
//! `jobs.max_provider_requests` slots and one of `jobs.max_in_flight`, never one of the
//! `jobs.concurrency` write slots, so many jobs wait
//! on the provider at once while at most `jobs.concurrency` write; a job waiting for a write slot
//! keeps its lease, and a shutdown while many wait loses no job.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ads_stats::domain::Level;
use ads_stats::jobs::Trigger;
use ads_stats::pipeline::SyncRequest;
use ads_stats::providers::{FetchRequest, MockProvider, ProviderError, ProviderStat, StatProvider};
use chrono::{TimeZone, Utc};
use diesel::QueryableByName;
use diesel_async::SimpleAsyncConnection;
use tokio::sync::watch;

use crate::helpers::{
    app, assert_books_balance, generated_catalog, test_settings, today, Backend, TestApp,
};
use crate::on_both_backends;

on_both_backends!(
    more_jobs_wait_on_the_provider_than_write_slots_up_to_max_in_flight,
    a_job_is_claimed_only_when_a_provider_slot_is_free,
    shutdown_while_many_wait_on_the_provider_loses_no_job,
    the_next_tick_skips_sellers_whose_jobs_still_wait_on_the_provider,
);

/// The mock provider behind a gate the test opens, counting the fetches waiting at the gate: how
/// many wait on the provider at once is decided by the runtime's bounds, not by timing.
struct GatedProvider {
    open: watch::Receiver<bool>,
    waiting: AtomicUsize,
    most_waiting: AtomicUsize,
    answered: AtomicUsize,
}

impl GatedProvider {
    fn new(open: bool) -> (Arc<Self>, watch::Sender<bool>) {
        let (tx, rx) = watch::channel(open);
        let provider = Self {
            open: rx,
            waiting: AtomicUsize::new(0),
            most_waiting: AtomicUsize::new(0),
            answered: AtomicUsize::new(0),
        };
        (Arc::new(provider), tx)
    }

    fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }

    fn most_waiting(&self) -> usize {
        self.most_waiting.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl StatProvider for GatedProvider {
    fn name(&self) -> &'static str {
        "mock"
    }

    async fn fetch(&self, request: &FetchRequest<'_>) -> Result<Vec<ProviderStat>, ProviderError> {
        let now = self.waiting.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_waiting.fetch_max(now, Ordering::SeqCst);
        let mut open = self.open.clone();
        // The sender lives as long as the test; an error only means the test is over.
        let _ = open.wait_for(|o| *o).await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let answer = MockProvider.fetch(request).await;
        self.answered.fetch_add(1, Ordering::SeqCst);
        answer
    }
}

/// Polls `check` until it holds, failing after `limit` with `what`.
async fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Today's three levels for each seller: `sellers` × 3 records, all due at once.
async fn enqueue_today(app: &TestApp, sellers: &[String]) {
    let requests: Vec<SyncRequest> = sellers
        .iter()
        .flat_map(|s| Level::ALL.map(|level| SyncRequest::one_day(s.as_str(), level, today())))
        .collect();
    app.app()
        .queue()
        .enqueue(&requests, Trigger::Manual)
        .await
        .expect("enqueue");
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    // As generated_catalog names its sellers.
    (0..n).map(|i| format!("{prefix}-{i:04}")).collect()
}

fn running(jobs: &[ads_stats::db::models::JobRecord]) -> usize {
    jobs.iter().filter(|j| j.status == "RUNNING").count()
}

/// 15 jobs, 2 write slots, 10 in flight, a pool of 6 connections: exactly 10 wait on the provider
/// at once (more than the write slots, and more than the pool, so none holds a connection while
/// it waits), never 11; the other 5 stay QUEUED until a slot is free; all then succeed once.
async fn more_jobs_wait_on_the_provider_than_write_slots_up_to_max_in_flight(backend: Backend) {
    let catalog = generated_catalog("w", 5);
    let (provider, gate) = GatedProvider::new(false);
    let app = app(backend)
        .with_catalog(catalog.clone())
        .with_provider(provider.clone())
        .with_settings(|s| {
            s.jobs.concurrency = 2;
            s.jobs.max_in_flight = 10;
        })
        .spawn()
        .await;
    assert_eq!(app.settings.database.pool_size, 6);
    enqueue_today(&app, &names("w", 5)).await;

    // The database answers while 10 jobs wait: they hold none of its 6 connections.
    holds_at(&app, &provider, 10, 5).await;
    gate.send_replace(true);
    all_succeed_once(&app, &provider, &catalog, 15, 10).await;
    app.shutdown().await;
}

/// 15 jobs, 12 in flight but 4 provider slots: exactly 4 wait on the provider and only those 4
/// are claimed (the other 11 stay QUEUED, so the next claim still takes the most urgent job);
/// once the provider answers, each fetched job gives its provider slot to the next and all 15
/// succeed once, never more than 4 asking at a time.
async fn a_job_is_claimed_only_when_a_provider_slot_is_free(backend: Backend) {
    let catalog = generated_catalog("q", 5);
    let (provider, gate) = GatedProvider::new(false);
    let app = app(backend)
        .with_catalog(catalog.clone())
        .with_provider(provider.clone())
        .with_settings(|s| {
            s.jobs.concurrency = 2;
            s.jobs.max_in_flight = 12;
            s.jobs.max_provider_requests = 4;
        })
        .spawn()
        .await;
    enqueue_today(&app, &names("q", 5)).await;

    holds_at(&app, &provider, 4, 11).await;
    gate.send_replace(true);
    all_succeed_once(&app, &provider, &catalog, 15, 4).await;
    app.shutdown().await;
}

/// Exactly `waiting` jobs wait on the provider, as many are RUNNING and `queued` stay QUEUED;
/// the sweeper polls every 50 ms, and a few polls later still no further job is claimed.
async fn holds_at(app: &TestApp, provider: &GatedProvider, waiting: usize, queued: usize) {
    wait_until(
        Duration::from_secs(30),
        &format!("{waiting} jobs waiting on the provider"),
        || provider.waiting() == waiting,
    )
    .await;
    let jobs = app.jobs().await;
    assert_eq!(running(&jobs), waiting, "{jobs:#?}");
    assert_eq!(jobs.iter().filter(|j| j.status == "QUEUED").count(), queued);
    let polls = Instant::now();
    while polls.elapsed() < Duration::from_millis(300) {
        assert_eq!(provider.waiting(), waiting);
        assert_eq!(running(&app.jobs().await), waiting);
    }
}

/// Once the queue drains: all `jobs` records SUCCEEDED on their first attempt, each asked once,
/// at most `most_waiting` (and that many at some point) at the provider at once, each counted
/// once.
async fn all_succeed_once(
    app: &TestApp,
    provider: &GatedProvider,
    catalog: &ads_stats::db::catalog::Catalog,
    jobs: usize,
    most_waiting: usize,
) {
    app.wait_until_idle(Duration::from_secs(60)).await;
    let records = app.jobs().await;
    assert_eq!(records.len(), jobs);
    assert!(
        records
            .iter()
            .all(|j| j.status == "SUCCEEDED" && j.attempts == 1),
        "{records:#?}"
    );
    assert_eq!(provider.answered(), jobs);
    assert_eq!(provider.most_waiting(), most_waiting, "the provider bound");
    assert_books_balance(&app.db, catalog).await;
}

/// 12 jobs wait on a provider that never answers; the shutdown grace runs out, every claimed job
/// goes back to QUEUED without using an attempt, and the next start runs all 12 exactly once.
async fn shutdown_while_many_wait_on_the_provider_loses_no_job(backend: Backend) {
    let catalog = generated_catalog("d", 4);
    let (provider, _closed) = GatedProvider::new(false);
    let first = app(backend)
        .with_catalog(catalog.clone())
        .with_provider(provider.clone())
        .with_settings(|s| {
            s.jobs.concurrency = 2;
            s.jobs.max_in_flight = 12;
            s.jobs.shutdown_grace = Duration::from_millis(300);
        })
        .spawn()
        .await;
    enqueue_today(&first, &names("d", 4)).await;
    wait_until(
        Duration::from_secs(30),
        "12 jobs waiting on the provider",
        || provider.waiting() == 12,
    )
    .await;
    let test_db = first.shutdown().await;

    let (open, _gate) = GatedProvider::new(true);
    let again = app(backend)
        .on_database(test_db)
        .with_provider(open.clone())
        .with_settings(|s| {
            s.jobs.concurrency = 2;
            s.jobs.max_in_flight = 12;
        })
        .spawn()
        .await;
    let before = again.jobs().await;
    assert_eq!(before.len(), 12);
    assert!(
        before.iter().all(|j| j.status != "FAILED"),
        "nothing failed at the stop: {before:#?}"
    );
    again.wait_until_idle(Duration::from_secs(60)).await;
    let jobs = again.jobs().await;
    assert!(
        jobs.iter()
            .all(|j| j.status == "SUCCEEDED" && j.attempts == 1),
        "the handed-back attempt is not counted: {jobs:#?}"
    );
    assert_eq!(open.answered(), 12);
    assert_books_balance(&again.db, &catalog).await;
    again.shutdown().await;
}

/// One instance behind a tick: while the first mark's jobs still wait on the provider (RUNNING)
/// or for a slot (QUEUED), the next mark enqueues nothing for those sellers and records them in
/// `scheduler_ticks.deduplicated`.
async fn the_next_tick_skips_sellers_whose_jobs_still_wait_on_the_provider(backend: Backend) {
    let catalog = generated_catalog("t", 3);
    let (provider, gate) = GatedProvider::new(false);
    let app = app(backend)
        .with_catalog(catalog)
        .with_provider(provider.clone())
        .with_settings(|s| {
            s.jobs.concurrency = 2;
            s.jobs.max_in_flight = 4;
        })
        .spawn()
        .await;
    let first = Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 0).unwrap();
    let next = first + chrono::Duration::minutes(5);
    let scheduler = app.app().scheduler();
    let ticked = scheduler.tick_mark(first).await.unwrap().expect("ticked");
    assert_eq!((ticked.sellers, ticked.enqueued), (3, 9));
    wait_until(
        Duration::from_secs(30),
        "4 jobs waiting on the provider",
        || provider.waiting() == 4,
    )
    .await;
    let jobs = app.jobs().await;
    assert_eq!(
        (running(&jobs), jobs.len()),
        (4, 9),
        "4 RUNNING, 5 QUEUED: {jobs:#?}"
    );

    let behind = scheduler.tick_mark(next).await.unwrap().expect("ticked");
    assert_eq!((behind.enqueued, behind.deduplicated), (0, 9));
    let mut conn = app.conn().await;
    let ticks = ads_stats::db::ticks::all(&mut conn).await.unwrap();
    drop(conn);
    let recorded = ticks
        .iter()
        .find(|t| t.mark.and_utc() == next)
        .unwrap_or_else(|| panic!("the next mark is recorded: {ticks:#?}"));
    assert_eq!(
        (recorded.enqueued, recorded.deduplicated),
        (Some(0), Some(9))
    );
    assert_eq!(app.jobs().await.len(), 9);

    gate.send_replace(true);
    app.wait_until_idle(Duration::from_secs(60)).await;
    assert!(app.jobs().await.iter().all(|j| j.status == "SUCCEEDED"));
    app.shutdown().await;
}

#[derive(QueryableByName)]
struct Waiters {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Write transactions blocked on the test's lock of this schema's `ad_stats_daily`.
async fn blocked_writers(conn: &mut ads_stats::db::DbConn) -> i64 {
    use diesel_async::RunQueryDsl;
    const SQL: &str = "SELECT COUNT(DISTINCT pid) AS n FROM pg_locks \
                       WHERE relation = 'ad_stats_daily'::regclass AND NOT granted";
    let rows: Vec<Waiters> =
        ads_stats::db_run!(conn, { diesel::sql_query(SQL).load(conn).await }).expect("pg_locks");
    rows.iter().map(|r| r.n).sum()
}

/// PostgreSQL (the backend with several instances and a lock to observe): 12 jobs fetched at
/// once, every write blocked by the test's lock on `ad_stats_daily` for three `jobs.rescue_after`
/// periods. Exactly 2 (`jobs.concurrency`) are inside their write transaction, the other 10 wait
/// for a write slot; a second instance sweeping for orphans all along takes none of them back;
/// once the lock goes, all 12 succeed on their first attempt, each counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_concurrency_jobs_write_and_jobs_waiting_to_write_keep_their_lease() {
    let catalog = generated_catalog("l", 4);
    let (provider, _gate) = GatedProvider::new(true);
    let rescue_after = Duration::from_secs(1);
    let app = app(Backend::Postgres)
        .with_catalog(catalog.clone())
        .with_provider(provider.clone())
        .with_settings(move |s| {
            s.jobs.concurrency = 2;
            s.jobs.max_in_flight = 12;
            s.jobs.rescue_after = rescue_after;
        })
        .spawn()
        .await;
    let instance = app.app().instance().to_string();
    let mut lock = hold_writes(&app).await;

    enqueue_today(&app, &names("l", 4)).await;
    wait_until(Duration::from_secs(30), "12 answers", || {
        provider.answered() == 12
    })
    .await;
    // Started once this instance holds all 12, so it can only take one back, never claim one.
    let rescuer = ads_stats::app::Application::start(
        &test_settings(&app.test_db.url, move |s| {
            s.jobs.rescue_after = rescue_after
        }),
        Arc::new(MockProvider),
        ads_stats::app::StartOptions::default(),
    )
    .await
    .expect("second instance starts");
    let mut conn = app.conn().await;
    let started = Instant::now();
    while blocked_writers(&mut conn).await < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the writers never reached the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Held for three rescue periods: the waiting jobs' leases must be renewed all along.
    let held = Instant::now();
    while held.elapsed() < rescue_after * 3 {
        assert_eq!(blocked_writers(&mut conn).await, 2, "jobs.concurrency = 2");
        let jobs = app.jobs().await;
        assert_eq!(running(&jobs), 12, "{jobs:#?}");
        assert!(
            jobs.iter()
                .all(|j| j.attempts == 1 && j.locked_by.as_deref() == Some(instance.as_str())),
            "a waiting job was taken back: {jobs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let held = &mut lock;
    ads_stats::db_run!(held, { held.batch_execute("COMMIT").await }).unwrap();
    drop((lock, conn));

    app.wait_until_idle(Duration::from_secs(60)).await;
    let jobs = app.jobs().await;
    assert!(
        jobs.iter().all(|j| j.status == "SUCCEEDED"
            && j.attempts == 1
            && j.locked_by.as_deref() == Some(instance.as_str())),
        "{jobs:#?}"
    );
    assert_books_balance(&app.db, &catalog).await;
    rescuer.shutdown().await;
    app.shutdown().await;
}

/// PostgreSQL (a lock to hold the writes back): 12 jobs, 12 in flight, 3 provider slots, every
/// write blocked. A fetched job gives its provider slot to the next job while it waits for a
/// write slot, so all 12 are fetched and claimed though only 3 may ask the provider at once;
/// once the lock goes, all 12 succeed on their first attempt, each counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetched_job_waiting_to_write_gives_its_provider_slot_to_the_next() {
    let catalog = generated_catalog("g", 4);
    let (provider, _gate) = GatedProvider::new(true);
    let app = app(Backend::Postgres)
        .with_catalog(catalog.clone())
        .with_provider(provider.clone())
        .with_settings(|s| {
            s.jobs.concurrency = 1;
            s.jobs.max_in_flight = 12;
            s.jobs.max_provider_requests = 3;
        })
        .spawn()
        .await;
    let mut lock = hold_writes(&app).await;

    enqueue_today(&app, &names("g", 4)).await;
    wait_until(Duration::from_secs(30), "12 answers", || {
        provider.answered() == 12
    })
    .await;
    // Nothing is written yet: all 12 hold their in-flight slot, fetched.
    let jobs = app.jobs().await;
    assert_eq!(running(&jobs), 12, "{jobs:#?}");
    let held = &mut lock;
    ads_stats::db_run!(held, { held.batch_execute("COMMIT").await }).unwrap();
    drop(lock);

    app.wait_until_idle(Duration::from_secs(60)).await;
    let jobs = app.jobs().await;
    assert!(
        jobs.iter()
            .all(|j| j.status == "SUCCEEDED" && j.attempts == 1),
        "{jobs:#?}"
    );
    assert!(
        provider.most_waiting() <= 3,
        "jobs.max_provider_requests = 3, yet {} asked at once",
        provider.most_waiting()
    );
    assert_books_balance(&app.db, &catalog).await;
    app.shutdown().await;
}

/// A transaction holding a lock on `ad_stats_daily` that every job write waits for, until the
/// caller commits it.
async fn hold_writes(app: &TestApp) -> ads_stats::db::DbConn {
    let mut lock = app.conn().await;
    let held = &mut lock;
    ads_stats::db_run!(held, {
        held.batch_execute("BEGIN; LOCK TABLE ad_stats_daily IN SHARE MODE")
            .await
    })
    .unwrap();
    lock
}
