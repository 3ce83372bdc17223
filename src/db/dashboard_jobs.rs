//! The dashboard's job search: records filtered by seller, status, level, trigger and the UTC days
//! they were queued on, newest first, in keyset pages (`id < cursor`, never OFFSET): a record
//! queued while an operator pages on has a larger id, so it never shifts a page they are reading.
//!
//! With a seller, the (seller_id, id, status) index of migration 000016 is read backwards from the
//! cursor and stops after a page of matches (the status is checked in the index); without one,
//! the primary key is read the same way.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::models::JobRecord;
use super::schema::sync_jobs::dsl as j;
use super::DbConn;
use crate::db_run;

/// What to look for; `None` means any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    pub seller_id: Option<String>,
    pub status: Option<String>,
    pub level: Option<String>,
    pub trigger: Option<String>,
    /// First UTC day the record was queued on (inclusive).
    pub from: Option<NaiveDate>,
    /// Last UTC day the record was queued on (inclusive).
    pub to: Option<NaiveDate>,
}

/// One page of matches, newest first, and the cursor of the next (the last id shown) when there
/// is one.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPage {
    pub jobs: Vec<JobRecord>,
    pub next_before: Option<i64>,
}

fn day_start(day: NaiveDate) -> NaiveDateTime {
    day.and_time(chrono::NaiveTime::MIN)
}

/// Up to `limit` records matching `filter` with an id below `before` (all, without it).
pub async fn search(
    conn: &mut DbConn,
    filter: &JobFilter,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<JobPage> {
    // One more than a page tells whether there is a next page without counting.
    let mut jobs: Vec<JobRecord> = db_run!(conn, {
        let mut query = j::sync_jobs.into_boxed();
        if let Some(seller) = &filter.seller_id {
            query = query.filter(j::seller_id.eq(seller));
        }
        if let Some(status) = &filter.status {
            query = query.filter(j::status.eq(status));
        }
        if let Some(level) = &filter.level {
            query = query.filter(j::level.eq(level));
        }
        if let Some(trigger) = &filter.trigger {
            query = query.filter(j::triggered_by.eq(trigger));
        }
        if let Some(from) = filter.from {
            query = query.filter(j::created_at.ge(day_start(from)));
        }
        if let Some(next_day) = filter.to.and_then(|d| d.succ_opt()) {
            query = query.filter(j::created_at.lt(day_start(next_day)));
        }
        if let Some(before) = before {
            query = query.filter(j::id.lt(before));
        }
        query
            .order(j::id.desc())
            .limit(limit + 1)
            .select(JobRecord::as_select())
            .load(conn)
            .await
    })?;
    let more = jobs.len() as i64 > limit;
    jobs.truncate(usize::try_from(limit).unwrap_or(0));
    let next_before = if more {
        jobs.last().map(|r| r.id)
    } else {
        None
    };
    Ok(JobPage { jobs, next_before })
}

/// Every record of a job id (its runs: a job id repeats at every tick), newest first, at most
/// `limit`; served by the (job_id, id) index.
pub async fn runs_of(conn: &mut DbConn, job_id: &str, limit: i64) -> QueryResult<Vec<JobRecord>> {
    db_run!(conn, {
        j::sync_jobs
            .filter(j::job_id.eq(job_id))
            .order(j::id.desc())
            .limit(limit)
            .select(JobRecord::as_select())
            .load(conn)
            .await
    })
}
