//! What one sync does: find the delivering entities, ask the provider, then in one transaction
//! append raw rows, fold them into daily rows and roll campaigns up to sellpages.
//!
//! [`Pipeline::fetch`] does the slow outbound part holding no database connection;
//! [`Pipeline::commit`] writes everything (and, for a queued job, its completion mark) atomically.

pub mod entities;
mod faults;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, NaiveDateTime};
use serde::Serialize;

use crate::config::Aggregation;
use crate::db::jobs::{Lease, RowsWritten};
use crate::db::models::NewRawStat;
use crate::db::{self, Db, DbConn, DbError};
use crate::domain::{AdAccount, EntityBudget, Level};
use crate::providers::{FetchRequest, ProviderError, ProviderStat, ReportRuns, StatProvider};
use crate::telemetry::{Metrics, ProviderOutcome};

pub use faults::{FaultPoint, Faults};

pub use crate::domain::MAX_RANGE_DAYS;

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
    started: Instant,
}

#[derive(Clone)]
pub struct Pipeline {
    db: Db,
    provider: Arc<dyn StatProvider>,
    aggregation: Aggregation,
    faults: Arc<Faults>,
    /// `meta.account_refresh`: how long an account read holds before the next is due.
    account_refresh: Duration,
    /// Where provider requests are counted (a registry nobody scrapes until `with_metrics`).
    metrics: Metrics,
}

impl Pipeline {
    pub fn new(db: Db, provider: Arc<dyn StatProvider>, aggregation: Aggregation) -> Self {
        Self {
            db,
            provider,
            aggregation,
            faults: Arc::default(),
            account_refresh: Duration::from_secs(24 * 3600),
            metrics: Metrics::new(),
        }
    }

    /// Counts provider requests in the service's metrics.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// One provider request ended: counted by outcome, timed.
    fn count_request<T>(&self, started: Instant, result: &Result<T, ProviderError>) {
        let outcome = result
            .as_ref()
            .map_or_else(ProviderOutcome::of, |_| ProviderOutcome::Ok);
        self.metrics
            .provider_request(self.provider.name(), outcome, started.elapsed());
    }

    /// Sets `meta.account_refresh` (24 hours until then).
    pub fn with_account_refresh(mut self, refresh: Duration) -> Self {
        self.account_refresh = refresh;
        self
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

    /// Looks up the delivering entities and the seller's ad accounts, then asks the provider for
    /// the whole range. The database connection is given back before the provider is called.
    pub async fn fetch(&self, request: &SyncRequest) -> Result<Fetched, PipelineError> {
        self.fetch_resuming(request, ReportRuns::default()).await
    }

    /// [`Pipeline::fetch`] for a queued job: `report_runs` carries what earlier attempts kept
    /// about reports the provider started (Meta's async runs) and where to keep new ones.
    pub async fn fetch_resuming(
        &self,
        request: &SyncRequest,
        report_runs: ReportRuns<'_>,
    ) -> Result<Fetched, PipelineError> {
        let started = Instant::now();
        let days = (request.date_to - request.date_from).num_days() + 1;
        if !(1..=MAX_RANGE_DAYS).contains(&days) {
            return Err(PipelineError::InvalidRequest(format!(
                "a job covers 1 to {MAX_RANGE_DAYS} days, not {days}"
            )));
        }
        let (entities, others, accounts, now) = {
            let mut conn = self.db.conn().await?;
            let entities =
                entities::delivering_entities(&mut conn, &request.seller_id, request.level)
                    .await
                    .map_err(DbError::from)?;
            let others = if self.provider.reports_every_status() {
                entities::other_known_entities(
                    &mut conn,
                    &request.seller_id,
                    request.level,
                    &entities,
                )
                .await
                .map_err(DbError::from)?
            } else {
                Vec::new()
            };
            let accounts = db::connections::active_accounts(&mut conn, &request.seller_id)
                .await
                .map_err(DbError::from)?;
            // Only a paused account needs the database's clock (the one job claims use).
            let now = if accounts.iter().any(|a| a.paused_until.is_some()) {
                Some(
                    db::connections::clock(&mut conn)
                        .await
                        .map_err(DbError::from)?,
                )
            } else {
                None
            };
            (entities, others, accounts, now)
        };
        let (entities, others, accounts) = self.served(request, entities, others, accounts);
        // On the clock job claims use, so a job deferred to `until` is not claimed early.
        if let Some(until) = now.and_then(|now| {
            accounts
                .iter()
                .filter_map(|a| a.paused_until)
                .filter(|until| *until > now)
                .max()
        }) {
            return Err(PipelineError::Paused { until });
        }
        let (entities, accounts) = self.read_due_accounts(request, entities, accounts).await?;
        // Entities of an account the read found inactive are left out with it.
        let others: Vec<EntityBudget> = others
            .into_iter()
            .filter(|e| accounts.iter().any(|a| a.connection_id == e.connection_id))
            .collect();
        let (stats, unmatched_rows) = if entities.is_empty() && others.is_empty() {
            (Vec::new(), 0)
        } else {
            let asked = FetchRequest {
                seller_id: &request.seller_id,
                level: request.level,
                date_from: request.date_from,
                date_to: request.date_to,
                entities: &entities,
                others: &others,
                accounts: &accounts,
                report_runs,
            };
            let asked_at = Instant::now();
            let readings = self.provider.fetch_readings(&asked).await;
            self.count_request(asked_at, &readings);
            match readings {
                Ok(readings) => {
                    self.record_pauses(&readings.pauses).await;
                    (readings.stats, readings.unmatched_rows)
                }
                Err(e) => return Err(self.provider_failed(e).await),
            }
        };
        check_readings(request, &entities, &others, &stats)?;
        let fetched_at = db::now_utc();
        let provider = self.provider.name().to_string();
        let rows = stats
            .into_iter()
            .map(|s| NewRawStat {
                seller_id: request.seller_id.clone(),
                level: request.level.as_str().to_string(),
                entity_id: s.entity_id,
                stat_date: s.date,
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
                // The run's record, known once it writes (see `write`).
                job_record_id: None,
                fetched_at,
            })
            .collect();
        Ok(Fetched {
            request: request.clone(),
            entities: entities.len(),
            unmatched_rows,
            rows,
            fetched_at,
            started,
        })
    }

    /// The entities the provider serves and the accounts they run under; the others are left
    /// out with one warning per reason. Of the non-delivering `others`, those the provider does
    /// not serve are left out silently (a paused campaign of a closed account is no news).
    fn served(
        &self,
        request: &SyncRequest,
        entities: Vec<EntityBudget>,
        others: Vec<EntityBudget>,
        accounts: Vec<AdAccount>,
    ) -> (Vec<EntityBudget>, Vec<EntityBudget>, Vec<AdAccount>) {
        let by_id: HashMap<&str, &AdAccount> = accounts
            .iter()
            .map(|a| (a.connection_id.as_str(), a))
            .collect();
        let mut skipped: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        let mut served = Vec::with_capacity(entities.len());
        let mut used = HashSet::new();
        for e in entities {
            let reason = match by_id.get(e.connection_id.as_str()) {
                None => Some("its connection is not active"),
                Some(account) => self.provider.skip_reason(&e, account),
            };
            match reason {
                Some(reason) => skipped.entry(reason).or_default().push(e.entity_id),
                None => {
                    used.insert(e.connection_id.clone());
                    served.push(e);
                }
            }
        }
        for (reason, ids) in skipped {
            tracing::warn!(
                seller.id = %request.seller_id, level = %request.level, provider = self.provider.name(),
                skipped = ids.len(), entities = %ids.join(","), "entities left out of the sync: {reason}"
            );
        }
        let others: Vec<EntityBudget> = others
            .into_iter()
            .filter(|e| {
                by_id
                    .get(e.connection_id.as_str())
                    .is_some_and(|account| self.provider.skip_reason(e, account).is_none())
            })
            .collect();
        used.extend(others.iter().map(|e| e.connection_id.clone()));
        let accounts = accounts
            .into_iter()
            .filter(|a| used.contains(&a.connection_id))
            .collect();
        (served, others, accounts)
    }

    /// The provider's name (`ad_stats_raw.provider`, the metrics' `provider` label).
    pub fn provider_name(&self) -> &'static str {
        self.provider.name()
    }

    /// Reads the accounts whose read is due (`account_read_due_at`) before their insights: their
    /// zone and currency are stored, and an account that is not active makes its connection
    /// `REVOKED` and its entities are left out of this job. A failed read fails the job as a
    /// failed insights request would, and the read is due again at once.
    async fn read_due_accounts(
        &self,
        request: &SyncRequest,
        mut entities: Vec<EntityBudget>,
        mut accounts: Vec<AdAccount>,
    ) -> Result<(Vec<EntityBudget>, Vec<AdAccount>), PipelineError> {
        let now = db::now_utc();
        let due: Vec<usize> = (0..accounts.len())
            .filter(|i| accounts[*i].account_read_due_at.is_some_and(|at| at <= now))
            .collect();
        if due.is_empty() {
            return Ok((entities, accounts));
        }
        let next = now
            + chrono::Duration::from_std(self.account_refresh).unwrap_or(chrono::Duration::days(1));
        let mut revoked = HashSet::new();
        for i in due {
            let account = &mut accounts[i];
            let claimed = {
                let mut conn = self.db.conn().await?;
                db::connections::claim_account_read(&mut conn, &account.connection_id, now, next)
                    .await
                    .map_err(DbError::from)?
            };
            if !claimed {
                continue;
            }
            let asked_at = Instant::now();
            let info = self.provider.read_account(account).await;
            // `Ok(None)`: the provider had nothing to ask (the mock), so no request to count.
            if !matches!(info, Ok(None)) {
                self.count_request(asked_at, &info);
            }
            let info = match info {
                Ok(Some(info)) => info,
                Ok(None) => continue,
                Err(e) => {
                    let again = async {
                        let mut conn = self.db.conn().await?;
                        db::connections::schedule_account_read(
                            &mut conn,
                            &account.connection_id,
                            now,
                        )
                        .await?;
                        Ok::<_, DbError>(())
                    }
                    .await;
                    if let Err(db_error) = again {
                        tracing::error!(error = %db_error, "could not schedule the account read again");
                    }
                    return Err(self.provider_failed(e).await);
                }
            };
            let read = {
                let mut conn = self.db.conn().await?;
                db::connections::record_account_read(
                    &mut conn,
                    &account.connection_id,
                    &info.timezone,
                    &info.currency,
                    info.inactive_reason.as_deref(),
                    next,
                )
                .await
                .map_err(DbError::from)?
            };
            let Some(read) = read else { continue };
            log_account_read(&account.connection_id, &info, &read);
            account.timezone = info.timezone.clone();
            if read.status != db::connections::ACTIVE {
                revoked.insert(account.connection_id.clone());
            }
        }
        if !revoked.is_empty() {
            let before = entities.len();
            entities.retain(|e| !revoked.contains(&e.connection_id));
            accounts.retain(|a| !revoked.contains(&a.connection_id));
            tracing::warn!(
                seller.id = %request.seller_id, level = %request.level,
                skipped = before - entities.len(),
                "entities left out of the sync: their ad account is not active"
            );
        }
        Ok((entities, accounts))
    }

    /// Records what a provider failure says about the connection (a pause, an expired token)
    /// before the job's outcome is recorded: the next jobs must see it. These writes touch only
    /// `ad_connections`, never the stats tables.
    async fn provider_failed(&self, e: ProviderError) -> PipelineError {
        let marked = async {
            let mut conn = self.db.conn().await?;
            match &e {
                ProviderError::Throttled {
                    connection_id,
                    until: Some(until),
                    ..
                } => {
                    db::connections::pause_until(&mut conn, connection_id, *until).await?;
                    tracing::warn!(connection.id = %connection_id, paused_until = %until, "ad account paused by the provider's limits");
                }
                ProviderError::AppThrottled {
                    connection_id,
                    until,
                    ..
                } => {
                    let paused = db::connections::pause_provider_until(
                        &mut conn,
                        crate::providers::meta::META,
                        *until,
                    )
                    .await?;
                    tracing::warn!(connection.id = %connection_id, paused_until = %until, connections = paused, "the provider's limit for the whole app: every connection of the provider paused");
                }
                ProviderError::PermissionDenied {
                    connection_id,
                    sealed_token,
                    detail,
                } => {
                    let reason = format!("permission error: {detail}");
                    let marked = db::connections::mark_revoked(
                        &mut conn,
                        connection_id,
                        sealed_token.expose(),
                        &reason,
                    )
                    .await?;
                    if marked == 1 {
                        tracing::warn!(connection.id = %connection_id, reason = %reason, "the token lacks a permission on the ad account; connection marked REVOKED");
                    } else {
                        tracing::warn!(connection.id = %connection_id, reason = %reason, "the token lacks a permission, but the connection has a new token or is no longer ACTIVE; status left as it is");
                    }
                }
                ProviderError::TokenExpired {
                    connection_id,
                    sealed_token,
                    ..
                } => {
                    let marked = db::connections::mark_expired(
                        &mut conn,
                        connection_id,
                        sealed_token.expose(),
                    )
                    .await?;
                    if marked == 1 {
                        tracing::warn!(connection.id = %connection_id, "access token expired or revoked; connection marked EXPIRED");
                    } else {
                        tracing::warn!(connection.id = %connection_id, "access token expired or revoked, but the connection has a new token or is no longer ACTIVE; status left as it is");
                    }
                }
                _ => {}
            }
            Ok::<_, DbError>(())
        }
        .await;
        if let Err(db_error) = marked {
            tracing::error!(error = %db_error, "could not record the provider's verdict on a connection");
        }
        PipelineError::Provider(e)
    }

    /// Records the pauses a complete answer asked for (usage near the limit on its last page):
    /// the data is kept, the account's next jobs wait. A failure to record is logged only; the
    /// next answer's usage headers will say the same.
    async fn record_pauses(&self, pauses: &[crate::providers::AccountPause]) {
        if pauses.is_empty() {
            return;
        }
        let recorded = async {
            let mut conn = self.db.conn().await?;
            for p in pauses {
                db::connections::pause_until(&mut conn, &p.connection_id, p.until).await?;
                tracing::warn!(connection.id = %p.connection_id, paused_until = %p.until, "ad account near the provider's usage limit; its next jobs wait");
            }
            Ok::<_, DbError>(())
        }
        .await;
        if let Err(db_error) = recorded {
            tracing::error!(error = %db_error, "could not record an ad account's pause");
        }
    }

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

/// One line per account read: the zone and currency at info, a change of zone or a status
/// change at warn (a day's numbers move to another date; syncs stop or resume).
pub fn log_account_read(
    connection_id: &str,
    info: &crate::providers::AccountInfo,
    read: &db::connections::AccountRead,
) {
    if read.old_timezone != info.timezone {
        tracing::warn!(
            connection.id = %connection_id, old_timezone = %read.old_timezone,
            timezone = %info.timezone, "ad account's time zone changed; the provider's zone replaces ours"
        );
    }
    if read.old_currency != info.currency {
        tracing::warn!(
            connection.id = %connection_id, old_currency = %read.old_currency,
            currency = %info.currency, "ad account's currency changed"
        );
    }
    if read.old_status != read.status {
        tracing::warn!(
            connection.id = %connection_id, old_status = %read.old_status, status = %read.status,
            reason = info.inactive_reason.as_deref().unwrap_or("account active"),
            "connection status changed by the ad account's status"
        );
    }
    tracing::info!(
        connection.id = %connection_id, timezone = %info.timezone, currency = %info.currency,
        status = %read.status, "ad account read"
    );
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

/// The provider must answer once for every delivering entity on every day of the range, at most
/// once for each of the `others`, and for nothing else.
fn check_readings(
    request: &SyncRequest,
    entities: &[EntityBudget],
    others: &[EntityBudget],
    stats: &[ProviderStat],
) -> Result<(), PipelineError> {
    let asked: HashSet<&str> = entities.iter().map(|e| e.entity_id.as_str()).collect();
    let optional: HashSet<&str> = others.iter().map(|e| e.entity_id.as_str()).collect();
    let mut seen = HashSet::new();
    let mut seen_optional = 0;
    for s in stats {
        if optional.contains(s.entity_id.as_str()) {
            seen_optional += 1;
        } else if !asked.contains(s.entity_id.as_str()) {
            return Err(PipelineError::ProviderOutput(format!(
                "reading for unknown entity {}",
                s.entity_id
            )));
        }
        if s.date < request.date_from || s.date > request.date_to {
            return Err(PipelineError::ProviderOutput(format!(
                "reading for {}, outside the range asked for",
                s.date
            )));
        }
        if !seen.insert((s.date, s.entity_id.as_str())) {
            return Err(PipelineError::ProviderOutput(format!(
                "two readings for entity {} on {}",
                s.entity_id, s.date
            )));
        }
    }
    let days = request.dates().count();
    if seen.len() - seen_optional != asked.len() * days {
        return Err(PipelineError::ProviderOutput(format!(
            "{} readings for {} entities over {days} day(s)",
            seen.len(),
            asked.len()
        )));
    }
    Ok(())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
