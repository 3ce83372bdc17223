//! `sync_jobs.report_run_id`: what a provider keeps about the reports it started for a job (Meta's
//! async report runs), so a retried attempt resumes them (the claim reads it back with the
//! record). Written only under the job's lease: an attempt that lost its job must not overwrite
//! what the new holder keeps.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::jobs::{Lease, RUNNING};
use super::schema::sync_jobs::dsl as j;
use super::DbConn;
use crate::db_run;

/// Stores `state` (`None` clears it) while `lease` still holds the record; `false` when it does
/// not (the job moved on).
pub async fn keep(conn: &mut DbConn, lease: &Lease, state: Option<&str>) -> QueryResult<bool> {
    let updated = db_run!(conn, {
        diesel::update(
            j::sync_jobs
                .find(lease.record_id)
                .filter(j::status.eq(RUNNING))
                .filter(j::locked_by.eq(lease.worker.as_str()))
                .filter(j::attempts.eq(lease.attempt)),
        )
        .set(j::report_run_id.eq(state))
        .execute(conn)
        .await
    })?;
    Ok(updated == 1)
}
