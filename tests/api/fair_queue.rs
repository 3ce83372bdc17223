//! A fair queue: claims go by class (a person waiting, then scheduled jobs, then backfills), and
//! one seller cannot fill the queue (`jobs.max_active_per_seller`, 429 `too_many_active_jobs`).

use std::sync::Arc;
use std::time::Duration;

use ads_stats::db::models::JobRecord;
use ads_stats::db::DbConn;
use ads_stats::db_run;
use ads_stats::jobs::Priority;
use ads_stats::providers::{FetchRequest, MockProvider, ProviderError, ProviderStat, StatProvider};
use chrono::{NaiveDate, Utc};
use diesel::QueryableByName;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use tokio::sync::watch;

use crate::helpers::{
    app, generated_catalog, merge, migrated_db, seller_catalog, today, Backend, TestApp, TestDb,
};
use crate::on_both_backends;

on_both_backends!(
    backfills_wait_for_the_tick_and_a_waiting_person_goes_first,
    past_the_limit_a_seller_gets_429_and_nothing_is_recorded,
    concurrent_syncs_of_one_seller_never_pass_the_limit,
    a_limit_of_zero_is_no_limit,
    the_migration_gives_existing_jobs_a_class,
    the_claim_and_the_count_read_their_indexes,
);

/// The mock provider behind a gate: every fetch waits until the test opens it. Jobs claimed
/// before that stay RUNNING, so what the queue holds meanwhile is decided by the test, not by how
/// fast the machine is (a fixed latency would make the same point only on a machine of the
/// expected speed).
struct GatedProvider {
    open: watch::Receiver<bool>,
}

impl GatedProvider {
    fn new() -> (Arc<Self>, watch::Sender<bool>) {
        let (tx, rx) = watch::channel(false);
        (Arc::new(Self { open: rx }), tx)
    }
}

#[async_trait::async_trait]
impl StatProvider for GatedProvider {
    fn name(&self) -> &'static str {
        "mock"
    }

    async fn fetch(&self, request: &FetchRequest<'_>) -> Result<Vec<ProviderStat>, ProviderError> {
        let mut open = self.open.clone();
        // The sender lives as long as the test; an error only means the test is over.
        let _ = open.wait_for(|o| *o).await;
        MockProvider.fetch(request).await
    }
}

fn days_ago(n: i64) -> NaiveDate {
    today() - chrono::Duration::days(n)
}

async fn post_date(app: &TestApp, seller: &str, date: NaiveDate) -> reqwest::Response {
    let body = format!(r#"{{"date":"{date}"}}"#);
    app.post_sync(Some(&app.token(seller)), Some(&body)).await
}

fn of_seller<'a>(jobs: &'a [JobRecord], seller: &str) -> Vec<&'a JobRecord> {
    jobs.iter().filter(|j| j.seller_id == seller).collect()
}

/// Seller A queues 60 backfill jobs; one starts and is held. A tick for 102 sellers (A, B and
/// 100 others) comes, then B asks for today, which the tick had already queued. Once the held job
/// is let go, every further claim follows the classes: B's three jobs first (a person waits),
/// then every scheduled job, and only then A's other 59 backfills. With one worker slot, claims
/// happen one at a time, so the records' `started_at` order is the claim order.
async fn backfills_wait_for_the_tick_and_a_waiting_person_goes_first(backend: Backend) {
    let catalog = merge(
        merge(seller_catalog("a"), seller_catalog("b")),
        generated_catalog("t", 100),
    );
    let (provider, gate) = GatedProvider::new();
    let app = app(backend)
        .with_catalog(catalog)
        .with_provider(provider)
        .with_settings(|s| {
            s.jobs.concurrency = 1;
            s.rate_limit.manual_syncs_per_minute = 0;
        })
        .spawn()
        .await;

    // 20 dates three days back and more: 60 backfill records, exactly the default limit.
    for n in 3..23 {
        let response = post_date(&app, "a", days_ago(n)).await;
        assert_eq!(response.status(), 202, "backfill of {n} days ago");
    }
    let held = app
        .wait_for_jobs(Duration::from_secs(30), |jobs| {
            jobs.iter().any(|j| j.status == "RUNNING")
        })
        .await;
    assert_eq!(held.len(), 60);
    assert!(held
        .iter()
        .all(|j| j.priority == Priority::Backfill.as_i16() && j.triggered_by == "MANUAL"));
    let held: Vec<i64> = held
        .iter()
        .filter(|j| j.status == "RUNNING")
        .map(|j| j.id)
        .collect();
    assert_eq!(held.len(), 1, "one slot");

    let tick = app.app().scheduler().tick(Utc::now()).await.unwrap();
    assert_eq!((tick.sellers, tick.enqueued), (102, 306));
    let response = app.post_sync(Some(&app.token("b")), None).await;
    assert_eq!(response.status(), 202);
    // B's today was queued by the tick: the same records, now in B's class.
    let b_jobs: Vec<JobRecord> = of_seller(&app.jobs().await, "b")
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(b_jobs.len(), 3);
    assert!(b_jobs
        .iter()
        .all(|j| j.priority == Priority::Interactive.as_i16() && j.status == "QUEUED"));

    gate.send_replace(true);
    let jobs = app
        .wait_for_jobs(Duration::from_secs(120), |jobs| {
            jobs.iter().all(|j| j.status == "SUCCEEDED")
        })
        .await;
    assert_eq!(jobs.len(), 60 + 306);
    let mut claimed: Vec<&JobRecord> = jobs.iter().filter(|j| !held.contains(&j.id)).collect();
    claimed.sort_by_key(|j| (j.started_at, j.id));
    let order: Vec<(i16, &str)> = claimed
        .iter()
        .map(|j| (j.priority, j.seller_id.as_str()))
        .collect();
    // B's three, then the 303 other scheduled jobs, then 59 backfills.
    assert!(
        order[..3].iter().all(|(p, s)| *p == 1 && *s == "b"),
        "B's sync ran first: {:?}",
        &order[..6]
    );
    assert!(
        order[3..306].iter().all(|(p, _)| *p == 2),
        "every scheduled job before any further backfill: {:?}",
        order
            .iter()
            .enumerate()
            .filter(|(_, (p, _))| *p != 2)
            .map(|(i, o)| (i, *o))
            .collect::<Vec<_>>()
    );
    assert!(order[306..].iter().all(|(p, s)| *p == 3 && *s == "a"));
    assert_eq!(order.len(), 3 + 303 + 59);
    app.shutdown().await;
}

/// With `jobs.max_active_per_seller = 6`: two dates fit (three records each), the third is
/// refused with 429, a Retry-After and nothing recorded; a repeat of an active date still gets
/// 202; another seller is not affected, and the scheduler still queues the seller's jobs.
async fn past_the_limit_a_seller_gets_429_and_nothing_is_recorded(backend: Backend) {
    let (provider, gate) = GatedProvider::new();
    let app = app(backend)
        .with_catalog(merge(seller_catalog("a"), seller_catalog("b")))
        .with_provider(provider)
        .with_settings(|s| {
            s.jobs.max_active_per_seller = 6;
            s.rate_limit.manual_syncs_per_minute = 0;
        })
        .spawn()
        .await;
    for n in [3, 4] {
        assert_eq!(post_date(&app, "a", days_ago(n)).await.status(), 202);
    }
    let refused = post_date(&app, "a", days_ago(5)).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(
        refused
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("30")
    );
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "too_many_active_jobs");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("max_active_per_seller"), "{message}");
    let jobs = app.jobs().await;
    assert_eq!(
        of_seller(&jobs, "a").len(),
        6,
        "nothing recorded: {jobs:#?}"
    );
    assert!(jobs.iter().all(|j| j.date_from != days_ago(5)));

    // A repeat of jobs still active adds nothing, so it is answered as before.
    assert_eq!(post_date(&app, "a", days_ago(3)).await.status(), 202);
    // Another seller is not affected.
    assert_eq!(
        app.post_sync(Some(&app.token("b")), None).await.status(),
        202
    );
    // Scheduled jobs are neither counted nor refused: A's today is queued by the tick.
    let tick = app.app().scheduler().tick(Utc::now()).await.unwrap();
    assert_eq!(tick.sellers, 2);
    let jobs = app.jobs().await;
    let a_scheduled = of_seller(&jobs, "a")
        .into_iter()
        .filter(|j| j.triggered_by == "SCHEDULE")
        .count();
    assert_eq!(a_scheduled, 3);
    assert_eq!(of_seller(&jobs, "a").len(), 9);

    // The API document says so.
    let doc: serde_json::Value = app
        .send(app.request(reqwest::Method::GET, "/api/openapi.json"))
        .await
        .json()
        .await
        .unwrap();
    let documented = &doc["paths"]["/api/ads-manager/sync"]["post"]["responses"]["429"];
    assert!(
        documented["description"]
            .as_str()
            .is_some_and(|d| d.contains("too_many_active_jobs")),
        "{documented}"
    );
    assert!(
        documented["headers"]["Retry-After"].is_object(),
        "{documented}"
    );

    // Once A's jobs have finished, A may sync again.
    gate.send_replace(true);
    app.wait_until_idle(Duration::from_secs(60)).await;
    assert_eq!(post_date(&app, "a", days_ago(5)).await.status(), 202);
    app.wait_until_idle(Duration::from_secs(60)).await;
    app.shutdown().await;
}

/// Twelve requests of one seller at once, for twelve dates, with room for two: exactly two are
/// accepted, and the seller never has more than the limit recorded.
async fn concurrent_syncs_of_one_seller_never_pass_the_limit(backend: Backend) {
    let (provider, gate) = GatedProvider::new();
    let app = app(backend)
        .with_catalog(seller_catalog("a"))
        .with_provider(provider)
        .with_settings(|s| {
            s.jobs.max_active_per_seller = 6;
            s.rate_limit.manual_syncs_per_minute = 0;
        })
        .spawn()
        .await;
    let answers =
        futures_util::future::join_all((3..15).map(|n| post_date(&app, "a", days_ago(n)))).await;
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort();
    let mut expected = vec![202u16; 2];
    expected.extend([429u16; 10]);
    assert_eq!(statuses, expected);
    assert_eq!(app.jobs().await.len(), 6);
    gate.send_replace(true);
    app.wait_until_idle(Duration::from_secs(60)).await;
    app.shutdown().await;
}

/// `jobs.max_active_per_seller = 0`: 21 dates (63 records, past the default 60) all accepted.
async fn a_limit_of_zero_is_no_limit(backend: Backend) {
    let (provider, gate) = GatedProvider::new();
    let app = app(backend)
        .with_catalog(seller_catalog("a"))
        .with_provider(provider)
        .with_settings(|s| {
            s.jobs.max_active_per_seller = 0;
            s.rate_limit.manual_syncs_per_minute = 0;
        })
        .spawn()
        .await;
    for n in 3..24 {
        assert_eq!(post_date(&app, "a", days_ago(n)).await.status(), 202);
    }
    assert_eq!(app.jobs().await.len(), 63);
    gate.send_replace(true);
    app.wait_until_idle(Duration::from_secs(60)).await;
    app.shutdown().await;
}

const DOWN_PG: &str =
    include_str!("../../migrations/postgres/2026-12-05-000011_job_priority/down.sql");
const DOWN_SQLITE: &str =
    include_str!("../../migrations/sqlite/2026-12-05-000011_job_priority/down.sql");

/// A database with job records from before migration 000011: after it, scheduled records are
/// class 2, manual ones of the last days class 1 (a person may be waiting), older manual ones
/// class 3; and the claim takes them in that order.
async fn the_migration_gives_existing_jobs_a_class(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    let mut conn = db.conn().await.unwrap();
    // Back to the schema before the migration.
    let down = match backend {
        Backend::Postgres => DOWN_PG,
        Backend::Sqlite => DOWN_SQLITE,
    };
    let reverted = {
        let conn = &mut conn;
        db_run!(conn, { conn.batch_execute(down).await })
    };
    reverted.unwrap();
    let forgotten = execute(
        &mut conn,
        "DELETE FROM __diesel_schema_migrations WHERE version = '20261205000011'",
    )
    .await;
    assert_eq!(forgotten, 1);
    // Rows as the previous version wrote them (no priority column), created a minute ago.
    let at = (ads_stats::db::now_utc() - chrono::Duration::minutes(1))
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string();
    let rows = [
        ("manual-old", "MANUAL", days_ago(10), "QUEUED"),
        ("scheduled", "SCHEDULE", today(), "QUEUED"),
        ("manual-today", "MANUAL", today(), "QUEUED"),
        ("manual-yesterday", "MANUAL", days_ago(1), "QUEUED"),
        ("manual-old-done", "MANUAL", days_ago(30), "SUCCEEDED"),
    ];
    for (job, trigger, date, status) in rows {
        execute(
            &mut conn,
            &format!(
                "INSERT INTO sync_jobs (job_id, seller_id, level, date_from, date_to, triggered_by, \
                   status, attempts, max_attempts, run_at, created_at, updated_at) \
                 VALUES ('{job}', 's', 'CAMPAIGN', '{date}', '{date}', '{trigger}', '{status}', 0, \
                   3, '{at}', '{at}', '{at}')"
            ),
        )
        .await;
    }
    drop(conn);
    let applied = db
        .run_migrations(&crate::helpers::test_settings(&test_db.url, |_| {}).database_url())
        .await
        .unwrap();
    assert_eq!(applied, 1);
    let mut conn = db.conn().await.unwrap();
    let jobs = ads_stats::db::jobs::all(&mut conn).await.unwrap();
    let class = |job: &str| jobs.iter().find(|j| j.job_id == job).unwrap().priority;
    assert_eq!(class("scheduled"), 2);
    assert_eq!(class("manual-today"), 1);
    assert_eq!(class("manual-yesterday"), 1);
    assert_eq!(class("manual-old"), 3);
    assert_eq!(class("manual-old-done"), 3);
    // The claim takes them by class, whatever the order they were recorded in.
    let mut order = Vec::new();
    while let Some(job) = ads_stats::db::jobs::claim_next(&mut conn, "w")
        .await
        .unwrap()
    {
        order.push(job.job_id);
    }
    assert_eq!(
        order,
        [
            "manual-today",
            "manual-yesterday",
            "scheduled",
            "manual-old"
        ]
    );
}

#[derive(QueryableByName)]
struct PgPlanLine {
    #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
    line: String,
}

#[derive(QueryableByName)]
struct SqlitePlanLine {
    #[diesel(sql_type = diesel::sql_types::Text)]
    detail: String,
}

async fn plan(conn: &mut DbConn, sql: &str) -> String {
    let lines: Vec<String> = match conn {
        DbConn::Postgres(c) => diesel::sql_query(format!("EXPLAIN {sql}"))
            .load::<PgPlanLine>(&mut **c)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.line)
            .collect(),
        DbConn::Sqlite(c) => diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
            .load::<SqlitePlanLine>(&mut **c)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.detail)
            .collect(),
    };
    lines.join("\n")
}

/// The claim reads the claim index in order (no sort of the backlog) and the per-seller count
/// reads its partial index, on both backends, with a backlog of 3,000 queued records.
async fn the_claim_and_the_count_read_their_indexes(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    let mut conn = db.conn().await.unwrap();
    let at = ads_stats::db::now_utc()
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string();
    let d = today();
    let mut values = Vec::new();
    for i in 0..3000 {
        let (trigger, priority) = match i % 3 {
            0 => ("MANUAL", 1),
            1 => ("SCHEDULE", 2),
            _ => ("MANUAL", 3),
        };
        let status = if i % 10 == 0 { "SUCCEEDED" } else { "QUEUED" };
        values.push(format!(
            "('job-{i}', 's{}', 'CAMPAIGN', '{d}', '{d}', '{trigger}', '{status}', 0, 3, '{at}', \
              '{at}', '{at}', {priority})",
            i % 100
        ));
    }
    execute(
        &mut conn,
        &format!(
            "INSERT INTO sync_jobs (job_id, seller_id, level, date_from, date_to, triggered_by, \
               status, attempts, max_attempts, run_at, created_at, updated_at, priority) VALUES {}",
            values.join(", ")
        ),
    )
    .await;
    execute(&mut conn, "ANALYZE sync_jobs").await;
    let (now, claim_lock) = match backend {
        Backend::Postgres => ("CURRENT_TIMESTAMP", " FOR UPDATE SKIP LOCKED"),
        Backend::Sqlite => ("'9999-01-01'", ""),
    };
    let claim = plan(
        &mut conn,
        &format!(
            "SELECT id FROM sync_jobs WHERE status = 'QUEUED' AND run_at <= {now} \
             ORDER BY priority, run_at, id LIMIT 5{claim_lock}"
        ),
    )
    .await;
    assert!(claim.contains("ix_sync_jobs_claim"), "{claim}");
    assert!(!claim.contains("Sort"), "{claim}");
    assert!(!claim.contains("TEMP B-TREE"), "{claim}");
    let count = plan(
        &mut conn,
        "SELECT COUNT(*) AS n FROM sync_jobs \
         WHERE seller_id = 's7' AND triggered_by = 'MANUAL' AND status IN ('QUEUED', 'RUNNING')",
    )
    .await;
    assert!(count.contains("ix_sync_jobs_manual_active"), "{count}");
    assert_eq!(
        ads_stats::db::job_admission::active_manual_count(&mut conn, "s7")
            .await
            .unwrap(),
        // s7's records: i = 7, 107, …: 30 of them, i % 3 != 1 is manual, i % 10 == 0 is done.
        (0..3000)
            .filter(|i| i % 100 == 7 && i % 3 != 1 && i % 10 != 0)
            .count() as i64
    );
}

async fn execute(conn: &mut DbConn, sql: &str) -> usize {
    db_run!(conn, { diesel::sql_query(sql).execute(conn).await })
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}
