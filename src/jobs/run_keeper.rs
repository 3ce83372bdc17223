//! The jobs layer's side of [`crate::providers::ReportRuns`]: a provider's report state is kept on
//! the job record (`sync_jobs.report_run_id`) under the attempt's lease, so the next attempt of the
//! same job (a retry after a failure, a timeout or a crash) resumes the report instead of starting
//! another. A manual and a scheduled job are kept alike.

use crate::db::jobs::Lease;
use crate::db::{self, Db, DbError};
use crate::providers::RunKeeper;

/// Writes the state for one leased attempt.
pub(super) struct LeasedRunKeeper {
    pub(super) db: Db,
    pub(super) lease: Lease,
}

#[async_trait::async_trait]
impl RunKeeper for LeasedRunKeeper {
    async fn keep(&self, state: Option<&str>) -> Result<(), String> {
        let kept = async {
            let mut conn = self.db.conn().await?;
            Ok::<_, DbError>(db::report_runs::keep(&mut conn, &self.lease, state).await?)
        }
        .await
        .map_err(|e| format!("could not keep the report run on the job: {e}"))?;
        if kept {
            Ok(())
        } else {
            Err("could not keep the report run: the job was taken back by another worker".into())
        }
    }
}
