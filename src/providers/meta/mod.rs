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

use super::{FetchRequest, ProviderError, ProviderStat, StatProvider};
use crate::config::{MetaSettings, Secret};
use crate::crypto::TokenSealer;
use crate::domain::{AdAccount, EntityBudget, Metrics};
use client::CallError;

/// `ad_connections.provider` of the connections this provider serves.
pub const META: &str = "META";

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
            .map_err(|e| ProviderError::Request(e.to_string()))?;
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("ads-stats/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProviderError::Request(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            base_url: settings.base_url.trim().trim_end_matches('/').to_string(),
            api_version: settings.api_version.trim().to_string(),
            page_size: settings.page_size,
            usage_threshold: settings.usage_threshold,
            sealer: key.as_ref().map(TokenSealer::new),
        })
    }

    fn token(&self, account: &AdAccount) -> Result<Secret, ProviderError> {
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
        sealer
            .open(&account.connection_id, sealed)
            .map_err(|e| not_connected(&e.to_string()))
    }

    fn first_page(
        &self,
        request: &FetchRequest<'_>,
        account: &AdAccount,
    ) -> Result<Url, ProviderError> {
        let id = account.external_account_id.trim();
        let id = id.strip_prefix("act_").unwrap_or(id);
        let path = format!("{}/{}/act_{id}/insights", self.base_url, self.api_version);
        let time_range = serde_json::json!({
            "since": request.date_from.format("%Y-%m-%d").to_string(),
            "until": request.date_to.format("%Y-%m-%d").to_string(),
        });
        Url::parse_with_params(
            &path,
            [
                ("level", request.level.as_str().to_ascii_lowercase()),
                ("time_range", time_range.to_string()),
                ("time_increment", "1".to_string()),
                ("fields", mapping::fields(request.level)),
                ("limit", self.page_size.to_string()),
            ],
        )
        .map_err(|e| ProviderError::Request(format!("insights URL: {e}")))
    }

    /// The readings of one account's entities: Meta's row where there is one, zeros otherwise.
    async fn fetch_account(
        &self,
        request: &FetchRequest<'_>,
        account: &AdAccount,
        entities: &[&EntityBudget],
    ) -> Result<HashMap<(NaiveDate, String), Metrics>, ProviderError> {
        let token = self.token(account)?;
        let url = self.first_page(request, account)?;
        let rows = client::insights(
            &self.http,
            &self.base_url,
            url,
            &token,
            self.usage_threshold,
        )
        .await
        .map_err(|e| call_error(account, e))?;
        // Meta's id → ours. Rows for campaigns we do not track (or no longer deliver) are skipped.
        let ours: HashMap<&str, &str> = entities
            .iter()
            .filter_map(|e| Some((e.external_id.as_deref()?, e.entity_id.as_str())))
            .collect();
        let mut readings = HashMap::new();
        for row in rows {
            let Some(entity_id) = row
                .entity_external_id(request.level)
                .and_then(|x| ours.get(x))
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
        Ok(readings)
    }
}

fn call_error(account: &AdAccount, e: CallError) -> ProviderError {
    let connection_id = account.connection_id.clone();
    match e {
        CallError::Transient(detail) => ProviderError::Request(detail),
        CallError::Throttled { pause, detail } => ProviderError::Throttled {
            connection_id,
            until: pause
                .map(|p| crate::db::now_utc() + chrono::Duration::from_std(p).unwrap_or_default()),
            detail,
        },
        CallError::TokenInvalid(detail) => ProviderError::TokenExpired {
            connection_id,
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
        let mut readings = HashMap::new();
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
            readings.extend(self.fetch_account(request, account, &entities).await?);
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
        Ok(stats)
    }
}
