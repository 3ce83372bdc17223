//! The request a sync serves, what it wrote, how it fails, and the readings between fetch and commit.

use std::time::Instant;

use chrono::{NaiveDate, NaiveDateTime};
use serde::Serialize;

use crate::db::models::NewRawStat;
use crate::db::DbError;
use crate::domain::Level;
use crate::providers::ProviderError;

use super::FaultPoint;

/// One job's worth of work: a seller, a level and an inclusive date range (its job id is the job
/// system's: `crate::jobs::SyncJobId`).
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

    /// What may not appear twice in one group commit: two syncs of one seller and level fold into
    /// the same daily rows, which one upsert cannot touch twice, and their counts would merge.
    pub fn group_commit_key(&self) -> (&str, Level) {
        (&self.seller_id, self.level)
    }

    pub(super) fn dates(&self) -> impl Iterator<Item = NaiveDate> {
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
    /// Sellpage dates left out of the rollup: their campaigns span several currencies.
    pub currency_conflicts: usize,
    /// Provider rows for objects that match none of our entities: counted, never written.
    pub unmatched_rows: u64,
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
    /// An ad account of the job is paused (the provider's usage limit) until then: nothing was
    /// asked, so the job waits without counting an attempt.
    #[error("an ad account is paused by the provider's usage limit until {until}")]
    Paused { until: NaiveDateTime },
}

impl PipelineError {
    /// Errors a retry cannot fix: the request itself is wrong, or the provider answered with data
    /// that breaks its contract (it will answer the same again). Such jobs fail at once instead
    /// of using up their attempts.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            PipelineError::InvalidRequest(_)
                | PipelineError::ProviderOutput(_)
                | PipelineError::Provider(
                    ProviderError::TokenExpired { .. }
                        | ProviderError::PermissionDenied { .. }
                        | ProviderError::NotConnected { .. }
                        | ProviderError::Rejected(_)
                        | ProviderError::Malformed(_)
                        | ProviderError::Settings(_)
                )
        )
    }

    /// When the job should wait for the end of an ad account's pause instead of failing an
    /// attempt: the account was paused (nothing asked), or the provider throttled it with a
    /// known pause (it refused to answer; the answer is not at fault).
    pub fn defer_until(&self) -> Option<NaiveDateTime> {
        match self {
            PipelineError::Paused { until }
            | PipelineError::Provider(ProviderError::Throttled {
                until: Some(until), ..
            })
            | PipelineError::Provider(ProviderError::AppThrottled { until, .. }) => Some(*until),
            _ => None,
        }
    }

    /// The earliest a retry may run: the end of the pause the provider announced.
    pub fn retry_not_before(&self) -> Option<NaiveDateTime> {
        match self {
            PipelineError::Provider(ProviderError::Throttled { until, .. }) => *until,
            PipelineError::Provider(ProviderError::AppThrottled { until, .. }) => Some(*until),
            PipelineError::Paused { until } => Some(*until),
            _ => None,
        }
    }

    /// What a seller may read about the failure (a job's `lastError`): fixed text naming the
    /// kind of failure, never a raw database or provider message (those go to the log).
    pub fn public_message(&self) -> &'static str {
        match self {
            PipelineError::Db(e) if e.is_transient() => "the database was unavailable or busy",
            PipelineError::Db(_) => "a database error stopped the sync",
            PipelineError::Provider(
                ProviderError::RateLimited(_)
                | ProviderError::Throttled { .. }
                | ProviderError::AppThrottled { .. },
            ) => "the stats provider limited our requests",
            PipelineError::Provider(ProviderError::PermissionDenied { .. }) => {
                "the ad account's access token lacks a permission on the account; grant it and connect the account again"
            }
            PipelineError::Provider(ProviderError::TokenExpired { .. }) => {
                "the ad account's access token expired or was revoked; connect the account again"
            }
            PipelineError::Provider(ProviderError::NotConnected { .. }) => {
                "the ad account cannot be used: no usable access token, or an account id that is not valid"
            }
            PipelineError::Provider(ProviderError::Rejected(_)) => {
                "the stats provider rejected the request"
            }
            PipelineError::Provider(ProviderError::Malformed(_)) => {
                "the stats provider answered with unexpected data"
            }
            PipelineError::Provider(ProviderError::Request(_)) => {
                "the stats provider request failed"
            }
            PipelineError::Provider(ProviderError::Settings(_)) => {
                "the stats provider is not configured correctly"
            }
            PipelineError::Paused { .. } => {
                "the ad account is paused by the stats provider's usage limit; the job waits"
            }
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
    /// Provider rows that matched none of our entities (left out).
    pub unmatched_rows: u64,
    pub rows: Vec<NewRawStat>,
    pub fetched_at: NaiveDateTime,
    pub(super) started: Instant,
}
