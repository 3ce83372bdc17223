//! Meta's async report runs: the same insights query POSTed to `act_{id}/insights`, its
//! `report_run_id` polled (`GET /{id}`) with growing waits until `Job Completed`, then its rows
//! read from `GET /{id}/insights`, page by page, exactly as a synchronous answer.
//!
//! Used when a job's range is longer than `meta.async_after_days` and when Meta refuses a
//! synchronous query as too large. The run ids of a job (one per connection) are handed to the
//! jobs layer ([`crate::providers::RunKeeper`]) before the first poll, so a retried attempt polls
//! the same run instead of starting another. A kept run that ended `Job Failed`/`Job Skipped` is
//! dropped (the next attempt starts a new one); one Meta no longer knows (it keeps runs for a
//! limited time) is ignored and replaced at once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::Url;
use serde::Deserialize;
use serde_json::Value;

use super::client::{self, CallError, Insights, APPSECRET_PROOF};
use super::{call_error, MetaProvider};
use crate::config::Secret;
use crate::domain::AdAccount;
use crate::providers::{ProviderError, RunKeeper};

/// The longest wait between two polls of a run.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(30);

/// `async_status` of a finished run whose rows can be read.
pub const COMPLETED: &str = "Job Completed";
/// `async_status` values of a run that ended without rows: the attempt fails.
pub const ENDED_WITHOUT_ROWS: [&str; 2] = ["Job Failed", "Job Skipped"];

/// The refusals with which Meta asks for an async run instead ("reduce the amount of data",
/// "please use async"): code 100 subcodes 1487534 and 1504018, code 2 subcode 1504038.
pub fn asks_for_async(code: i64, subcode: Option<i64>) -> bool {
    matches!(
        (code, subcode),
        (100, Some(1_487_534)) | (100, Some(1_504_018)) | (2, Some(1_504_038))
    )
}

/// A job's runs, connection id → run id, as kept on the job record (a JSON object; the jobs layer
/// stores the text as is).
pub(super) struct RunBook<'a> {
    runs: BTreeMap<String, String>,
    keeper: Option<&'a dyn RunKeeper>,
}

impl<'a> RunBook<'a> {
    pub(super) fn new(kept: Option<&str>, keeper: Option<&'a dyn RunKeeper>) -> Self {
        let runs = match kept.map(serde_json::from_str::<BTreeMap<String, String>>) {
            None => BTreeMap::new(),
            Some(Ok(runs)) => runs,
            // Not ours to read (hand-edited, or an older form): start afresh rather than fail.
            Some(Err(e)) => {
                tracing::warn!(error = %e, "kept report runs are unreadable; starting new runs");
                BTreeMap::new()
            }
        };
        Self { runs, keeper }
    }

    pub(super) fn has(&self, connection_id: &str) -> bool {
        self.runs.contains_key(connection_id)
    }

    fn get(&self, connection_id: &str) -> Option<&str> {
        self.runs.get(connection_id).map(String::as_str)
    }

    /// Records `run` (or its end) for the connection and hands the whole book to the keeper.
    async fn keep(&mut self, connection_id: &str, run: Option<&str>) -> Result<(), ProviderError> {
        match run {
            Some(run) => self.runs.insert(connection_id.to_string(), run.to_string()),
            None => self.runs.remove(connection_id),
        };
        let Some(keeper) = self.keeper else {
            return Ok(());
        };
        let text = (!self.runs.is_empty())
            .then(|| serde_json::to_string(&self.runs))
            .transpose()
            .map_err(|e| ProviderError::Request(format!("report runs: {e}")))?;
        keeper
            .keep(text.as_deref())
            .await
            .map_err(ProviderError::Request)
    }
}

/// What one account's calls need.
pub(super) struct Caller<'a> {
    pub(super) account: &'a AdAccount,
    pub(super) token: &'a Secret,
    pub(super) sealed: &'a Secret,
    pub(super) proof: Option<&'a str>,
}

impl Caller<'_> {
    pub(super) fn error(&self, e: CallError) -> ProviderError {
        call_error(self.account, self.sealed, e)
    }
}

/// Why waiting on a run stopped short of its rows.
enum Waited {
    /// A kept run Meta no longer knows: start another.
    Gone(String),
    /// `Job Failed` or `Job Skipped`.
    Ended(String),
    Failed(ProviderError),
}

#[derive(Debug, Deserialize)]
struct Started {
    report_run_id: Value,
}

#[derive(Debug, Deserialize)]
struct RunStatus {
    #[serde(default)]
    async_status: Option<String>,
    #[serde(default)]
    async_percent_completion: Option<Value>,
}

impl MetaProvider {
    /// The rows of `query` (the synchronous insights URL) through an async run: the connection's
    /// kept run when there is one, a new one otherwise.
    pub(super) async fn async_insights(
        &self,
        caller: &Caller<'_>,
        query: &Url,
        book: &mut RunBook<'_>,
    ) -> Result<Insights, ProviderError> {
        let connection_id = caller.account.connection_id.as_str();
        let (mut run, mut resumed) = match book.get(connection_id) {
            Some(run) => {
                tracing::info!(connection.id = %connection_id, report_run.id = %run, "resuming Meta async report run");
                (run.to_string(), true)
            }
            None => (self.start_run(caller, query, book).await?, false),
        };
        loop {
            match self.wait(caller, &run, resumed).await {
                Ok(()) => break,
                Err(Waited::Gone(detail)) => {
                    tracing::info!(
                        connection.id = %connection_id, report_run.id = %run, detail = %detail,
                        "Meta no longer knows the kept async report run; starting another"
                    );
                    run = self.start_run(caller, query, book).await?;
                    resumed = false;
                }
                Err(Waited::Ended(status)) => {
                    book.keep(connection_id, None).await?;
                    return Err(ProviderError::Request(format!(
                        "Meta's async report run {run} ended with `{status}`; the next attempt starts another"
                    )));
                }
                Err(Waited::Failed(e)) => return Err(e),
            }
        }
        let url = Url::parse_with_params(
            &format!("{}/{}/{run}/insights", self.base_url, self.api_version),
            [("limit", self.page_size.to_string())],
        )
        .map_err(|e| ProviderError::Request(format!("report run URL: {e}")))?;
        client::insights(
            &self.http,
            &self.base_url,
            url,
            caller.token,
            caller.proof,
            self.usage_threshold,
        )
        .await
        .map_err(|e| caller.error(e))
    }

    /// POSTs the query's parameters as a new run and keeps its id before any poll.
    async fn start_run(
        &self,
        caller: &Caller<'_>,
        query: &Url,
        book: &mut RunBook<'_>,
    ) -> Result<String, ProviderError> {
        let mut path = query.clone();
        path.set_query(None);
        // The same parameters as the synchronous query; `limit` belongs to the reads of pages.
        let mut form = Url::parse("http://form.invalid/")
            .map_err(|e| ProviderError::Request(format!("report run form: {e}")))?;
        form.query_pairs_mut()
            .extend_pairs(query.query_pairs().filter(|(k, _)| k != "limit"));
        if let Some(proof) = caller.proof {
            form.query_pairs_mut().append_pair(APPSECRET_PROOF, proof);
        }
        let request = self
            .http
            .post(path)
            .bearer_auth(caller.token.expose())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form.query().unwrap_or_default().to_string());
        let (body, _) = client::call(request).await.map_err(|e| caller.error(e))?;
        let started: Started = serde_json::from_slice(&body)
            .map_err(|e| ProviderError::Malformed(format!("async report run: {e}")))?;
        let run = match started.report_run_id {
            Value::String(s) => s.trim().to_string(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        // The id goes into URL paths: Meta's ids are digits.
        if run.is_empty() || !run.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ProviderError::Malformed(format!(
                "async report run id `{run}` is not a Graph API id"
            )));
        }
        book.keep(&caller.account.connection_id, Some(&run)).await?;
        tracing::info!(
            connection.id = %caller.account.connection_id, report_run.id = %run,
            "started Meta async report run"
        );
        Ok(run)
    }

    /// Polls `run` until `Job Completed`, waiting `meta.async_poll_interval` at first and twice as
    /// long each time (at most [`MAX_POLL_INTERVAL`]), for at most `meta.async_timeout`.
    async fn wait(&self, caller: &Caller<'_>, run: &str, resumed: bool) -> Result<(), Waited> {
        let started = Instant::now();
        let deadline = started + self.async_timeout;
        let mut interval = self.async_poll_interval;
        let mut first = true;
        loop {
            let mut url = Url::parse_with_params(
                &format!("{}/{}/{run}", self.base_url, self.api_version),
                [("fields", "id,async_status,async_percent_completion")],
            )
            .map_err(|e| Waited::Failed(ProviderError::Request(format!("report run URL: {e}"))))?;
            if let Some(proof) = caller.proof {
                url.query_pairs_mut().append_pair(APPSECRET_PROOF, proof);
            }
            let request = self.http.get(url).bearer_auth(caller.token.expose());
            let (body, usage) = match client::call(request).await {
                Ok(answer) => answer,
                // A kept run Meta answers "does not exist" for (code 100, or 100/33 which reads
                // like a permission error) is gone; a new run's POST shows any real refusal.
                Err(CallError::Rejected(detail) | CallError::PermissionDenied(detail))
                    if first && resumed =>
                {
                    return Err(Waited::Gone(detail))
                }
                Err(e) => return Err(Waited::Failed(caller.error(e))),
            };
            first = false;
            let status: RunStatus = serde_json::from_slice(&body).map_err(|e| {
                Waited::Failed(ProviderError::Malformed(format!("async report run: {e}")))
            })?;
            let state = status.async_status.unwrap_or_default();
            let percent = status
                .async_percent_completion
                .map(|p| p.to_string())
                .unwrap_or_default();
            if state == COMPLETED {
                return Ok(());
            }
            if ENDED_WITHOUT_ROWS.contains(&state.as_str()) {
                return Err(Waited::Ended(state));
            }
            tracing::debug!(report_run.id = %run, async_status = %state, percent = %percent, "Meta async report run not done");
            // Polls count against the account's allowance too: near the limit, stop and let
            // the retry (after the pause) resume the same run.
            if usage.percent >= self.usage_threshold {
                return Err(Waited::Failed(caller.error(CallError::Throttled {
                    pause: usage.pause(self.usage_threshold),
                    detail: format!(
                        "usage at {:.0}% of the allowance while polling",
                        usage.percent
                    ),
                })));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Waited::Failed(ProviderError::Request(format!(
                    "Meta's async report run {run} not completed after {} (meta.async_timeout; \
                     `{state}` at {percent}%); the next attempt polls it again",
                    humantime::format_duration(self.async_timeout)
                ))));
            }
            tokio::time::sleep(interval.min(deadline - now)).await;
            interval = (interval * 2).min(MAX_POLL_INTERVAL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_refusals_ask_for_async() {
        assert!(asks_for_async(100, Some(1487534)));
        assert!(asks_for_async(100, Some(1504018)));
        assert!(asks_for_async(2, Some(1504038)));
        assert!(!asks_for_async(100, None));
        assert!(!asks_for_async(100, Some(33)));
        assert!(!asks_for_async(2, None));
    }

    #[test]
    fn an_unreadable_book_starts_empty() {
        let book = RunBook::new(Some("6001"), None);
        assert_eq!(book.get("c"), None);
        let book = RunBook::new(Some(r#"{"c":"6001"}"#), None);
        assert_eq!(book.get("c"), Some("6001"));
    }
}
