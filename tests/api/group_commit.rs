//! Group commit (issue 17, item 1): jobs whose writes contend for the write slots share one
//! transaction, and each is still counted exactly once with its own outcome. The runtime test
//! lets many jobs finish fetching at once behind one write slot; the pipeline tests hand
//! `Pipeline::commit_batch` a batch of claimed jobs directly, so what is in the batch is known.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ads_stats::config::Aggregation;
use ads_stats::db::catalog::{insert_catalog, Catalog};
use ads_stats::db::jobs::Lease;
use ads_stats::db::models::{JobRecord, NewJobRecord};
use ads_stats::db::{self, Db, DbConn};
use ads_stats::db_run;
use ads_stats::domain::Level;
use ads_stats::jobs::{Priority, SyncJobId, Trigger};
use ads_stats::pipeline::{
    FaultPoint, Fetched, GroupCommitCounts, Pipeline, PipelineError, SyncRequest, SyncSummary,
};
use ads_stats::providers::{FetchRequest, MockProvider, ProviderError, ProviderStat, StatProvider};
use chrono::NaiveDate;
use diesel::sql_types::{BigInt, Date, Text};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use tokio::sync::watch;

use crate::helpers::{
    app, assert_books_balance, generated_catalog, migrated_db, today, Backend, TestDb,
};
use crate::on_both_backends;

on_both_backends!(
    contended_writes_share_transactions_and_count_each_job_once,
    a_batch_writes_each_job_as_if_it_were_written_alone,
    a_fault_in_a_batch_fails_only_its_job,
    a_lost_lease_in_a_batch_loses_only_its_job,
    one_seller_and_level_twice_is_never_in_one_batch,
);

/// The mock provider behind a gate the test opens once every job waits there, so all of them
/// finish fetching at the same moment and contend for the write slot.
struct GatedProvider {
    open: watch::Receiver<bool>,
    waiting: AtomicUsize,
}

#[async_trait::async_trait]
impl StatProvider for GatedProvider {
    fn name(&self) -> &'static str {
        "mock"
    }

    async fn fetch(&self, request: &FetchRequest<'_>) -> Result<Vec<ProviderStat>, ProviderError> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.clone();
        // The sender lives as long as the test; an error only means the test is over.
        let _ = open.wait_for(|o| *o).await;
        MockProvider.fetch(request).await
    }
}

/// Today's three levels for each seller, plus a second CAMPAIGN job of the first seller
/// (yesterday's): a seller and level twice among the jobs waiting to be written.
fn requests(sellers: &[String]) -> Vec<SyncRequest> {
    let mut requests: Vec<SyncRequest> = sellers
        .iter()
        .flat_map(|s| Level::ALL.map(|level| SyncRequest::one_day(s.as_str(), level, today())))
        .collect();
    let yesterday = today().pred_opt().expect("a day before today");
    requests.push(SyncRequest::one_day(
        sellers[0].as_str(),
        Level::Campaign,
        yesterday,
    ));
    requests
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    // As generated_catalog names its sellers.
    (0..n).map(|i| format!("{prefix}-{i:04}")).collect()
}

/// A daily or sellpage row as the tests compare them (no timestamps).
#[derive(QueryableByName, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = Date)]
    stat_date: NaiveDate,
    #[diesel(sql_type = BigInt)]
    spend_cents: i64,
    #[diesel(sql_type = BigInt)]
    impressions: i64,
    #[diesel(sql_type = BigInt)]
    purchases: i64,
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// Every daily row and every sellpage row, sorted: what two databases must agree on.
async fn stats_rows(db: &Db) -> Vec<Row> {
    let mut conn = db.conn().await.expect("conn");
    let conn: &mut DbConn = &mut conn;
    let mut rows: Vec<Row> = db_run!(conn, {
        diesel::sql_query(
            "SELECT level || ':' || entity_id AS key, stat_date, spend_cents, \
                    CAST(impressions AS BIGINT) AS impressions, \
                    CAST(purchases AS BIGINT) AS purchases, CAST(raw_count AS BIGINT) AS count \
             FROM ad_stats_daily \
             UNION ALL \
             SELECT 'SELLPAGE:' || sellpage_id AS key, stat_date, ad_spend_cents AS spend_cents, \
                    CAST(impressions AS BIGINT) AS impressions, \
                    CAST(purchases AS BIGINT) AS purchases, \
                    CAST(campaign_count AS BIGINT) AS count \
             FROM sellpage_stats_daily",
        )
        .load(conn)
        .await
    })
    .expect("stats rows");
    rows.sort();
    rows
}

/// The same syncs written one by one outside the job runtime (`Pipeline::run`, no batch) on a
/// database of their own: what each job must report, by job id, and the rows there must be.
async fn reference(
    backend: Backend,
    catalog: &Catalog,
    requests: &[SyncRequest],
) -> (HashMap<String, SyncSummary>, Vec<Row>) {
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    insert_catalog(&mut db.conn().await.expect("conn"), catalog)
        .await
        .expect("catalog");
    let pipeline = Pipeline::new(db.clone(), Arc::new(MockProvider), Aggregation::Sum);
    let mut summaries = HashMap::new();
    for request in requests {
        let summary = pipeline.run(request).await.expect("reference sync");
        summaries.insert(request.job_id(), summary);
    }
    let rows = stats_rows(&db).await;
    (summaries, rows)
}

/// What a job record reports against what the same sync wrote alone.
fn assert_reports(job: &JobRecord, expected: &SyncSummary) {
    assert_eq!(
        (
            job.entities,
            job.raw_rows,
            job.daily_rows,
            job.sellpage_rows
        ),
        (
            Some(expected.entities as i64),
            Some(expected.raw_rows as i64),
            Some(expected.daily_rows as i64),
            Some(expected.sellpage_rows as i64)
        ),
        "{} reports other counts than the same sync written alone",
        job.job_id
    );
}

fn assert_same_counts(got: &SyncSummary, expected: &SyncSummary, what: &str) {
    assert_eq!(
        (
            got.entities,
            got.raw_rows,
            got.daily_rows,
            got.sellpage_rows
        ),
        (
            expected.entities,
            expected.raw_rows,
            expected.daily_rows,
            expected.sellpage_rows
        ),
        "{what}"
    );
}

async fn contended_writes_share_transactions_and_count_each_job_once(backend: Backend) {
    let sellers = names("gc", 6);
    let catalog = generated_catalog("gc", sellers.len());
    let requests = requests(&sellers);
    let n = requests.len();
    let (open, gate) = watch::channel(false);
    let provider = Arc::new(GatedProvider {
        open: gate,
        waiting: AtomicUsize::new(0),
    });
    // One write slot for all of them: every job but the first finds it taken.
    let app = app(backend)
        .with_catalog(catalog.clone())
        .with_provider(provider.clone())
        .with_settings(move |s| {
            s.jobs.concurrency = 1;
            s.jobs.max_in_flight = n;
        })
        .spawn()
        .await;
    app.app()
        .queue()
        .enqueue(&requests, Trigger::Manual)
        .await
        .expect("enqueue");
    let started = Instant::now();
    while AtomicUsize::load(&provider.waiting, Ordering::SeqCst) < n {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the jobs never all waited on the provider"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    open.send(true).expect("the provider holds the gate");
    app.wait_until_idle(Duration::from_secs(60)).await;

    let jobs = app.jobs().await;
    assert_eq!(jobs.len(), n);
    for job in &jobs {
        assert_eq!(
            (job.status.as_str(), job.attempts),
            ("SUCCEEDED", 1),
            "{job:#?}"
        );
    }
    let counts = app.app().pipeline().group_commits();
    assert!(
        counts.batches >= 1 && counts.largest >= 2,
        "no write was shared: {counts:?}"
    );
    assert_eq!(counts.rolled_back, 0, "{counts:?}");
    // The jobs of one transaction carry the same finished_at (its `now`): fewer distinct
    // times than jobs is the database's own record that writes were shared.
    let finished: HashSet<_> = jobs.iter().map(|j| j.finished_at).collect();
    assert!(
        finished.len() < n,
        "every job finished at its own time: nothing was shared"
    );
    let twice: Vec<&JobRecord> = jobs
        .iter()
        .filter(|j| j.seller_id == sellers[0] && j.level == "CAMPAIGN")
        .collect();
    assert_eq!(twice.len(), 2);
    assert_ne!(
        twice[0].finished_at, twice[1].finished_at,
        "one seller and level twice in one transaction"
    );

    assert_books_balance(&app.db, &catalog).await;
    let (expected, rows) = reference(backend, &catalog, &requests).await;
    for job in &jobs {
        assert_reports(job, &expected[&job.job_id]);
    }
    assert_eq!(
        stats_rows(&app.db).await,
        rows,
        "the stats differ from the same syncs written one by one"
    );
    app.shutdown().await;
}

/// A database with the catalogue, a pipeline on it, and `requests` recorded and claimed by one
/// worker (their leases), fetched: what the runtime hands `commit_batch`.
async fn claimed(
    backend: Backend,
    catalog: &Catalog,
    requests: &[SyncRequest],
) -> (TestDb, Db, Pipeline, Vec<(Fetched, Lease)>) {
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    let mut conn = db.conn().await.expect("conn");
    insert_catalog(&mut conn, catalog).await.expect("catalog");
    let now = db::now_utc();
    for request in requests {
        let record = NewJobRecord {
            job_id: request.job_id(),
            seller_id: request.seller_id.clone(),
            level: request.level.as_str().into(),
            date_from: request.date_from,
            date_to: request.date_to,
            triggered_by: "MANUAL".into(),
            status: "QUEUED".into(),
            attempts: 0,
            max_attempts: 3,
            run_at: now,
            created_at: now,
            updated_at: now,
            priority: Priority::Interactive.as_i16(),
        };
        db::jobs::enqueue(&mut conn, &record)
            .await
            .expect("enqueue");
    }
    let pipeline = Pipeline::new(db.clone(), Arc::new(MockProvider), Aggregation::Sum);
    let mut jobs = Vec::new();
    // Claimed in id order, which is the order they were recorded in.
    while let Some(record) = db::jobs::claim_next(&mut conn, "group-commit-test")
        .await
        .expect("claim")
    {
        let request = &requests[jobs.len()];
        assert_eq!(record.job_id, request.job_id(), "claimed in record order");
        let lease = Lease {
            record_id: record.id,
            worker: "group-commit-test".into(),
            attempt: record.attempts,
        };
        let fetched = pipeline.fetch(request).await.expect("fetch");
        jobs.push((fetched, lease));
    }
    assert_eq!(jobs.len(), requests.len());
    drop(conn);
    (test_db, db, pipeline, jobs)
}

async fn records(db: &Db) -> BTreeMap<String, JobRecord> {
    let mut conn = db.conn().await.expect("conn");
    db::jobs::all(&mut conn)
        .await
        .expect("jobs")
        .into_iter()
        .map(|j| (j.job_id.clone(), j))
        .collect()
}

async fn a_batch_writes_each_job_as_if_it_were_written_alone(backend: Backend) {
    let sellers = names("gb", 3);
    let catalog = generated_catalog("gb", sellers.len());
    // Every seller's three levels: campaign jobs roll up, the others do not.
    let requests: Vec<SyncRequest> = requests(&sellers)[..9].to_vec();
    let (_t, db, pipeline, jobs) = claimed(backend, &catalog, &requests).await;
    let leases: Vec<Lease> = jobs.iter().map(|(_, l)| l.clone()).collect();
    let results = pipeline.commit_batch(jobs).await;
    assert_eq!(
        pipeline.group_commits(),
        GroupCommitCounts {
            batches: 1,
            jobs: 9,
            largest: 9,
            rolled_back: 0
        }
    );
    let (expected, rows) = reference(backend, &catalog, &requests).await;
    let records = records(&db).await;
    for ((request, result), lease) in requests.iter().zip(&results).zip(&leases) {
        let summary = result.as_ref().expect("every job of the batch succeeds");
        let want = &expected[&request.job_id()];
        assert_same_counts(summary, want, &request.job_id());
        let record = &records[&request.job_id()];
        assert_eq!(
            (record.id, record.status.as_str()),
            (lease.record_id, "SUCCEEDED")
        );
        assert_reports(record, want);
    }
    let finished: HashSet<_> = records.values().map(|r| r.finished_at).collect();
    assert_eq!(finished.len(), 1, "one transaction marks them all");
    assert_eq!(stats_rows(&db).await, rows);
    let raw: Vec<JobRows> = raw_rows_by_job(&db).await;
    for r in &raw {
        let request = requests
            .iter()
            .zip(&leases)
            .find(|(_, l)| l.record_id == r.job_record_id)
            .map(|(q, _)| q)
            .expect("each raw row carries its own job's record id");
        assert_eq!(r.n, expected[&request.job_id()].raw_rows as i64);
    }
    assert_eq!(raw.len(), 9, "{} jobs wrote raw rows", raw.len());
}

#[derive(QueryableByName)]
struct JobRows {
    #[diesel(sql_type = BigInt)]
    job_record_id: i64,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn raw_rows_by_job(db: &Db) -> Vec<JobRows> {
    let mut conn = db.conn().await.expect("conn");
    let conn: &mut DbConn = &mut conn;
    db_run!(conn, {
        diesel::sql_query(
            "SELECT job_record_id, COUNT(*) AS n FROM ad_stats_raw GROUP BY job_record_id",
        )
        .load(conn)
        .await
    })
    .expect("raw rows by job")
}

/// After a batch of CAMPAIGN jobs (one per seller, each 4 raw rows, 4 daily rows and 2 sellpage
/// rows alone) in which `failed` (by index) got an error: the others are SUCCEEDED and counted
/// once, the failed job wrote nothing and is still RUNNING (the runtime then records its failed
/// attempt, as for a job written alone).
async fn assert_only_one_failed(
    db: &Db,
    requests: &[SyncRequest],
    results: &[Result<SyncSummary, PipelineError>],
    failed: usize,
) {
    let records = records(db).await;
    let mut conn = db.conn().await.expect("conn");
    for (at, (request, result)) in requests.iter().zip(results).enumerate() {
        let record = &records[&request.job_id()];
        let counts = db::writes::tier_counts(&mut conn, &request.seller_id)
            .await
            .expect("counts");
        if at == failed {
            assert!(result.is_err(), "{result:?}");
            assert_eq!(record.status, "RUNNING", "{record:#?}");
            assert_eq!(counts, (0, 0, 0), "the failed job wrote nothing");
        } else {
            let summary = result.as_ref().expect("the other jobs succeed");
            assert_eq!(
                (summary.raw_rows, summary.daily_rows, summary.sellpage_rows),
                (4, 4, 2)
            );
            assert_eq!(record.status, "SUCCEEDED", "{record:#?}");
            assert_eq!(
                (record.raw_rows, record.daily_rows, record.sellpage_rows),
                (Some(4), Some(4), Some(2))
            );
            assert_eq!(counts, (4, 4, 2), "{} counted once", request.seller_id);
        }
    }
}

/// One CAMPAIGN job for each of three sellers.
fn campaign_requests(sellers: &[String]) -> Vec<SyncRequest> {
    sellers
        .iter()
        .map(|s| SyncRequest::one_day(s.as_str(), Level::Campaign, today()))
        .collect()
}

async fn a_fault_in_a_batch_fails_only_its_job(backend: Backend) {
    for point in [FaultPoint::AfterRawInsert, FaultPoint::BeforeCompletion] {
        let sellers = names("gf", 3);
        let catalog = generated_catalog("gf", sellers.len());
        let requests = campaign_requests(&sellers);
        let (_t, db, pipeline, jobs) = claimed(backend, &catalog, &requests).await;
        pipeline.faults().arm(point, 1);
        let results = pipeline.commit_batch(jobs).await;
        assert!(
            matches!(results[0], Err(PipelineError::Injected(p)) if p == point),
            "{point:?}: {:?}",
            results[0]
        );
        let counts = pipeline.group_commits();
        assert_eq!((counts.batches, counts.rolled_back), (0, 1), "{counts:?}");
        assert_only_one_failed(&db, &requests, &results, 0).await;
    }
}

async fn a_lost_lease_in_a_batch_loses_only_its_job(backend: Backend) {
    let sellers = names("gl", 3);
    let catalog = generated_catalog("gl", sellers.len());
    let requests = campaign_requests(&sellers);
    let (_t, db, pipeline, jobs) = claimed(backend, &catalog, &requests).await;
    // Another instance took the middle job back meanwhile (the sweeper's rescue and a new claim).
    let stolen = jobs[1].1.record_id;
    let mut conn = db.conn().await.expect("conn");
    let conn_ref: &mut DbConn = &mut conn;
    db_run!(conn_ref, {
        diesel::sql_query(format!(
            "UPDATE sync_jobs SET locked_by = 'another-instance', attempts = attempts + 1 \
             WHERE id = {stolen}"
        ))
        .execute(conn_ref)
        .await
    })
    .expect("steal the lease");
    drop(conn);
    let results = pipeline.commit_batch(jobs).await;
    assert!(
        matches!(results[1], Err(PipelineError::LeaseLost)),
        "{:?}",
        results[1]
    );
    let counts = pipeline.group_commits();
    assert_eq!((counts.batches, counts.rolled_back), (0, 1), "{counts:?}");
    assert_only_one_failed(&db, &requests, &results, 1).await;
}

async fn one_seller_and_level_twice_is_never_in_one_batch(backend: Backend) {
    let sellers = names("gt", 2);
    let catalog = generated_catalog("gt", sellers.len());
    let yesterday = today().pred_opt().expect("a day before today");
    let requests = vec![
        SyncRequest::one_day(sellers[0].as_str(), Level::Campaign, yesterday),
        SyncRequest::one_day(sellers[1].as_str(), Level::Campaign, today()),
        SyncRequest::one_day(sellers[0].as_str(), Level::Campaign, today()),
        SyncRequest::one_day(sellers[0].as_str(), Level::Ad, today()),
    ];
    let (_t, db, pipeline, jobs) = claimed(backend, &catalog, &requests).await;
    let results = pipeline.commit_batch(jobs).await;
    // The second CAMPAIGN job of the first seller waits; the other three share a transaction.
    assert_eq!(
        pipeline.group_commits(),
        GroupCommitCounts {
            batches: 1,
            jobs: 3,
            largest: 3,
            rolled_back: 0
        }
    );
    let (expected, rows) = reference(backend, &catalog, &requests).await;
    let records = records(&db).await;
    for (request, result) in requests.iter().zip(&results) {
        let summary = result.as_ref().expect("every job succeeds");
        assert_same_counts(summary, &expected[&request.job_id()], &request.job_id());
        assert_reports(&records[&request.job_id()], &expected[&request.job_id()]);
    }
    let first = &records[&requests[0].job_id()];
    let again = &records[&requests[2].job_id()];
    assert_ne!(first.finished_at, again.finished_at, "written apart");
    assert_eq!(
        first.finished_at,
        records[&requests[1].job_id()].finished_at
    );
    assert_eq!(stats_rows(&db).await, rows);
}
