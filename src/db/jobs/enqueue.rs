//! Recording jobs: one at a time or a tick's worth in a few statements, each unless a record
//! with the same job id is already QUEUED or RUNNING (the partial unique index decides races).

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date, Integer, Nullable, SmallInt, Text, Timestamp};
use diesel_async::RunQueryDsl;

use super::{active, QUEUED, RUNNING};
use crate::db::models::{JobRecord, NewJobRecord};
use crate::db::schema::sync_jobs::dsl as j;
use crate::db::DbConn;
use crate::db_run;

/// The "one active job per job id" conflict target, matching the partial unique index on
/// `sync_jobs (job_id) WHERE status IN ('QUEUED', 'RUNNING')`: one text for every enqueue path.
macro_rules! unless_active {
    () => {
        "ON CONFLICT (job_id) WHERE status IN ('QUEUED', 'RUNNING') DO NOTHING"
    };
}

const INSERT_UNLESS_ACTIVE: &str = concat!(
    "INSERT INTO sync_jobs (job_id, seller_id, level, date_from, date_to, triggered_by, status, \
                            attempts, max_attempts, run_at, created_at, updated_at, priority, \
                            trace_parent) \
     VALUES ($1, $2, $3, $4, $5, $6, 'QUEUED', 0, $7, $8, $8, $8, $9, $10) ",
    unless_active!(),
    " RETURNING id, ",
    job_columns_after_id!()
);

/// Records a job unless one with the same job id is QUEUED or RUNNING. Returns the record and
/// whether it is new. The partial unique index decides races between processes and threads.
pub async fn enqueue(conn: &mut DbConn, job: &NewJobRecord) -> QueryResult<(JobRecord, bool)> {
    enqueue_traced(conn, job, None).await
}

/// [`enqueue`], the record keeping `trace_parent` (the W3C `traceparent` its span continues).
async fn enqueue_traced(
    conn: &mut DbConn,
    job: &NewJobRecord,
    trace_parent: Option<&str>,
) -> QueryResult<(JobRecord, bool)> {
    // A conflicting job can finish between the INSERT and the SELECT; then insert again.
    for _ in 0..5 {
        let inserted: Vec<JobRecord> = db_run!(conn, {
            crate::db::prepared(
                diesel::sql_query(INSERT_UNLESS_ACTIVE)
                    .bind::<Text, _>(&job.job_id)
                    .bind::<Text, _>(&job.seller_id)
                    .bind::<Text, _>(&job.level)
                    .bind::<Date, _>(job.date_from)
                    .bind::<Date, _>(job.date_to)
                    .bind::<Text, _>(&job.triggered_by)
                    .bind::<Integer, _>(job.max_attempts)
                    .bind::<Timestamp, _>(job.run_at)
                    .bind::<SmallInt, _>(job.priority)
                    .bind::<Nullable<Text>, _>(trace_parent),
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

/// Rows per multi-row INSERT on SQLite: 12 parameters a row keeps a chunk far below its limit.
const ENQUEUE_ROWS_PER_STATEMENT: usize = 500;
const _: () = assert!(
    ENQUEUE_ROWS_PER_STATEMENT * 12 < 32_766,
    "SQLite's parameter limit"
);

/// SQLite: the SQL recording `rows` jobs at once, each unless the same job id is QUEUED or
/// RUNNING; 12 parameters a row, in column order. Anonymous `?` placeholders: SQLite looks each
/// new `$n` up among the statement's names one by one, which made a 500-row statement (4,000
/// names) spend most of an enqueue comparing strings.
fn insert_many_sql(rows: usize) -> String {
    let row = "(?, ?, ?, ?, ?, ?, 'QUEUED', 0, ?, ?, ?, ?, ?, ?)";
    format!(
        "INSERT INTO sync_jobs (job_id, seller_id, level, date_from, date_to, triggered_by, status, \
                                attempts, max_attempts, run_at, created_at, updated_at, priority, \
                                trace_parent) \
         VALUES {} {} RETURNING id, job_id",
        vec![row; rows].join(", "),
        unless_active!()
    )
}

/// Rows per statement on PostgreSQL, where they travel as arrays (no parameter limit).
const ENQUEUE_ROWS_PER_ARRAY_INSERT: usize = 5_000;

// One fixed text for any number of rows, so PostgreSQL prepares it once per connection (a
// 500-row VALUES list has 4,000 parameters to parse and plan each time).
const INSERT_MANY_PG: &str = concat!(
    "\
    INSERT INTO sync_jobs (job_id, seller_id, level, date_from, date_to, triggered_by, status, \
                           attempts, max_attempts, run_at, created_at, updated_at, priority, \
                           trace_parent) \
    SELECT job_id, seller_id, level, date_from, date_to, triggered_by, 'QUEUED', 0, \
           max_attempts, run_at, run_at, run_at, priority, trace_parent \
    FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::date[], $6::text[], \
                $7::int4[], $8::timestamp[], $9::int2[], $10::text[]) \
         AS u(job_id, seller_id, level, date_from, date_to, triggered_by, max_attempts, run_at, \
              priority, trace_parent) ",
    unless_active!(),
    " RETURNING id, job_id"
);

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
async fn insert_many(
    conn: &mut DbConn,
    jobs: &[NewJobRecord],
    trace_parent: Option<&str>,
) -> QueryResult<Vec<RecordedJob>> {
    let mut inserted = Vec::new();
    db_run!(conn, postgres {
        use diesel::sql_types::Array;
        for chunk in jobs.chunks(ENQUEUE_ROWS_PER_ARRAY_INSERT) {
            let text = |f: fn(&NewJobRecord) -> &str| chunk.iter().map(f).collect::<Vec<_>>();
            let day = |f: fn(&NewJobRecord) -> chrono::NaiveDate| {
                chunk.iter().map(f).collect::<Vec<_>>()
            };
            let rows: Vec<RecordedJob> = crate::db::prepared(
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
                    )
                    .bind::<Array<Nullable<Text>>, _>(
                        vec![trace_parent; chunk.len()],
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
                    .bind::<SmallInt, _>(job.priority)
                    .bind::<Nullable<Text>, _>(trace_parent.map(str::to_string));
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
    enqueue_many_traced(conn, jobs, None).await
}

/// [`enqueue_many`], the new records keeping `trace_parent`: the W3C `traceparent` of the request
/// that asked for them, which their job spans continue (`None`: each job starts its own trace).
/// Records found active already keep theirs.
pub async fn enqueue_many_traced(
    conn: &mut DbConn,
    jobs: &[NewJobRecord],
    trace_parent: Option<&str>,
) -> QueryResult<Vec<(RecordedJob, bool)>> {
    use std::collections::HashMap;
    let mut found: HashMap<String, (RecordedJob, bool)> = HashMap::with_capacity(jobs.len());
    for record in insert_many(conn, jobs, trace_parent).await? {
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
                let (record, created) = enqueue_traced(conn, job, trace_parent).await?;
                let entry = (RecordedJob::from(record), created);
                found.insert(job.job_id.clone(), entry.clone());
                out.push(entry);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_appear_in_bind_order() {
        crate::db::assert_placeholders_in_order(super::INSERT_UNLESS_ACTIVE);
    }

    #[test]
    fn the_multi_row_insert_has_twelve_placeholders_a_row() {
        for rows in [1, 2, 500] {
            let sql = super::insert_many_sql(rows);
            assert_eq!(sql.matches('?').count(), rows * 12, "{rows}");
            assert!(!sql.contains('$'), "{sql}");
        }
    }
}
