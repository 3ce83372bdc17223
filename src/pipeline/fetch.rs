//! The outbound half of a sync: the catalogue read, the provider call and its metrics, and the
//! check of what the provider answered.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use crate::db::models::NewRawStat;
use crate::db::{self, DbError};
use crate::domain::{AdAccount, EntityBudget};
use crate::providers::{FetchRequest, ProviderError, ProviderStat, ReportRuns};
use crate::telemetry::ProviderOutcome;

use super::{entities, Fetched, Pipeline, PipelineError, SyncRequest, MAX_RANGE_DAYS};

impl Pipeline {
    /// One provider request ended: counted by outcome, timed.
    pub(super) fn count_request<T>(&self, started: Instant, result: &Result<T, ProviderError>) {
        let outcome = result
            .as_ref()
            .map_or_else(ProviderOutcome::of, |_| ProviderOutcome::Ok);
        self.metrics
            .provider_request(self.provider.name(), outcome, started.elapsed());
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
            let (entities, accounts) = entities::delivering_entities_and_accounts(
                &mut conn,
                &request.seller_id,
                request.level,
            )
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
