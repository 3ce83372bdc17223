//! What one sync does: find the delivering entities, ask the provider, then in one transaction
//! append raw rows, fold them into daily rows and roll campaigns up to sellpages.
//!
//! [`Pipeline::fetch`] does the slow outbound part holding no database connection;
//! [`Pipeline::commit`] writes everything (and, for a queued job, its completion mark) atomically.

pub mod entities;
mod faults;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, NaiveDateTime};
use serde::Serialize;

use crate::config::Aggregation;
use crate::db::jobs::{Lease, RowsWritten};
use crate::db::models::NewRawStat;
use crate::db::{self, Db, DbConn, DbError};
use crate::domain::Level;
use crate::providers::{ProviderError, StatProvider};

pub use faults::{FaultPoint, Faults};

/// The most days one job may cover (a quarter); longer ranges are split by the caller.
pub const MAX_RANGE_DAYS: i64 = 93;

/// One job's worth of work: a seller, a level and an inclusive date range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub seller_id: String,
    pub level: Level,
    pub date_from: NaiveDate,
    pub date_to: NaiveDate,
}

impl SyncRequest {
    pub fn one_day(seller_id: impl Into<String>, level: Level, date: NaiveDate) -> Self {
        Self {
            seller_id: seller_id.into(),
            level,
            date_from: date,
            date_to: date,
        }
    }

    /// `sync__{sellerId}__{dateFrom}__{dateTo}__{level}`, the id the replaced system used.
    pub fn job_id(&self) -> String {
        format!(
            "sync__{}__{}__{}__{}",
            self.seller_id,
            self.date_from.format("%Y-%m-%d"),
            self.date_to.format("%Y-%m-%d"),
            self.level
        )
    }

    fn dates(&self) -> impl Iterator<Item = NaiveDate> {
        let to = self.date_to;
        self.date_from.iter_days().take_while(move |d| *d <= to)
    }
}

/// What a sync wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SyncSummary {
    pub entities: usize,
    pub raw_rows: usize,
    pub daily_rows: usize,
    pub sellpage_rows: usize,
    pub duration_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("provider answered wrongly: {0}")]
    ProviderOutput(String),
    #[error("invalid sync request: {0}")]
    InvalidRequest(String),
    #[error("the job was taken back by another process before it could finish")]
    LeaseLost,
    #[error("injected fault at {0:?}")]
    Injected(FaultPoint),
}

impl PipelineError {
    /// Errors a retry cannot fix: the request itself is wrong, or the provider answered with data
    /// that breaks its contract (it will answer the same again). Such jobs fail at once instead
    /// of using up their attempts.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            PipelineError::InvalidRequest(_) | PipelineError::ProviderOutput(_)
        )
    }

    /// What a seller may read about the failure (a job's `lastError`): fixed text naming the
    /// kind of failure, never a raw database or provider message (those go to the log).
    pub fn public_message(&self) -> &'static str {
        match self {
            PipelineError::Db(e) if e.is_transient() => "the database was unavailable or busy",
            PipelineError::Db(_) => "a database error stopped the sync",
            PipelineError::Provider(ProviderError::RateLimited(_)) => {
                "the stats provider limited our requests"
            }
            PipelineError::Provider(_) => "the stats provider request failed",
            PipelineError::ProviderOutput(_) => "the stats provider answered with unexpected data",
            PipelineError::InvalidRequest(_) => "the sync request is not valid",
            PipelineError::LeaseLost => "the job was taken back by another worker",
            PipelineError::Injected(_) => "an injected test fault stopped the sync",
        }
    }
}

impl From<diesel::result::Error> for PipelineError {
    fn from(e: diesel::result::Error) -> Self {
        PipelineError::Db(DbError::from(e))
    }
}

/// Provider readings ready to be written.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub request: SyncRequest,
    pub entities: usize,
    pub rows: Vec<NewRawStat>,
    pub fetched_at: NaiveDateTime,
    started: Instant,
}

#[derive(Clone)]
pub struct Pipeline {
    db: Db,
    provider: Arc<dyn StatProvider>,
    aggregation: Aggregation,
    faults: Arc<Faults>,
}

impl Pipeline {
    pub fn new(db: Db, provider: Arc<dyn StatProvider>, aggregation: Aggregation) -> Self {
        Self {
            db,
            provider,
            aggregation,
            faults: Arc::default(),
        }
    }

    /// Test hook: failures to inject inside the write transaction.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Fetches and writes in one go, outside the job queue (the `sync` command).
    pub async fn run(&self, request: &SyncRequest) -> Result<SyncSummary, PipelineError> {
        let fetched = self.fetch(request).await?;
        self.commit(fetched, None).await
    }

    /// Looks up the delivering entities, then asks the provider for each day. The database
    /// connection is given back before the provider is called.
    pub async fn fetch(&self, request: &SyncRequest) -> Result<Fetched, PipelineError> {
        let started = Instant::now();
        let days = (request.date_to - request.date_from).num_days() + 1;
        if !(1..=MAX_RANGE_DAYS).contains(&days) {
            return Err(PipelineError::InvalidRequest(format!(
                "a job covers 1 to {MAX_RANGE_DAYS} days, not {days}"
            )));
        }
        let entities = {
            let mut conn = self.db.conn().await?;
            entities::delivering_entities(&mut conn, &request.seller_id, request.level)
                .await
                .map_err(DbError::from)?
        };
        let job_id = request.job_id();
        let mut readings = Vec::new();
        for date in request.dates() {
            if entities.is_empty() {
                break;
            }
            let stats = self
                .provider
                .fetch(&request.seller_id, request.level, &entities, date)
                .await?;
            check_one_reading_each(&entities, &stats)?;
            readings.push((date, stats));
        }
        let fetched_at = db::now_utc();
        let rows = readings
            .into_iter()
            .flat_map(|(date, stats)| {
                let job_id = job_id.clone();
                let seller_id = request.seller_id.clone();
                let provider = self.provider.name().to_string();
                stats.into_iter().map(move |s| NewRawStat {
                    seller_id: seller_id.clone(),
                    level: request.level.as_str().to_string(),
                    entity_id: s.entity_id,
                    stat_date: date,
                    spend_cents: s.metrics.spend_cents,
                    impressions: s.metrics.impressions,
                    clicks: s.metrics.clicks,
                    content_views: s.metrics.content_views,
                    add_to_cart: s.metrics.add_to_cart,
                    checkouts: s.metrics.checkouts,
                    purchases: s.metrics.purchases,
                    revenue_cents: s.metrics.revenue_cents,
                    cpm: s.metrics.cpm,
                    ctr: s.metrics.ctr,
                    roas: s.metrics.roas,
                    provider: provider.clone(),
                    job_id: Some(job_id.clone()),
                    fetched_at,
                })
            })
            .collect();
        Ok(Fetched {
            request: request.clone(),
            entities: entities.len(),
            rows,
            fetched_at,
            started,
        })
    }

    /// Writes the three tiers in one transaction; with a lease, the job's SUCCEEDED mark commits
    /// in the same transaction, so the stats are counted exactly when the job is marked done.
    pub async fn commit(
        &self,
        fetched: Fetched,
        lease: Option<&Lease>,
    ) -> Result<SyncSummary, PipelineError> {
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
    let raw_rows = db::stats::insert_raw(conn, &fetched.rows).await?;
    if faults.trip(FaultPoint::AfterRawInsert) {
        return Err(PipelineError::Injected(FaultPoint::AfterRawInsert));
    }
    let daily_rows = if raw_rows > 0 {
        db::stats::fold_into_daily(
            conn,
            aggregation,
            &request.job_id(),
            fetched.fetched_at,
            now,
        )
        .await?
    } else {
        0
    };
    let sellpage_rows = if request.level == Level::Campaign {
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

/// The provider must answer once for every entity asked about, and for nothing else.
fn check_one_reading_each(
    entities: &[crate::domain::EntityBudget],
    stats: &[crate::providers::ProviderStat],
) -> Result<(), PipelineError> {
    let asked: HashSet<&str> = entities.iter().map(|e| e.entity_id.as_str()).collect();
    let mut seen = HashSet::new();
    for s in stats {
        if !asked.contains(s.entity_id.as_str()) {
            return Err(PipelineError::ProviderOutput(format!(
                "reading for unknown entity {}",
                s.entity_id
            )));
        }
        if !seen.insert(s.entity_id.as_str()) {
            return Err(PipelineError::ProviderOutput(format!(
                "two readings for entity {}",
                s.entity_id
            )));
        }
    }
    if seen.len() != asked.len() {
        return Err(PipelineError::ProviderOutput(format!(
            "{} readings for {} entities",
            seen.len(),
            asked.len()
        )));
    }
    Ok(())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
