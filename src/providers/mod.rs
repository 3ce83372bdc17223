//! Where stats come from. The pipeline only knows [`StatProvider`]; the configured provider is
//! built by [`from_settings`]: the deterministic mock, or Meta's Graph API insights.

pub mod meta;
pub mod mock;
pub(crate) mod spans;

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};

use crate::config::{ProviderKind, Secret, Settings};
use crate::domain::{AdAccount, EntityBudget, Level, Metrics};

pub use meta::MetaProvider;
pub use mock::MockProvider;

/// One provider reading for one entity and day.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderStat {
    pub date: NaiveDate,
    pub entity_id: String,
    pub metrics: Metrics,
}

/// What one job asks a provider: a seller's entities of one level (each with its connection)
/// over an inclusive date range, and the seller's ad accounts.
#[derive(Debug, Clone, Copy)]
pub struct FetchRequest<'a> {
    pub seller_id: &'a str,
    pub level: Level,
    pub date_from: NaiveDate,
    pub date_to: NaiveDate,
    /// The delivering entities: one reading each per day (zeros for no delivery).
    pub entities: &'a [EntityBudget],
    /// Known entities that are not delivering (paused, archived… in our catalogue), given only
    /// to a provider that [`StatProvider::reports_every_status`]: a reading where the provider
    /// has a row, none otherwise. Empty for the others.
    pub others: &'a [EntityBudget],
    pub accounts: &'a [AdAccount],
    /// The job's long-running provider reports (Meta's async report runs) kept across its
    /// attempts, so a retry resumes them instead of starting new ones.
    pub report_runs: ReportRuns<'a>,
}

impl FetchRequest<'_> {
    /// Every day of the range, in order.
    pub fn dates(&self) -> impl Iterator<Item = NaiveDate> {
        let to = self.date_to;
        self.date_from.iter_days().take_while(move |d| *d <= to)
    }
}

/// What a provider keeps between the attempts of one job about reports it started (Meta: the
/// async report run of each ad account): `known` as the previous attempt kept it, and where to
/// keep a new state. The text is the provider's own; the jobs layer stores it as is
/// (`sync_jobs.report_run_id`), so the provider never reaches into the database.
#[derive(Clone, Copy, Default)]
pub struct ReportRuns<'a> {
    pub known: Option<&'a str>,
    /// `None` where nothing outlives the attempt (the `sync` command): a retry starts afresh.
    pub keeper: Option<&'a dyn RunKeeper>,
}

impl std::fmt::Debug for ReportRuns<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportRuns")
            .field("known", &self.known)
            .field("keeper", &self.keeper.is_some())
            .finish()
    }
}

/// Keeps a provider's report state for the job's next attempt (see [`ReportRuns`]).
#[async_trait::async_trait]
pub trait RunKeeper: Send + Sync {
    /// Stores `state` (`None` clears it) before the provider waits on the report. An error
    /// (the job's lease is gone, the database is down) fails the attempt: a report nobody can
    /// find again must not be waited for.
    async fn keep(&self, state: Option<&str>) -> Result<(), String>;
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Network trouble, a timeout or a 5xx: a later attempt may succeed.
    #[error("provider request failed: {0}")]
    Request(String),
    #[error("provider rate limit: {0}")]
    RateLimited(String),
    /// The provider throttles this account (error codes, or usage past `meta.usage_threshold`).
    /// With `until`, the account's jobs pause until then.
    #[error("provider throttled ad account of connection {connection_id}: {detail}")]
    Throttled {
        connection_id: String,
        until: Option<NaiveDateTime>,
        detail: String,
    },
    /// The access token expired or was revoked (Meta code 190): only a new token helps.
    /// `sealed_token` is the stored (sealed) token the request used: the connection is marked
    /// EXPIRED only while it still holds that one (a `set-token` meanwhile wins).
    #[error("access token of connection {connection_id} expired or was revoked: {detail}")]
    TokenExpired {
        connection_id: String,
        sealed_token: Secret,
        detail: String,
    },
    /// The provider's limit for the whole app (Meta code 4): every account of the provider
    /// pauses until `until`, on every instance.
    #[error("provider limit for the whole app (met by connection {connection_id}): {detail}")]
    AppThrottled {
        connection_id: String,
        until: NaiveDateTime,
        detail: String,
    },
    /// The token lacks a permission on the account (Meta code 10, 200–299, 100/33): the
    /// connection is marked REVOKED with the reason while it still holds `sealed_token`.
    #[error("connection {connection_id} lacks a permission on its ad account: {detail}")]
    PermissionDenied {
        connection_id: String,
        sealed_token: Secret,
        detail: String,
    },
    /// The connection cannot be asked at all: no token stored, no key to open it, or a stored
    /// token that does not open. Retrying cannot fix it.
    #[error("connection {connection_id} cannot be used: {detail}")]
    NotConnected {
        connection_id: String,
        detail: String,
    },
    /// The provider refused the request for a reason other than limits or the token (a bad
    /// parameter, no permission on the account): the same request would be refused again.
    #[error("provider rejected the request: {0}")]
    Rejected(String),
    /// The provider answered with something that breaks its documented shape.
    #[error("provider answered wrongly: {0}")]
    Malformed(String),
    /// The provider's settings cannot be used (found when it is built, at start-up).
    #[error("provider settings: {0}")]
    Settings(String),
}

/// A provider's readings, and the ad accounts its answers asked to pause although the data came
/// in complete (usage near the limit on the last page): later jobs of those accounts wait.
#[derive(Debug, Default)]
pub struct Readings {
    pub stats: Vec<ProviderStat>,
    pub pauses: Vec<AccountPause>,
    /// Rows the provider sent for objects that match none of our entities: left out, counted.
    pub unmatched_rows: u64,
}

/// An ad account (its connection) to pause until `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountPause {
    pub connection_id: String,
    pub until: NaiveDateTime,
}

/// What a provider says about an ad account itself (Meta: `GET act_{id}`), read when a token is
/// set and every `meta.account_refresh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    pub name: Option<String>,
    /// IANA zone the provider reports the account's days in (checked to be one).
    pub timezone: String,
    /// ISO 4217 code, three uppercase letters (checked).
    pub currency: String,
    /// `None` while the account can run ads; otherwise why not, e.g.
    /// `account_status 2 (DISABLED)`: the connection then becomes `REVOKED` with this reason.
    pub inactive_reason: Option<String>,
}

/// A source of ad statistics.
#[async_trait::async_trait]
pub trait StatProvider: Send + Sync {
    /// Recorded in `ad_stats_raw.provider`.
    fn name(&self) -> &'static str;

    /// Why this provider does not serve `entity` (under `account`), or `None` when it does. The
    /// pipeline leaves such entities out with a warning. The mock serves everything.
    fn skip_reason(&self, _entity: &EntityBudget, _account: &AdAccount) -> Option<&'static str> {
        None
    }

    /// Readings for every entity of the request on every day of its range: exactly one per
    /// entity and day (a day without delivery is a reading of zeros), nothing else.
    async fn fetch(&self, request: &FetchRequest<'_>) -> Result<Vec<ProviderStat>, ProviderError>;

    /// [`StatProvider::fetch`] with the pauses the answers asked for; what the pipeline calls.
    /// Providers without usage limits keep the default (no pauses).
    async fn fetch_readings(&self, request: &FetchRequest<'_>) -> Result<Readings, ProviderError> {
        Ok(Readings {
            stats: self.fetch(request).await?,
            ..Readings::default()
        })
    }

    /// The account's own zone, currency and status, or `None` when this provider has nothing to
    /// say about `account` (the mock; a connection of another provider).
    async fn read_account(
        &self,
        _account: &AdAccount,
    ) -> Result<Option<AccountInfo>, ProviderError> {
        Ok(None)
    }

    /// Whether the provider reports what entities really did whatever their status in our
    /// catalogue (Meta), so the pipeline also asks about the entities that are not delivering
    /// ([`FetchRequest::others`]). The mock makes numbers up from budgets: it must not.
    fn reports_every_status(&self) -> bool {
        false
    }
}

/// The provider chosen by `provider` in the settings.
pub fn from_settings(settings: &Settings) -> Result<Arc<dyn StatProvider>, ProviderError> {
    Ok(match settings.provider {
        ProviderKind::Mock if settings.mock.latency.is_zero() => Arc::new(MockProvider),
        ProviderKind::Mock => Arc::new(Delayed {
            inner: MockProvider,
            latency: settings.mock.latency,
        }),
        ProviderKind::Meta => Arc::new(MetaProvider::new(&settings.meta)?),
    })
}

/// A provider whose every request first waits `latency` (`mock.latency`): a stand-in for a real
/// provider's network time, so benchmarks show what slow requests do to a tick.
struct Delayed<P> {
    inner: P,
    latency: Duration,
}

#[async_trait::async_trait]
impl<P: StatProvider> StatProvider for Delayed<P> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn skip_reason(&self, entity: &EntityBudget, account: &AdAccount) -> Option<&'static str> {
        self.inner.skip_reason(entity, account)
    }

    fn reports_every_status(&self) -> bool {
        self.inner.reports_every_status()
    }

    async fn fetch(&self, request: &FetchRequest<'_>) -> Result<Vec<ProviderStat>, ProviderError> {
        tokio::time::sleep(self.latency).await;
        self.inner.fetch(request).await
    }

    async fn fetch_readings(&self, request: &FetchRequest<'_>) -> Result<Readings, ProviderError> {
        tokio::time::sleep(self.latency).await;
        self.inner.fetch_readings(request).await
    }

    async fn read_account(
        &self,
        account: &AdAccount,
    ) -> Result<Option<AccountInfo>, ProviderError> {
        self.inner.read_account(account).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn mock_latency_delays_each_request_and_keeps_the_numbers() {
        let settings = Settings::defaults_with(|s| s.mock.latency = Duration::from_millis(60))
            .expect("settings");
        let slow = from_settings(&settings).expect("provider");
        let entities = [EntityBudget {
            entity_id: "cmp-1".into(),
            daily_budget_cents: 10_000,
            connection_id: "conn-1".into(),
            external_id: None,
        }];
        let date = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        let request = FetchRequest {
            seller_id: "s1",
            level: Level::Campaign,
            date_from: date,
            date_to: date,
            entities: &entities,
            others: &[],
            accounts: &[],
            report_runs: ReportRuns::default(),
        };
        let started = std::time::Instant::now();
        let delayed = slow.fetch(&request).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(60));
        let direct = MockProvider.fetch(&request).await.unwrap();
        assert_eq!(delayed, direct);
        assert_eq!(slow.name(), MockProvider.name());
    }
}
