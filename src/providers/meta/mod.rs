//! Meta's Graph API insights as a [`StatProvider`]: one `level=ad` query chain per ad account for a
//! job's whole range (`time_range`, `time_increment=1`), each ad's row summed into the job's level
//! (campaign, ad set or ad) matched by `external_id`, and a reading of zeros for a delivering
//! entity Meta has no row for on a day (no delivery that day). The chain is synchronous, or an
//! async report run for long ranges and large accounts (`report_run.rs`).
//!
//! Why ad level: Meta returns no conversion metrics for a campaign (or ad set) whose parts use
//! different attribution settings, so campaign-level requests would show 0 purchases there; ad
//! rows always carry them, and every metric we keep adds up.

pub mod account;
pub mod check;
mod client;
pub mod limits;
pub mod mapping;
pub mod report_run;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::NaiveDate;
use reqwest::Url;

use super::{
    AccountInfo, AccountPause, FetchRequest, ProviderError, ProviderStat, Readings, StatProvider,
};
use crate::config::{ActionReportTime, ActionTypes, MetaSettings, Secret};
use crate::crypto::TokenSealer;
use crate::domain::{AdAccount, EntityBudget, Metrics};
use client::CallError;
use report_run::{Caller, RunBook};

pub use client::{appsecret_proof, APPSECRET_PROOF};

/// `ad_connections.provider` of the connections this provider serves.
pub const META: &str = "META";

/// Every `effective_status` Meta documents for ads (an ad's status includes its campaign's and ad
/// set's: `CAMPAIGN_PAUSED`, `ADSET_PAUSED`). Insights leave deleted and archived objects out
/// unless the filter names them.
pub const EFFECTIVE_STATUSES: [&str; 12] = [
    "ACTIVE",
    "PAUSED",
    "DELETED",
    "PENDING_REVIEW",
    "DISAPPROVED",
    "PREAPPROVED",
    "PENDING_BILLING_INFO",
    "CAMPAIGN_PAUSED",
    "ARCHIVED",
    "ADSET_PAUSED",
    "IN_PROCESS",
    "WITH_ISSUES",
];

pub struct MetaProvider {
    http: reqwest::Client,
    base_url: String,
    api_version: String,
    page_size: u32,
    usage_threshold: f64,
    /// `None` without `meta.token_key`: every sync then fails with a clear error.
    sealer: Option<TokenSealer>,
    /// `None` when `meta.app_secret` is empty: no `appsecret_proof` is sent.
    app_secret: Option<Secret>,
    action_report_time: ActionReportTime,
    action_types: ActionTypes,
    /// `meta.async_after_days`: longer ranges go to an async report run at once.
    async_after_days: u32,
    async_timeout: Duration,
    async_poll_interval: Duration,
}

impl MetaProvider {
    pub fn new(settings: &MetaSettings) -> Result<Self, ProviderError> {
        let key = settings
            .token_key_bytes()
            .map_err(|e| ProviderError::Settings(e.to_string()))?;
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("ads-stats/", env!("CARGO_PKG_VERSION")))
            // A redirect would take the request elsewhere, and whatever answers there would be
            // read as Meta's rows (an empty page becomes zeros): a 3xx is a failed attempt.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ProviderError::Settings(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            base_url: settings.base_url.trim().trim_end_matches('/').to_string(),
            api_version: settings.api_version.trim().to_string(),
            page_size: settings.page_size,
            usage_threshold: settings.usage_threshold,
            sealer: key.as_ref().map(TokenSealer::new),
            app_secret: Some(settings.app_secret.clone()).filter(|s| !s.expose().trim().is_empty()),
            action_report_time: settings.action_report_time,
            action_types: settings.action_types.clone(),
            async_after_days: settings.async_after_days,
            async_timeout: settings.async_timeout,
            async_poll_interval: settings.async_poll_interval,
        })
    }

    /// The `appsecret_proof` for `token` when an app secret is set (see [`appsecret_proof`]);
    /// every Graph request of the connection carries it.
    pub fn proof(&self, token: &Secret) -> Option<String> {
        self.app_secret
            .as_ref()
            .map(|secret| appsecret_proof(token.expose(), secret.expose().trim()))
    }

    /// The plain token, and the sealed one it was opened from.
    fn token(&self, account: &AdAccount) -> Result<(Secret, Secret), ProviderError> {
        let not_connected = |detail: &str| ProviderError::NotConnected {
            connection_id: account.connection_id.clone(),
            detail: detail.to_string(),
        };
        let sealer = self
            .sealer
            .as_ref()
            .ok_or_else(|| not_connected("meta.token_key is not set"))?;
        let sealed = account.access_token_enc.as_deref().ok_or_else(|| {
            not_connected("no access token stored (ads-stats connection set-token)")
        })?;
        let token = sealer
            .open(&account.connection_id, sealed)
            .map_err(|e| not_connected(&e.to_string()))?;
        Ok((token, Secret::new(sealed)))
    }

    fn first_page(
        &self,
        request: &FetchRequest<'_>,
        account: &AdAccount,
    ) -> Result<Url, ProviderError> {
        // The id goes into the URL path: only the shape Meta gives ad accounts, or no request.
        let id = account.external_account_id.as_str();
        crate::domain::check_account_id(id).map_err(|detail| ProviderError::NotConnected {
            connection_id: account.connection_id.clone(),
            detail,
        })?;
        let id = id.strip_prefix("act_").unwrap_or(id);
        let path = format!("{}/{}/act_{id}/insights", self.base_url, self.api_version);
        // Without a status filter Meta leaves deleted and archived ads out, and their real spend
        // would be missing from their campaign's sum: ask for every status.
        let filtering = serde_json::json!([{
            "field": "ad.effective_status",
            "operator": "IN",
            "value": EFFECTIVE_STATUSES,
        }]);
        let time_range = serde_json::json!({
            "since": request.date_from.format("%Y-%m-%d").to_string(),
            "until": request.date_to.format("%Y-%m-%d").to_string(),
        });
        Url::parse_with_params(
            &path,
            [
                ("level", "ad".to_string()),
                ("time_range", time_range.to_string()),
                ("time_increment", "1".to_string()),
                ("fields", mapping::FIELDS.to_string()),
                ("limit", self.page_size.to_string()),
                ("filtering", filtering.to_string()),
                // Each ad set's own attribution setting, as Ads Manager shows it.
                ("use_unified_attribution_setting", "true".to_string()),
                (
                    "action_report_time",
                    self.action_report_time.as_str().to_string(),
                ),
            ],
        )
        .map_err(|e| ProviderError::Request(format!("insights URL: {e}")))
    }

    /// The readings of one account's entities: its ads' rows summed by day and entity of the
    /// job's level (a delivering entity without rows is filled with zeros by the caller), the
    /// number of rows that matched none of our entities, and the pause the last page's usage
    /// asks for.
    async fn fetch_account(
        &self,
        request: &FetchRequest<'_>,
        account: &AdAccount,
        entities: &[&EntityBudget],
        book: &mut RunBook<'_>,
    ) -> Result<AccountReadings, ProviderError> {
        let (token, sealed) = self.token(account)?;
        let url = self.first_page(request, account)?;
        let proof = self.proof(&token);
        let caller = Caller {
            account,
            token: &token,
            sealed: &sealed,
            proof: proof.as_deref(),
        };
        let answer = self.insights(request, &caller, url, book).await?;
        let ours = by_external_id(entities)?;
        let mut sums: HashMap<(NaiveDate, String), Totals> = HashMap::new();
        let mut ads_seen = HashSet::new();
        let mut unmatched = 0;
        for row in answer.rows {
            let malformed =
                |what: String| ProviderError::Malformed(format!("insights row: {what}"));
            let date = crate::domain::parse_day(&row.date_start)
                .map_err(|e| malformed(format!("date_start: {e}")))?;
            if date < request.date_from || date > request.date_to {
                return Err(malformed(format!(
                    "a row for {date}, outside the range asked for"
                )));
            }
            let ad = row
                .ad_id
                .as_deref()
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .ok_or_else(|| malformed("no ad_id in a level=ad row".into()))?;
            if !ads_seen.insert((date, ad.to_string())) {
                return Err(malformed(format!("two rows for ad {ad} on {date}")));
            }
            let field = mapping::id_field(request.level);
            let external = row
                .entity_external_id(request.level)
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .ok_or_else(|| malformed(format!("no {field} in the row of ad {ad}")))?;
            // Rows for objects we do not know are counted, never written.
            let Some(entity_id) = ours.get(external) else {
                unmatched += 1;
                continue;
            };
            let metrics = row
                .metrics(&self.action_types)
                .map_err(|e| malformed(e.to_string()))?;
            sums.entry((date, entity_id.to_string()))
                .or_default()
                .add(&metrics)
                .map_err(|()| malformed(format!("the sums for {entity_id} on {date} overflow")))?;
        }
        if unmatched > 0 {
            tracing::info!(
                connection.id = %account.connection_id, level = %request.level, unmatched_rows = unmatched,
                "insights rows for ads whose {} is in no external_id were left out", mapping::id_field(request.level)
            );
        }
        Ok(AccountReadings {
            readings: sums.into_iter().map(|(k, t)| (k, t.metrics())).collect(),
            unmatched,
            pause: answer.pause.map(|p| AccountPause {
                connection_id: account.connection_id.clone(),
                until: pause_end(p),
            }),
        })
    }
}

impl MetaProvider {
    /// Every row of the account's query: synchronously, or through an async report run when the
    /// job kept one for the account, when the range is longer than `meta.async_after_days`, or
    /// when Meta refuses the synchronous query as too large.
    async fn insights(
        &self,
        request: &FetchRequest<'_>,
        caller: &Caller<'_>,
        url: Url,
        book: &mut RunBook<'_>,
    ) -> Result<client::Insights, ProviderError> {
        // Days in the inclusive range.
        let days = (request.date_to - request.date_from).num_days() + 1;
        let kept = book.has(&caller.account.connection_id);
        if kept || days > i64::from(self.async_after_days) {
            return self.async_insights(caller, &url, book).await;
        }
        match client::insights(
            &self.http,
            &self.base_url,
            url.clone(),
            caller.token,
            caller.proof,
            self.usage_threshold,
        )
        .await
        {
            Err(CallError::TooMuchData(detail)) => {
                tracing::info!(
                    connection.id = %caller.account.connection_id, days, detail = %detail,
                    "Meta refused the synchronous insights query as too large; asking for an async report run"
                );
                self.async_insights(caller, &url, book).await
            }
            answer => answer.map_err(|e| caller.error(e)),
        }
    }
}

/// What one account's insights gave.
struct AccountReadings {
    readings: HashMap<(NaiveDate, String), Metrics>,
    unmatched: u64,
    pause: Option<AccountPause>,
}

/// The additive metrics of an entity and day while its ads' rows are summed; the ratios are
/// computed once from the totals (a sum of ratios means nothing).
#[derive(Debug, Default, Clone, Copy)]
struct Totals([i64; 8]);

impl Totals {
    fn add(&mut self, m: &Metrics) -> Result<(), ()> {
        let add = [
            m.spend_cents,
            m.impressions,
            m.clicks,
            m.content_views,
            m.add_to_cart,
            m.checkouts,
            m.purchases,
            m.revenue_cents,
        ];
        for (sum, x) in self.0.iter_mut().zip(add) {
            *sum = sum.checked_add(x).ok_or(())?;
        }
        Ok(())
    }

    fn metrics(self) -> Metrics {
        let [spend, impressions, clicks, views, carts, checkouts, purchases, revenue] = self.0;
        Metrics::from_totals(
            spend,
            impressions,
            clicks,
            views,
            carts,
            checkouts,
            purchases,
            revenue,
        )
    }
}

/// Meta's id (trimmed, as [`StatProvider::skip_reason`] reads it) → ours. Two of our entities
/// with one Meta id would both get its numbers or one the zeros: an error naming the id.
fn by_external_id<'a>(
    entities: &[&'a EntityBudget],
) -> Result<HashMap<&'a str, &'a str>, ProviderError> {
    let mut ours = HashMap::new();
    for e in entities {
        let Some(external) = e.external_id.as_deref().map(str::trim) else {
            continue;
        };
        if let Some(other) = ours.insert(external, e.entity_id.as_str()) {
            return Err(ProviderError::Malformed(format!(
                "external_id {external} is recorded on both {other} and {}",
                e.entity_id
            )));
        }
    }
    Ok(ours)
}

fn pause_end(p: Duration) -> chrono::NaiveDateTime {
    crate::domain::now_utc() + chrono::Duration::from_std(p).unwrap_or(chrono::Duration::days(1))
}

fn call_error(account: &AdAccount, sealed: &Secret, e: CallError) -> ProviderError {
    let connection_id = account.connection_id.clone();
    match e {
        CallError::Transient(detail) => ProviderError::Request(detail),
        CallError::Throttled { pause, detail } => ProviderError::Throttled {
            connection_id,
            until: pause.map(pause_end),
            detail,
        },
        CallError::TokenInvalid(detail) => ProviderError::TokenExpired {
            connection_id,
            sealed_token: sealed.clone(),
            detail,
        },
        CallError::AppThrottled { pause, detail } => ProviderError::AppThrottled {
            connection_id,
            until: pause_end(pause),
            detail,
        },
        CallError::PermissionDenied(detail) => ProviderError::PermissionDenied {
            connection_id,
            sealed_token: sealed.clone(),
            detail,
        },
        // Outside an insights query (an account read) "too much data" is just a refusal.
        CallError::Rejected(detail) | CallError::TooMuchData(detail) => {
            ProviderError::Rejected(detail)
        }
        CallError::Malformed(detail) => ProviderError::Malformed(detail),
    }
}

#[async_trait::async_trait]
impl StatProvider for MetaProvider {
    fn name(&self) -> &'static str {
        "meta"
    }

    /// Only META connections, and only entities whose Meta id is recorded: matching by our own id
    /// could only ever find nothing, and would write zeros that look like real readings.
    fn skip_reason(&self, entity: &EntityBudget, account: &AdAccount) -> Option<&'static str> {
        if !account.provider.eq_ignore_ascii_case(META) {
            Some("its connection is not a META connection")
        } else if entity
            .external_id
            .as_deref()
            .is_none_or(|x| x.trim().is_empty())
        {
            Some("no external_id (Meta id) is recorded for it")
        } else {
            None
        }
    }

    async fn fetch(&self, request: &FetchRequest<'_>) -> Result<Vec<ProviderStat>, ProviderError> {
        Ok(self.fetch_readings(request).await?.stats)
    }

    async fn fetch_readings(&self, request: &FetchRequest<'_>) -> Result<Readings, ProviderError> {
        let mut readings = HashMap::new();
        let mut pauses = Vec::new();
        let mut unmatched = 0;
        let mut book = RunBook::new(request.report_runs.known, request.report_runs.keeper);
        // Accounts one after the other: they share the app's rate limit.
        for account in request.accounts {
            let entities: Vec<&EntityBudget> = request
                .entities
                .iter()
                .chain(request.others)
                .filter(|e| e.connection_id == account.connection_id)
                .collect();
            if entities.is_empty() {
                continue;
            }
            let answer = self
                .fetch_account(request, account, &entities, &mut book)
                .await?;
            readings.extend(answer.readings);
            pauses.extend(answer.pause);
            unmatched += answer.unmatched;
        }
        // Day by day in the order asked, as the mock answers; no row for a delivering entity
        // means no delivery: zeros. Other entities (paused, archived… in our catalogue) get a
        // reading only where Meta has a row.
        let mut stats = Vec::new();
        for date in request.dates() {
            for e in request.entities {
                let metrics = readings
                    .remove(&(date, e.entity_id.clone()))
                    .unwrap_or_else(|| Metrics::from_totals(0, 0, 0, 0, 0, 0, 0, 0));
                stats.push(ProviderStat {
                    date,
                    entity_id: e.entity_id.clone(),
                    metrics,
                });
            }
            for e in request.others {
                if let Some(metrics) = readings.remove(&(date, e.entity_id.clone())) {
                    stats.push(ProviderStat {
                        date,
                        entity_id: e.entity_id.clone(),
                        metrics,
                    });
                }
            }
        }
        Ok(Readings {
            stats,
            pauses,
            unmatched_rows: unmatched,
        })
    }

    /// Meta reports what an ad really did whatever its status in our catalogue: yesterday's
    /// spend of a campaign paused this morning is real spend.
    fn reports_every_status(&self) -> bool {
        true
    }

    /// `GET act_{id}` (see `account.rs`); connections of other providers have nothing to read.
    async fn read_account(
        &self,
        account: &AdAccount,
    ) -> Result<Option<AccountInfo>, ProviderError> {
        if !account.provider.eq_ignore_ascii_case(META) {
            return Ok(None);
        }
        self.read_account_info(account).await.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(id: &str, external: &str) -> EntityBudget {
        EntityBudget {
            entity_id: id.into(),
            daily_budget_cents: 0,
            connection_id: "c".into(),
            external_id: Some(external.into()),
        }
    }

    #[test]
    fn external_ids_are_trimmed_and_must_be_unique() {
        let (a, b) = (entity("cmp-1", " 120001 "), entity("cmp-2", "120002"));
        let map = by_external_id(&[&a, &b]).unwrap();
        assert_eq!(map.get("120001"), Some(&"cmp-1"));
        let c = entity("cmp-3", "120001\t");
        let err = by_external_id(&[&a, &b, &c]).unwrap_err().to_string();
        assert!(
            err.contains("120001") && err.contains("cmp-1") && err.contains("cmp-3"),
            "{err}"
        );
    }
}
