//! Meta's Graph API insights as a [`StatProvider`]: one query per ad account and level for a job's
//! whole range (`time_range`, `time_increment=1`), rows matched to our entities by `external_id`,
//! and a reading of zeros for an entity Meta has no row for on a day (no delivery that day).

mod client;
pub mod limits;
pub mod mapping;

use std::collections::HashMap;
use std::time::Duration;

use chrono::NaiveDate;
use reqwest::Url;

use super::{AccountPause, FetchRequest, ProviderError, ProviderStat, Readings, StatProvider};
use crate::config::{MetaSettings, Secret};
use crate::crypto::TokenSealer;
use crate::domain::{AdAccount, EntityBudget, Metrics};
use client::CallError;

/// `ad_connections.provider` of the connections this provider serves.
pub const META: &str = "META";

/// Every `effective_status` Meta documents for campaigns, ad sets and ads. Insights leave deleted
/// and archived objects out unless the filter names them.
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
        })
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
        // Without a status filter Meta leaves deleted and archived objects out, and their real
        // spend would be overwritten by the zeros of "no row": ask for every status.
        let level = request.level.as_str().to_ascii_lowercase();
        let filtering = serde_json::json!([{
            "field": format!("{level}.effective_status"),
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
                ("level", level),
                ("time_range", time_range.to_string()),
                ("time_increment", "1".to_string()),
                ("fields", mapping::fields(request.level)),
                ("limit", self.page_size.to_string()),
                ("filtering", filtering.to_string()),
            ],
        )
        .map_err(|e| ProviderError::Request(format!("insights URL: {e}")))
    }

    /// The readings of one account's entities (Meta's rows; a missing one is filled with zeros
    /// by the caller), and the pause the last page's usage asks for.
    async fn fetch_account(
        &self,
        request: &FetchRequest<'_>,
        account: &AdAccount,
        entities: &[&EntityBudget],
    ) -> Result<(HashMap<(NaiveDate, String), Metrics>, Option<AccountPause>), ProviderError> {
        let (token, sealed) = self.token(account)?;
        let url = self.first_page(request, account)?;
        let answer = client::insights(
            &self.http,
            &self.base_url,
            url,
            &token,
            self.usage_threshold,
        )
        .await
        .map_err(|e| call_error(account, &sealed, e))?;
        let ours = by_external_id(entities)?;
        let mut readings = HashMap::new();
        for row in answer.rows {
            // Rows for objects we do not track are skipped.
            let Some(entity_id) = row
                .entity_external_id(request.level)
                .and_then(|x| ours.get(x.trim()))
            else {
                continue;
            };
            let date = crate::domain::parse_day(&row.date_start)
                .map_err(|e| ProviderError::Malformed(format!("date_start: {e}")))?;
            if date < request.date_from || date > request.date_to {
                return Err(ProviderError::Malformed(format!(
                    "a row for {date}, outside the range asked for"
                )));
            }
            let metrics = row
                .metrics()
                .map_err(|e| ProviderError::Malformed(format!("insights row: {e}")))?;
            if readings
                .insert((date, entity_id.to_string()), metrics)
                .is_some()
            {
                return Err(ProviderError::Malformed(format!(
                    "two rows for one entity on {date}"
                )));
            }
        }
        let pause = answer.pause.map(|p| AccountPause {
            connection_id: account.connection_id.clone(),
            until: pause_end(p),
        });
        Ok((readings, pause))
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
    crate::db::now_utc() + chrono::Duration::from_std(p).unwrap_or(chrono::Duration::days(1))
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
        CallError::Rejected(detail) => ProviderError::Rejected(detail),
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
        // Accounts one after the other: they share the app's rate limit.
        for account in request.accounts {
            let entities: Vec<&EntityBudget> = request
                .entities
                .iter()
                .filter(|e| e.connection_id == account.connection_id)
                .collect();
            if entities.is_empty() {
                continue;
            }
            let (account_readings, pause) = self.fetch_account(request, account, &entities).await?;
            readings.extend(account_readings);
            pauses.extend(pause);
        }
        // Day by day in the order asked, as the mock answers; no row means no delivery: zeros.
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
        }
        Ok(Readings { stats, pauses })
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
