//! Job records in `sync_jobs`. Every state change is one guarded UPDATE, so a record can only move
//! along QUEUED → RUNNING → SUCCEEDED | FAILED (or back to QUEUED for a retry) by the process that
//! holds it, or QUEUED → CANCELLED by an operator (`job_actions.rs`).

use chrono::NaiveDateTime;
use diesel::dsl::now as db_now;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date, Integer, SmallInt, Text, Timestamp};
use diesel_async::RunQueryDsl;

use super::models::{JobRecord, NewJobRecord};
use super::schema::sync_jobs::dsl as j;
use super::DbConn;
use crate::db_run;

pub const QUEUED: &str = "QUEUED";
pub const RUNNING: &str = "RUNNING";
pub const SUCCEEDED: &str = "SUCCEEDED";
pub const FAILED: &str = "FAILED";
/// Cancelled by an operator while QUEUED: terminal, never run, outside the dedup index.
pub const CANCELLED: &str = "CANCELLED";

/// Rows one successful run wrote, kept on its record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowsWritten {
    pub entities: i64,
    pub raw: i64,
    pub daily: i64,
    pub sellpage: i64,
}

/// Who holds a RUNNING record: the process and the attempt it claimed.
#[derive(Debug, Clone)]
pub struct Lease {
    pub record_id: i64,
    pub worker: String,
    pub attempt: i32,
}

/// The record as long as this lease still holds it.
macro_rules! leased {
    ($lease:expr) => {
        j::sync_jobs
            .find($lease.record_id)
            .filter(j::status.eq(RUNNING))
            .filter(j::locked_by.eq($lease.worker.as_str()))
            .filter(j::attempts.eq($lease.attempt))
    };
}

/// The columns of [`JobRecord`] after `id`, named: a prepared statement returning `*` would fail
/// on every pooled connection once a migration added a column ("cached plan must not change
/// result type").
macro_rules! job_columns_after_id {
    () => {
        "job_id, seller_id, level, date_from, date_to, triggered_by, status, attempts, \
         max_attempts, last_error, run_at, locked_by, heartbeat_at, entities, raw_rows, daily_rows, \
         sellpage_rows, created_at, started_at, finished_at, updated_at, priority"
    };
}

const INSERT_UNLESS_ACTIVE: &str = concat!(
    "INSERT INTO sync_jobs (job_id, seller_id, level, date_from, date_to, triggered_by, status, \
                            attempts, max_attempts, run_at, created_at, updated_at, priority) \
     VALUES ($1, $2, $3, $4, $5, $6, 'QUEUED', 0, $7, $8, $8, $8, $9) \
     ON CONFLICT (job_id) WHERE status IN ('QUEUED', 'RUNNING') DO NOTHING \
     RETURNING id, ",
    job_columns_after_id!()
);

/// Records a job unless one with the same job id is QUEUED or RUNNING. Returns the record and
/// whether it is new. The partial unique index decides races between processes and threads.
pub async fn enqueue(conn: &mut DbConn, job: &NewJobRecord) -> QueryResult<(JobRecord, bool)> {
    // A conflicting job can finish between the INSERT and the SELECT; then insert again.
    for _ in 0..5 {
        let inserted: Vec<JobRecord> = db_run!(conn, {
            super::prepared(
                diesel::sql_query(INSERT_UNLESS_ACTIVE)
                    .bind::<Text, _>(&job.job_id)
                    .bind::<Text, _>(&job.seller_id)
                    .bind::<Text, _>(&job.level)
                    .bind::<Date, _>(job.date_from)
                    .bind::<Date, _>(job.date_to)
                    .bind::<Text, _>(&job.triggered_by)
                    .bind::<Integer, _>(job.max_attempts)
                    .bind::<Timestamp, _>(job.run_at)
                    .bind::<SmallInt, _>(job.priority),
            )
            .load(conn)
            .await
        })?;
        if let Some(record) = inserted.into_iter().next() {
            return Ok((record, true));
        }
        if let Some(active) = active(conn, &job.job_id).await? {
            return Ok((active, false));
        }
    }
    Err(diesel::result::Error::QueryBuilderError(
        format!(
            "job {} kept finishing while it was being enqueued",
            job.job_id
        )
        .into(),
    ))
}

/// Rows per multi-row INSERT on SQLite: 11 parameters a row keeps a chunk far below its limit.
const ENQUEUE_ROWS_PER_STATEMENT: usize = 500;
const _: () = assert!(
    ENQUEUE_ROWS_PER_STATEMENT * 11 < 32_766,
    "SQLite's parameter limit"
);

/// SQLite: the SQL recording `rows` jobs at once, each unless the same job id is QUEUED or
/// RUNNING; 11 parameters a row, in column order. Anonymous `?` placeholders: SQLite looks each
/// new `$n` up among the statement's names one by one, which made a 500-row statement (4,000
/// names) spend most of an enqueue comparing strings.
fn insert_many_sql(rows: usize) -> String {
    let row = "(?, ?, ?, ?, ?, ?, 'QUEUED', 0, ?, ?, ?, ?, ?)";
    format!(
        "INSERT INTO sync_jobs (job_id, seller_id, level, date_from, date_to, triggered_by, status, \
                                attempts, max_attempts, run_at, created_at, updated_at, priority) \
         VALUES {} ON CONFLICT (job_id) WHERE status IN ('QUEUED', 'RUNNING') DO NOTHING RETURNING id, job_id",
        vec![row; rows].join(", ")
    )
}

/// Rows per statement on PostgreSQL, where they travel as arrays (no parameter limit).
const ENQUEUE_ROWS_PER_ARRAY_INSERT: usize = 5_000;

// One fixed text for any number of rows, so PostgreSQL prepares it once per connection (a
// 500-row VALUES list has 4,000 parameters to parse and plan each time).
const INSERT_MANY_PG: &str = "\
    INSERT INTO sync_jobs (job_id, seller_id, level, date_from, date_to, triggered_by, status, \
                           attempts, max_attempts, run_at, created_at, updated_at, priority) \
    SELECT job_id, seller_id, level, date_from, date_to, triggered_by, 'QUEUED', 0, \
           max_attempts, run_at, run_at, run_at, priority \
    FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::date[], $6::text[], \
                $7::int4[], $8::timestamp[], $9::int2[]) \
         AS u(job_id, seller_id, level, date_from, date_to, triggered_by, max_attempts, run_at, \
              priority) \
    ON CONFLICT (job_id) WHERE status IN ('QUEUED', 'RUNNING') DO NOTHING RETURNING id, job_id";

/// A record's identity: what an enqueue hands the workers and answers the caller with. A tick
/// records tens of thousands of jobs; carrying whole records would only cost memory.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName, Queryable)]
pub struct RecordedJob {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub job_id: String,
}

impl From<JobRecord> for RecordedJob {
    fn from(record: JobRecord) -> Self {
        Self {
            id: record.id,
            job_id: record.job_id,
        }
    }
}

/// Records `jobs` (each unless its job id is QUEUED or RUNNING); returns the new records.
async fn insert_many(conn: &mut DbConn, jobs: &[NewJobRecord]) -> QueryResult<Vec<RecordedJob>> {
    let mut inserted = Vec::new();
    db_run!(conn, postgres {
        use diesel::sql_types::Array;
        for chunk in jobs.chunks(ENQUEUE_ROWS_PER_ARRAY_INSERT) {
            let text = |f: fn(&NewJobRecord) -> &str| chunk.iter().map(f).collect::<Vec<_>>();
            let day = |f: fn(&NewJobRecord) -> chrono::NaiveDate| {
                chunk.iter().map(f).collect::<Vec<_>>()
            };
            let rows: Vec<RecordedJob> = super::prepared(
                diesel::sql_query(INSERT_MANY_PG)
                    .bind::<Array<Text>, _>(text(|j| &j.job_id))
                    .bind::<Array<Text>, _>(text(|j| &j.seller_id))
                    .bind::<Array<Text>, _>(text(|j| &j.level))
                    .bind::<Array<Date>, _>(day(|j| j.date_from))
                    .bind::<Array<Date>, _>(day(|j| j.date_to))
                    .bind::<Array<Text>, _>(text(|j| &j.triggered_by))
                    .bind::<Array<Integer>, _>(
                        chunk.iter().map(|j| j.max_attempts).collect::<Vec<_>>(),
                    )
                    .bind::<Array<Timestamp>, _>(chunk.iter().map(|j| j.run_at).collect::<Vec<_>>())
                    .bind::<Array<SmallInt>, _>(
                        chunk.iter().map(|j| j.priority).collect::<Vec<_>>(),
                    ),
            )
            .load(conn)
            .await?;
            inserted.extend(rows);
        }
    }, sqlite {
        for chunk in jobs.chunks(ENQUEUE_ROWS_PER_STATEMENT) {
            let sql = insert_many_sql(chunk.len());
            let mut query = diesel::sql_query(&sql).into_boxed();
            for job in chunk {
                query = query
                    .bind::<Text, _>(job.job_id.clone())
                    .bind::<Text, _>(job.seller_id.clone())
                    .bind::<Text, _>(job.level.clone())
                    .bind::<Date, _>(job.date_from)
                    .bind::<Date, _>(job.date_to)
                    .bind::<Text, _>(job.triggered_by.clone())
                    .bind::<Integer, _>(job.max_attempts)
                    .bind::<Timestamp, _>(job.run_at)
                    .bind::<Timestamp, _>(job.run_at)
                    .bind::<Timestamp, _>(job.run_at)
                    .bind::<SmallInt, _>(job.priority);
            }
            let rows: Vec<RecordedJob> = query.load(conn).await?;
            inserted.extend(rows);
        }
    });
    Ok(inserted)
}

/// Records many jobs with a few statements: multi-row INSERTs that skip job ids already QUEUED
/// or RUNNING, then one read of those active records. Returns, in the order of `jobs`, each
/// job's record and whether it is new (`false`: deduplicated). Run it in a transaction.
pub async fn enqueue_many(
    conn: &mut DbConn,
    jobs: &[NewJobRecord],
) -> QueryResult<Vec<(RecordedJob, bool)>> {
    use std::collections::HashMap;
    let mut found: HashMap<String, (RecordedJob, bool)> = HashMap::with_capacity(jobs.len());
    for record in insert_many(conn, jobs).await? {
        found.insert(record.job_id.clone(), (record, true));
    }
    let skipped: Vec<&str> = jobs
        .iter()
        .map(|j| j.job_id.as_str())
        .filter(|id| !found.contains_key(*id))
        .collect();
    for ids in skipped.chunks(ENQUEUE_ROWS_PER_STATEMENT) {
        let active: Vec<RecordedJob> = db_run!(conn, {
            j::sync_jobs
                .filter(j::job_id.eq_any(ids))
                .filter(j::status.eq_any([QUEUED, RUNNING]))
                .select((j::id, j::job_id))
                .load(conn)
                .await
        })?;
        for record in active {
            found.insert(record.job_id.clone(), (record, false));
        }
    }
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        match found.get(&job.job_id) {
            Some(entry) => out.push(entry.clone()),
            // Its active twin finished between the INSERT and the read: record it on its own.
            None => {
                let (record, created) = enqueue(conn, job).await?;
                let entry = (RecordedJob::from(record), created);
                found.insert(job.job_id.clone(), entry.clone());
                out.push(entry);
            }
        }
    }
    Ok(out)
}

/// The QUEUED or RUNNING record with this job id, if any.
pub async fn active(conn: &mut DbConn, job_id: &str) -> QueryResult<Option<JobRecord>> {
    db_run!(conn, {
        j::sync_jobs
            .filter(j::job_id.eq(job_id))
            .filter(j::status.eq_any([QUEUED, RUNNING]))
            .select(JobRecord::as_select())
            .first(conn)
            .await
            .optional()
    })
}

/// The newest record with this job id, if any.
pub async fn latest(conn: &mut DbConn, job_id: &str) -> QueryResult<Option<JobRecord>> {
    db_run!(conn, {
        j::sync_jobs
            .filter(j::job_id.eq(job_id))
            .order(j::id.desc())
            .select(JobRecord::as_select())
            .first(conn)
            .await
            .optional()
    })
}

pub async fn get(conn: &mut DbConn, record_id: i64) -> QueryResult<Option<JobRecord>> {
    db_run!(conn, {
        j::sync_jobs
            .find(record_id)
            .select(JobRecord::as_select())
            .first(conn)
            .await
            .optional()
    })
}

/// Moves a QUEUED record that is due to RUNNING for `worker`, counting the attempt. `None` when the
/// record is no longer QUEUED (another worker took it, or it was already done) or not due yet (a
/// retry waiting out its backoff, delivered again early: it must not burn an attempt).
///
/// Leases are measured on the database's clock (see [`rescue_orphans`]): on PostgreSQL the
/// heartbeat starts at its `CURRENT_TIMESTAMP`; on SQLite the process clock is the database clock.
pub async fn claim(
    conn: &mut DbConn,
    record_id: i64,
    worker: &str,
) -> QueryResult<Option<JobRecord>> {
    db_run!(conn, postgres {
        super::prepared(
            diesel::update(
                j::sync_jobs
                    .find(record_id)
                    .filter(j::status.eq(QUEUED))
                    .filter(j::run_at.le(db_now)),
            )
            .set((
                j::status.eq(RUNNING),
                j::attempts.eq(j::attempts + 1),
                j::locked_by.eq(worker),
                j::heartbeat_at.eq(db_now.nullable()),
                j::started_at.eq(db_now.nullable()),
                j::updated_at.eq(db_now),
            ))
            .returning(JobRecord::as_returning()),
        )
        .get_result(conn)
        .await
        .optional()
    }, sqlite {
        let now = super::now_utc();
        diesel::update(
            j::sync_jobs
                .find(record_id)
                .filter(j::status.eq(QUEUED))
                .filter(j::run_at.le(now)),
        )
        .set((
            j::status.eq(RUNNING),
            j::attempts.eq(j::attempts + 1),
            j::locked_by.eq(worker),
            j::heartbeat_at.eq(now),
            j::started_at.eq(now),
            j::updated_at.eq(now),
        ))
        .returning(JobRecord::as_returning())
        .get_result(conn)
        .await
        .optional()
    })
}

// SKIP LOCKED: claimers on several instances each take different rows instead of queueing behind
// one another's row locks. The rows are picked in a MATERIALIZED CTE, evaluated exactly once: as
// `WHERE id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)` the planner may run the subquery again
// per row and claim far more than `n` (seen in the outage test: 595 RUNNING at concurrency 5).
// The order is the claim order (class, then run_at, then id): the partial index
// ix_sync_jobs_claim (priority, run_at, id) WHERE status = 'QUEUED' serves it as one Index Scan
// read in order and stopped after `n` due rows, no Sort (EXPLAIN-checked by the fair_queue test).
// The status literal must stay a literal: a bound parameter would not match the index predicate.
const CLAIM_DUE: &str = concat!(
    "WITH picked AS MATERIALIZED ( \
        SELECT id FROM sync_jobs \
        WHERE status = 'QUEUED' AND run_at <= CURRENT_TIMESTAMP \
        ORDER BY priority, run_at, id \
        LIMIT $1 \
        FOR UPDATE SKIP LOCKED) \
    UPDATE sync_jobs \
    SET status = 'RUNNING', attempts = attempts + 1, locked_by = $2, \
        heartbeat_at = CURRENT_TIMESTAMP, started_at = CURRENT_TIMESTAMP, updated_at = CURRENT_TIMESTAMP \
    FROM picked \
    WHERE sync_jobs.id = picked.id AND sync_jobs.status = 'QUEUED' \
    RETURNING sync_jobs.id, ",
    job_columns_after_id!()
);

/// PostgreSQL only: claims up to `limit` due QUEUED records for `worker` in one statement, whoever
/// enqueued them, so any instance with free slots runs any job. Rows another claimer holds are
/// skipped, never waited for. `None` on SQLite, where one process owns the file and the
/// in-process channel delivers every job.
pub async fn claim_due(
    conn: &mut DbConn,
    worker: &str,
    limit: i64,
) -> QueryResult<Option<Vec<JobRecord>>> {
    match conn {
        DbConn::Postgres(conn) => {
            let conn: &mut super::PgConn = conn;
            let mut claimed: Vec<JobRecord> = super::prepared(
                diesel::sql_query(CLAIM_DUE)
                    .bind::<BigInt, _>(limit)
                    .bind::<Text, _>(worker),
            )
            .load(conn)
            .await?;
            // RETURNING gives no order; start them in claim order.
            claimed.sort_by_key(|r| (r.priority, r.run_at, r.id));
            Ok(Some(claimed))
        }
        DbConn::Sqlite(_) => Ok(None),
    }
}

// SQLite: the same order through the same partial index (the status literal again). `$2` is the
// time read inside the write transaction, so `started_at` orders claims as they happened.
const CLAIM_NEXT_SQLITE: &str = concat!(
    "UPDATE sync_jobs \
     SET status = 'RUNNING', attempts = attempts + 1, locked_by = $1, \
         heartbeat_at = $2, started_at = $2, updated_at = $2 \
     WHERE id = (SELECT id FROM sync_jobs \
                 WHERE status = 'QUEUED' AND run_at <= $2 \
                 ORDER BY priority, run_at, id \
                 LIMIT 1) \
       AND status = 'QUEUED' \
     RETURNING id, ",
    job_columns_after_id!()
);

/// Claims the next due QUEUED record for `worker`, whichever it is: the lowest class first (see
/// the jobs module's `Priority`), then the earliest `run_at`, then the lowest id. `None` when no
/// record is due. Workers claim this way rather than by the id they were handed, so a backfill
/// queued first never runs ahead of a scheduled job or of a sync a person is waiting for.
pub async fn claim_next(conn: &mut DbConn, worker: &str) -> QueryResult<Option<JobRecord>> {
    if let DbConn::Postgres(_) = conn {
        let claimed = claim_due(conn, worker, 1).await?.unwrap_or_default();
        return Ok(claimed.into_iter().next());
    }
    // The time is read after BEGIN IMMEDIATE took the write lock: claims waiting for the lock
    // then get times in the order they claim.
    conn.transaction(async |conn: &mut DbConn| {
        let now = super::now_utc();
        let claimed: Vec<JobRecord> = db_run!(conn, {
            diesel::sql_query(CLAIM_NEXT_SQLITE)
                .bind::<Text, _>(worker)
                .bind::<Timestamp, _>(now)
                .load(conn)
                .await
        })?;
        Ok(claimed.into_iter().next())
    })
    .await
}

/// Marks the leased run SUCCEEDED with its row counts. `false` when the lease was lost (the record
/// was rescued or released meanwhile): the caller must then roll back the run's writes.
/// For a queued job's write transaction on PostgreSQL: its COMMIT returns without waiting for
/// the WAL flush (`SET LOCAL synchronous_commit = off`, this transaction only).
///
/// Why that keeps exactly-once: the claim that made the record RUNNING committed durably before
/// (an ordinary commit), and the stats and the SUCCEEDED mark are one transaction, so a server
/// crash can lose only the whole of it. The record is then back to RUNNING under this instance,
/// which no longer beats its heartbeat (the job left its running set), so the sweeper takes it
/// back after `jobs.rescue_after` and runs it again: counted once, as after any crash between
/// claim and commit. What a crash can undo is a SUCCEEDED a reader already saw. Enqueues, claims
/// and failure marks keep durable commits: an accepted job is never lost. SQLite: no-op.
pub async fn commit_without_waiting_for_flush(conn: &mut DbConn) -> QueryResult<()> {
    use diesel_async::SimpleAsyncConnection;
    match conn {
        DbConn::Postgres(c) => c.batch_execute("SET LOCAL synchronous_commit = off").await,
        DbConn::Sqlite(_) => Ok(()),
    }
}

pub async fn mark_succeeded(
    conn: &mut DbConn,
    lease: &Lease,
    rows: RowsWritten,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    // diesel never caches an UPDATE (a changeset of options can change its text); this one's
    // text is fixed, and every job runs it.
    let updated = db_run!(conn, {
        super::prepared(diesel::update(leased!(lease)).set((
            // `locked_by` stays: the record shows which instance ran it.
            j::status.eq(SUCCEEDED),
            j::last_error.eq(None::<String>),
            j::entities.eq(rows.entities),
            j::raw_rows.eq(rows.raw),
            j::daily_rows.eq(rows.daily),
            j::sellpage_rows.eq(rows.sellpage),
            j::finished_at.eq(now),
            j::updated_at.eq(now),
        )))
        .execute(conn)
        .await
    })?;
    Ok(updated == 1)
}

/// Records a failed attempt: back to QUEUED until `retry_at` when given, otherwise FAILED for good.
pub async fn mark_attempt_failed(
    conn: &mut DbConn,
    lease: &Lease,
    error: &str,
    retry_at: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let updated = db_run!(conn, {
        match retry_at {
            Some(retry_at) => {
                diesel::update(leased!(lease))
                    .set((
                        j::status.eq(QUEUED),
                        j::last_error.eq(error),
                        j::locked_by.eq(None::<String>),
                        j::run_at.eq(retry_at),
                        j::updated_at.eq(now),
                    ))
                    .execute(conn)
                    .await
            }
            None => {
                diesel::update(leased!(lease))
                    .set((
                        // `locked_by` stays: the instance that ran the last attempt.
                        j::status.eq(FAILED),
                        j::last_error.eq(error),
                        j::finished_at.eq(now),
                        j::updated_at.eq(now),
                    ))
                    .execute(conn)
                    .await
            }
        }
    })?;
    Ok(updated == 1)
}

/// Hands a leased run back as QUEUED without counting the attempt (shutdown before it finished).
pub async fn release(conn: &mut DbConn, lease: &Lease, now: NaiveDateTime) -> QueryResult<bool> {
    let updated = db_run!(conn, {
        diesel::update(leased!(lease))
            .set((
                j::status.eq(QUEUED),
                j::attempts.eq(j::attempts - 1),
                j::locked_by.eq(None::<String>),
                j::run_at.eq(now),
                j::updated_at.eq(now),
            ))
            .execute(conn)
            .await
    })?;
    Ok(updated == 1)
}

/// Puts a leased run back as QUEUED until `run_at` without counting the attempt: it asked the
/// provider nothing (its ad account is paused), so it must not use up its attempts while it waits.
pub async fn defer(
    conn: &mut DbConn,
    lease: &Lease,
    note: &str,
    run_at: NaiveDateTime,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let updated = db_run!(conn, {
        diesel::update(leased!(lease))
            .set((
                j::status.eq(QUEUED),
                j::attempts.eq(j::attempts - 1),
                j::last_error.eq(note),
                j::locked_by.eq(None::<String>),
                j::run_at.eq(run_at),
                j::updated_at.eq(now),
            ))
            .execute(conn)
            .await
    })?;
    Ok(updated == 1)
}

/// Refreshes the heartbeat of the records `worker` is running, on the database's clock. Only
/// records it still holds: one taken back and claimed by another instance meanwhile is that
/// instance's to vouch for.
pub async fn heartbeat(conn: &mut DbConn, worker: &str, record_ids: &[i64]) -> QueryResult<usize> {
    db_run!(conn, postgres {
        diesel::update(
            j::sync_jobs
                .filter(j::status.eq(RUNNING))
                .filter(j::locked_by.eq(worker))
                .filter(j::id.eq_any(record_ids)),
        )
        .set(j::heartbeat_at.eq(db_now.nullable()))
        .execute(conn)
        .await
    }, sqlite {
        diesel::update(
            j::sync_jobs
                .filter(j::status.eq(RUNNING))
                .filter(j::locked_by.eq(worker))
                .filter(j::id.eq_any(record_ids)),
        )
        .set(j::heartbeat_at.eq(super::now_utc()))
        .execute(conn)
        .await
    })
}

const NOTE_ORPHANED: &str = "the process running this job stopped before it finished";

// One statement: requeued while attempts remain, FAILED otherwise. Compared with the database's
// own clock, so instances whose clocks disagree still agree on which heartbeats are stale.
// A FAILED record keeps `locked_by`: the instance that died running it.
const RESCUE_ORPHANS_PG: &str = "\
    UPDATE sync_jobs \
    SET status = CASE WHEN attempts < max_attempts THEN 'QUEUED' ELSE 'FAILED' END, \
        last_error = $1, \
        locked_by = CASE WHEN attempts < max_attempts THEN NULL ELSE locked_by END, \
        run_at = CASE WHEN attempts < max_attempts THEN CURRENT_TIMESTAMP ELSE run_at END, \
        finished_at = CASE WHEN attempts < max_attempts THEN finished_at ELSE CURRENT_TIMESTAMP END, \
        updated_at = CURRENT_TIMESTAMP \
    WHERE status = 'RUNNING' \
      AND (heartbeat_at IS NULL OR heartbeat_at < CURRENT_TIMESTAMP - $2 * INTERVAL '1 millisecond')";

/// Takes back RUNNING records whose process has not shown life for `rescue_after` (by the
/// database's clock on PostgreSQL; on SQLite the process clock is the database clock): QUEUED
/// again when attempts remain, FAILED otherwise. Returns how many were taken back.
pub async fn rescue_orphans(
    conn: &mut DbConn,
    rescue_after: std::time::Duration,
) -> QueryResult<usize> {
    let after_ms = i64::try_from(rescue_after.as_millis()).unwrap_or(i64::MAX);
    db_run!(conn, postgres {
        diesel::sql_query(RESCUE_ORPHANS_PG)
            .bind::<Text, _>(NOTE_ORPHANED)
            .bind::<BigInt, _>(after_ms)
            .execute(conn)
            .await
    }, sqlite {
        let now = super::now_utc();
        let stale_before = now - chrono::Duration::milliseconds(after_ms);
        let orphaned = j::status.eq(RUNNING).and(
            j::heartbeat_at
                .is_null()
                .or(j::heartbeat_at.lt(stale_before)),
        );
        let requeued = diesel::update(
            j::sync_jobs
                .filter(orphaned)
                .filter(j::attempts.lt(j::max_attempts)),
        )
        .set((
            j::status.eq(QUEUED),
            j::last_error.eq(NOTE_ORPHANED),
            j::locked_by.eq(None::<String>),
            j::run_at.eq(now),
            j::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
        // Only those out of attempts: a record that turned orphaned between the two statements
        // (it cannot in a running service, but a hand edit can) waits for the next sweep.
        let failed = diesel::update(
            j::sync_jobs
                .filter(orphaned)
                .filter(j::attempts.ge(j::max_attempts)),
        )
        .set((
            j::status.eq(FAILED),
            j::last_error.eq(NOTE_ORPHANED),
            j::finished_at.eq(now),
            j::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
        Ok(requeued + failed)
    })
}

// The status literal lets both backends read ix_sync_jobs_claim in order (see CLAIM_DUE).
const DUE: &str = "\
    SELECT id, job_id FROM sync_jobs \
    WHERE status = 'QUEUED' AND run_at <= $1 \
    ORDER BY priority, run_at, id \
    LIMIT $2";

/// QUEUED records whose time has come, in claim order (class, then `run_at`, then id).
pub async fn due(conn: &mut DbConn, now: NaiveDateTime, limit: i64) -> QueryResult<Vec<i64>> {
    let rows: Vec<RecordedJob> = db_run!(conn, {
        diesel::sql_query(DUE)
            .bind::<Timestamp, _>(now)
            .bind::<BigInt, _>(limit)
            .load(conn)
            .await
    })?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Deletes finished records that finished before `before`.
pub async fn prune(conn: &mut DbConn, before: NaiveDateTime) -> QueryResult<usize> {
    db_run!(conn, {
        diesel::delete(
            j::sync_jobs
                .filter(j::status.eq_any([SUCCEEDED, FAILED, CANCELLED]))
                .filter(j::finished_at.lt(before)),
        )
        .execute(conn)
        .await
    })
}

/// (QUEUED, RUNNING) record counts.
pub async fn active_counts(conn: &mut DbConn) -> QueryResult<(i64, i64)> {
    db_run!(conn, {
        let rows: Vec<(String, i64)> = j::sync_jobs
            .filter(j::status.eq_any([QUEUED, RUNNING]))
            .group_by(j::status)
            .select((j::status, diesel::dsl::count_star()))
            .load(conn)
            .await?;
        let count = |s: &str| rows.iter().find(|(st, _)| st == s).map_or(0, |(_, n)| *n);
        Ok((count(QUEUED), count(RUNNING)))
    })
}

/// Every record, oldest first (tests and tools).
pub async fn all(conn: &mut DbConn) -> QueryResult<Vec<JobRecord>> {
    db_run!(conn, {
        j::sync_jobs
            .order(j::id)
            .select(JobRecord::as_select())
            .load(conn)
            .await
    })
}

/// Counts of the statuses an operator acts on, for the dashboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts {
    pub queued: i64,
    pub running: i64,
    pub failed: i64,
}

/// QUEUED, RUNNING and FAILED record counts in one grouped query. SUCCEEDED is left out on
/// purpose: it is nearly every record (a tick per 5 minutes, `jobs.retention` of them), and
/// counting it would cost a scan that grows with retention; the three counted are few and served
/// by the (status, run_at) index.
pub async fn status_counts(conn: &mut DbConn) -> QueryResult<StatusCounts> {
    db_run!(conn, {
        let rows: Vec<(String, i64)> = j::sync_jobs
            .filter(j::status.eq_any([QUEUED, RUNNING, FAILED]))
            .group_by(j::status)
            .select((j::status, diesel::dsl::count_star()))
            .load(conn)
            .await?;
        let count = |s: &str| rows.iter().find(|(st, _)| st == s).map_or(0, |(_, n)| *n);
        Ok(StatusCounts {
            queued: count(QUEUED),
            running: count(RUNNING),
            failed: count(FAILED),
        })
    })
}

/// The `limit` newest records, newest first (read backwards along the primary key).
pub async fn newest(conn: &mut DbConn, limit: i64) -> QueryResult<Vec<JobRecord>> {
    db_run!(conn, {
        j::sync_jobs
            .order(j::id.desc())
            .select(JobRecord::as_select())
            .limit(limit)
            .load(conn)
            .await
    })
}

/// FAILED records, most recently finished first, at most `limit`.
pub async fn failed(conn: &mut DbConn, limit: i64) -> QueryResult<Vec<JobRecord>> {
    db_run!(conn, {
        j::sync_jobs
            .filter(j::status.eq(FAILED))
            .order((j::finished_at.desc(), j::id.desc()))
            .select(JobRecord::as_select())
            .limit(limit)
            .load(conn)
            .await
    })
}

/// What asking to run a FAILED record again did.
#[derive(Debug, Clone, PartialEq)]
pub enum Requeue {
    /// The record is QUEUED again with its attempts reset.
    Requeued(JobRecord),
    /// Another record with the same job id is QUEUED or RUNNING: that one will do the work.
    AlreadyActive(JobRecord),
    /// The record is not FAILED (any more); nothing changed.
    NotFailed(JobRecord),
    NotFound,
}

// The NOT EXISTS keeps the partial unique index's promise (one active record per job id) without
// relying on the constraint error; the error still settles a race on PostgreSQL (see below).
const REQUEUE_FAILED: &str = "\
    UPDATE sync_jobs \
    SET status = 'QUEUED', attempts = 0, locked_by = NULL, heartbeat_at = NULL, \
        finished_at = NULL, run_at = $1, updated_at = $1 \
    WHERE id = $2 AND status = 'FAILED' \
      AND NOT EXISTS (SELECT 1 FROM sync_jobs a \
                      WHERE a.job_id = sync_jobs.job_id AND a.status IN ('QUEUED', 'RUNNING')) \
    RETURNING *";

/// Puts a FAILED record back to QUEUED, due now, with a full set of attempts; `last_error` stays
/// until the next run replaces or clears it. The same record runs again rather than a new one so
/// that the failure leaves the FAILED list and the job's history stays one row.
pub async fn requeue_failed(
    conn: &mut DbConn,
    record_id: i64,
    now: NaiveDateTime,
) -> QueryResult<Requeue> {
    use diesel::result::{DatabaseErrorKind, Error};
    // An active record can finish between the UPDATE and the look-ups; then try again.
    for _ in 0..5 {
        let updated: QueryResult<Vec<JobRecord>> = db_run!(conn, {
            diesel::sql_query(REQUEUE_FAILED)
                .bind::<Timestamp, _>(now)
                .bind::<BigInt, _>(record_id)
                .load(conn)
                .await
        });
        match updated {
            Ok(rows) => {
                if let Some(record) = rows.into_iter().next() {
                    return Ok(Requeue::Requeued(record));
                }
            }
            // On PostgreSQL a record with the same job id can become active between the NOT
            // EXISTS and the write; the unique index then refuses it: "already active".
            Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {}
            Err(e) => return Err(e),
        }
        let Some(record) = get(conn, record_id).await? else {
            return Ok(Requeue::NotFound);
        };
        if record.status != FAILED {
            return Ok(Requeue::NotFailed(record));
        }
        if let Some(active) = active(conn, &record.job_id).await? {
            return Ok(Requeue::AlreadyActive(active));
        }
    }
    Err(Error::QueryBuilderError(
        format!("job record {record_id} kept changing while it was being requeued").into(),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_appear_in_bind_order() {
        crate::db::assert_placeholders_in_order(super::INSERT_UNLESS_ACTIVE);
        crate::db::assert_placeholders_in_order(super::REQUEUE_FAILED);
        crate::db::assert_placeholders_in_order(super::CLAIM_DUE);
        crate::db::assert_placeholders_in_order(super::CLAIM_NEXT_SQLITE);
        crate::db::assert_placeholders_in_order(super::DUE);
        crate::db::assert_placeholders_in_order(super::RESCUE_ORPHANS_PG);
    }

    #[test]
    fn the_multi_row_insert_has_eleven_placeholders_a_row() {
        for rows in [1, 2, 500] {
            let sql = super::insert_many_sql(rows);
            assert_eq!(sql.matches('?').count(), rows * 11, "{rows}");
            assert!(!sql.contains('$'), "{sql}");
        }
    }
}
