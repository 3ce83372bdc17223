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
        self.write_alone(&fetched, lease).await
    }

    /// Writes several leased jobs' readings in one transaction (a group commit): one append and
    /// fold of all their raw rows, each campaign job's sellpage rollup and every job's SUCCEEDED
    /// mark, then one COMMIT. Answers each job's outcome in the order given. One job alone is
    /// written exactly as [`Pipeline::commit`] writes it.
    ///
    /// A job whose seller and level are already in the batch is written alone after it: one
    /// upsert cannot fold two rows into the same daily row, and each job's counts must stay its
    /// own (the runtime's group commit keeps such jobs for the next batch). If the batch fails for any
    /// reason it is rolled back and each job is written alone, as [`Pipeline::commit`] does, so
    /// each gets the outcome it would have had alone and one bad job never undoes another's
    /// success. A fault injected for a job of the batch is that job's outcome (the fault is used
    /// up, as it would have been alone); the others are then written alone.
    pub async fn commit_batch(
        &self,
        jobs: Vec<(Fetched, Lease)>,
    ) -> Vec<Result<SyncSummary, PipelineError>> {
        let mut jobs = jobs;
        for (fetched, lease) in &mut jobs {
            for row in &mut fetched.rows {
                row.job_record_id = Some(lease.record_id);
            }
        }
        // A second job of a seller and level already in the batch is written alone after it.
        let mut keys = std::collections::HashSet::new();
        let batch: Vec<usize> = (0..jobs.len())
            .filter(|&at| keys.insert(jobs[at].0.request.group_commit_key()))
            .collect();
        let mut results: Vec<Option<Result<SyncSummary, PipelineError>>> =
            (0..jobs.len()).map(|_| None).collect();
        if batch.len() > 1 {
            let together: Vec<&(Fetched, Lease)> = batch.iter().map(|&at| &jobs[at]).collect();
            match self.write_batch(&together).await {
                Ok(summaries) => {
                    self.group_commits.record(batch.len());
                    for (&at, summary) in batch.iter().zip(summaries) {
                        results[at] = Some(Ok(summary));
                    }
                }
                Err(failure) => {
                    self.group_commits.rolled_back();
                    tracing::debug!(
                        jobs = batch.len(), error = %failure.error,
                        "group commit rolled back; writing its jobs one by one"
                    );
                    // The job that caused it has its outcome; the others are written alone.
                    if let Some(culprit) = failure.culprit {
                        results[batch[culprit]] = Some(Err(failure.error));
                    }
                }
            }
        }
        for at in 0..jobs.len() {
            if results[at].is_none() {
                let (fetched, lease) = &jobs[at];
                results[at] = Some(self.write_alone(fetched, Some(lease)).await);
            }
        }
        results.into_iter().flatten().collect()
    }

    /// One transaction for one sync (its rows already carry the job's record id).
    async fn write_alone(
        &self,
        fetched: &Fetched,
        lease: Option<&Lease>,
    ) -> Result<SyncSummary, PipelineError> {
        let mut conn = self.db.conn().await?;
        let summary = conn
            .transaction(async |conn: &mut DbConn| {
                write_tiers(conn, self.aggregation, &self.faults, fetched, lease).await
            })
            .await?;
        Ok(summary)
    }

    async fn write_batch(
        &self,
        jobs: &[&(Fetched, Lease)],
    ) -> Result<Vec<SyncSummary>, BatchFailure> {
        let mut conn = self.db.conn().await.map_err(BatchFailure::from)?;
        conn.transaction(async |conn: &mut DbConn| {
            write_batch_tiers(conn, self.aggregation, &self.faults, jobs).await
        })
        .await
    }
}

/// Why a group commit was rolled back, and which job caused it when one job did (an injected
/// fault or a lost lease: that job's own outcome).
struct BatchFailure {
    culprit: Option<usize>,
    error: PipelineError,
}

impl From<diesel::result::Error> for BatchFailure {
    fn from(e: diesel::result::Error) -> Self {
        PipelineError::from(e).into()
    }
}

impl From<PipelineError> for BatchFailure {
    fn from(error: PipelineError) -> Self {
        Self {
            culprit: None,
            error,
        }
    }
}

impl From<db::DbError> for BatchFailure {
    fn from(e: db::DbError) -> Self {
        PipelineError::Db(e).into()
    }
}

fn blame(at: usize, error: PipelineError) -> BatchFailure {
    BatchFailure {
        culprit: Some(at),
        error,
    }
}

/// [`write_tiers`] for several jobs at once: the same statements in the same order (raw rows
/// and fold, the faults after the raw insert, rollups, the faults before completion, the marks),
/// the raw rows and the fold shared by all jobs.
async fn write_batch_tiers(
    conn: &mut DbConn,
    aggregation: Aggregation,
    faults: &Faults,
    jobs: &[&(Fetched, Lease)],
) -> Result<Vec<SyncSummary>, BatchFailure> {
    let now = db::now_utc();
    db::jobs::commit_without_waiting_for_flush(conn).await?;
    let rows: Vec<_> = jobs
        .iter()
        .flat_map(|(fetched, _)| fetched.rows.iter().cloned())
        .collect();
    let daily = db::writes::append_and_fold_grouped(conn, aggregation, &rows, now).await?;
    drop(rows);
    for at in 0..jobs.len() {
        if faults.trip(FaultPoint::AfterRawInsert) {
            return Err(blame(
                at,
                PipelineError::Injected(FaultPoint::AfterRawInsert),
            ));
        }
    }
    let mut summaries = Vec::with_capacity(jobs.len());
    for (fetched, _) in jobs {
        let request = &fetched.request;
        let (sellpage_rows, currency_conflicts) = if request.level == Level::Campaign {
            roll_up(conn, request, now).await?
        } else {
            (0, 0)
        };
        let key = (
            request.seller_id.clone(),
            request.level.as_str().to_string(),
        );
        summaries.push(SyncSummary {
            entities: fetched.entities,
            raw_rows: fetched.rows.len(),
            daily_rows: daily.get(&key).copied().unwrap_or(0),
            sellpage_rows,
            duration_ms: 0,
            currency_conflicts,
            unmatched_rows: fetched.unmatched_rows,
        });
    }
    for at in 0..jobs.len() {
        if faults.trip(FaultPoint::BeforeCompletion) {
            return Err(blame(
                at,
                PipelineError::Injected(FaultPoint::BeforeCompletion),
            ));
        }
    }
    let marks: Vec<_> = jobs
        .iter()
        .zip(&mut summaries)
        .map(|((fetched, lease), summary)| {
            summary.duration_ms = millis(fetched.started.elapsed());
            (lease, rows_written(summary))
        })
        .collect();
    let held = db::jobs::mark_many_succeeded(conn, &marks, now).await?;
    if let Some(at) = held.iter().position(|held| !held) {
        return Err(blame(at, PipelineError::LeaseLost));
    }
    Ok(summaries)
}

fn rows_written(summary: &SyncSummary) -> RowsWritten {
    RowsWritten {
        entities: summary.entities as i64,
        raw: summary.raw_rows as i64,
        daily: summary.daily_rows as i64,
        sellpage: summary.sellpage_rows as i64,
    }
}

/// A campaign job's sellpage rollup over its dates, after its daily rows are folded: the rows
/// written and the (sellpage, date) pairs left out for mixed currencies (each logged).
async fn roll_up(
    conn: &mut DbConn,
    request: &super::SyncRequest,
    now: chrono::NaiveDateTime,
) -> Result<(usize, usize), PipelineError> {
    let (rows, conflicts) = db::writes::roll_up_sellpages_reporting_conflicts(
        conn,
        &request.seller_id,
        request.date_from,
        request.date_to,
        now,
    )
    .await?;
    for (sellpage, date) in &conflicts {
        tracing::warn!(
            seller.id = %request.seller_id, sellpage.id = %sellpage, date = %date,
            "sellpage not rolled up for the date: its campaigns report in several currencies"
        );
    }
    Ok((rows, conflicts.len()))
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
        db::writes::append_and_fold(conn, aggregation, &fetched.rows, now).await?;
    if faults.trip(FaultPoint::AfterRawInsert) {
        return Err(PipelineError::Injected(FaultPoint::AfterRawInsert));
    }
    let (sellpage_rows, currency_conflicts) = if request.level == Level::Campaign {
        roll_up(conn, request, now).await?
    } else {
        (0, 0)
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
        if !db::jobs::mark_succeeded(conn, lease, rows_written(&summary), now).await? {
            return Err(PipelineError::LeaseLost);
        }
    }
    Ok(summary)
}
