//! The write half of a sync: raw rows, the fold into daily rows and the sellpage rollup, in one
//! transaction with the job's completion mark.

use crate::db::jobs::{Lease, RowsWritten};
use crate::db::{self, DbConn};
use crate::domain::Aggregation;
use crate::domain::Level;

use super::{millis, FaultPoint, Faults, Fetched, Pipeline, PipelineError, SyncSummary};

impl Pipeline {
    /// Writes the three tiers in one transaction; with a lease, the job's SUCCEEDED mark commits
    /// in the same transaction, so the stats are counted exactly when the job is marked done.
    pub async fn commit(
        &self,
        fetched: Fetched,
        lease: Option<&Lease>,
    ) -> Result<SyncSummary, PipelineError> {
        let mut fetched = fetched;
        if let Some(lease) = lease {
            for row in &mut fetched.rows {
                row.job_record_id = Some(lease.record_id);
            }
        }
        let mut conn = self.db.conn().await?;
        let summary = conn
            .transaction(async |conn: &mut DbConn| {
                write_tiers(conn, self.aggregation, &self.faults, &fetched, lease).await
            })
            .await?;
        Ok(summary)
    }
}

async fn write_tiers(
    conn: &mut DbConn,
    aggregation: Aggregation,
    faults: &Faults,
    fetched: &Fetched,
    lease: Option<&Lease>,
) -> Result<SyncSummary, PipelineError> {
    let request = &fetched.request;
    let now = db::now_utc();
    if lease.is_some() {
        db::jobs::commit_without_waiting_for_flush(conn).await?;
    }
    let (raw_rows, daily_rows) =
        db::stats::append_and_fold(conn, aggregation, &fetched.rows, now).await?;
    if faults.trip(FaultPoint::AfterRawInsert) {
        return Err(PipelineError::Injected(FaultPoint::AfterRawInsert));
    }
    let mut currency_conflicts = 0;
    let sellpage_rows = if request.level == Level::Campaign {
        let conflicts = db::stats::sellpage_currency_conflicts(
            conn,
            &request.seller_id,
            request.date_from,
            request.date_to,
        )
        .await?;
        for (sellpage, date) in &conflicts {
            tracing::warn!(
                seller.id = %request.seller_id, sellpage.id = %sellpage, date = %date,
                "sellpage not rolled up for the date: its campaigns report in several currencies"
            );
        }
        currency_conflicts = conflicts.len();
        db::stats::roll_up_sellpages(
            conn,
            &request.seller_id,
            request.date_from,
            request.date_to,
            now,
        )
        .await?
    } else {
        0
    };
    if faults.trip(FaultPoint::BeforeCompletion) {
        return Err(PipelineError::Injected(FaultPoint::BeforeCompletion));
    }
    let summary = SyncSummary {
        entities: fetched.entities,
        raw_rows,
        daily_rows,
        sellpage_rows,
        duration_ms: millis(fetched.started.elapsed()),
        currency_conflicts,
        unmatched_rows: fetched.unmatched_rows,
    };
    if let Some(lease) = lease {
        let rows = RowsWritten {
            entities: summary.entities as i64,
            raw: summary.raw_rows as i64,
            daily: summary.daily_rows as i64,
            sellpage: summary.sellpage_rows as i64,
        };
        if !db::jobs::mark_succeeded(conn, lease, rows, now).await? {
            return Err(PipelineError::LeaseLost);
        }
    }
    Ok(summary)
}
