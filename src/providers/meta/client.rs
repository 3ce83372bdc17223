//! The Graph API over HTTP: one insights request per level and ad account for a job's whole range,
//! every page followed, each answer sorted into data, throttling, an expired token or a retryable
//! failure. The access token travels in the `Authorization` header only, never in a URL we log.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::Deserialize;
use tracing::Instrument;

use super::limits::{self, Usage};
use super::mapping::InsightRow;
use crate::config::Secret;
use crate::providers::spans;

/// What one insights query went wrong with, before it is tied to a connection.
#[derive(Debug)]
pub enum CallError {
    /// Timeout, network, 5xx or Meta's "temporary" codes: retry.
    Transient(String),
    Throttled {
        pause: Option<Duration>,
        detail: String,
    },
    TokenInvalid(String),
    /// Meta's app-wide limit (code 4): every account of the app should pause.
    AppThrottled {
        pause: Duration,
        detail: String,
    },
    /// The token lacks a permission on the account (see `limits::is_permission_error`).
    PermissionDenied(String),
    /// Any other error Meta answers (a bad parameter, no permission on the account): retrying
    /// sends the same request.
    Rejected(String),
    /// Meta refuses the synchronous query as too large and wants it as an async report run
    /// (see `report_run::asks_for_async`).
    TooMuchData(String),
    Malformed(String),
}

#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default)]
    data: Vec<InsightRow>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Debug, Deserialize)]
struct Paging {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: GraphError,
}

#[derive(Debug, Deserialize)]
struct GraphError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: i64,
    #[serde(default)]
    error_subcode: Option<i64>,
    /// Meta's own verdict that the same call may succeed later.
    #[serde(default)]
    is_transient: bool,
}

/// The most pages one insights query may take (at `meta.page_size` rows each): a `paging.next`
/// chain longer than this is taken as a provider fault, not followed for ever.
pub const MAX_PAGES: usize = 1_000;

/// One insights query's answer: every row, and the pause the last page's usage asks for (the
/// rows are complete and kept; the pause is for the account's next queries).
#[derive(Debug)]
pub struct Insights {
    pub rows: Vec<InsightRow>,
    pub pause: Option<Duration>,
}

/// Every row of one insights query, following `paging.next` to the end. When a page's usage
/// reaches `usage_threshold` with more pages to come, the query stops (throttled, with the
/// pause); on the last page the rows are complete and returned with the pause.
pub async fn insights(
    http: &reqwest::Client,
    base_url: &str,
    first: Url,
    token: &Secret,
    proof: Option<&str>,
    usage_threshold: f64,
) -> Result<Insights, CallError> {
    let mut rows = Vec::new();
    let mut seen_urls = HashSet::new();
    let mut seen_cursors = HashSet::new();
    let mut url = first;
    let mut pages = 0;
    loop {
        pages += 1;
        if pages > MAX_PAGES {
            return Err(CallError::Malformed(format!(
                "insights went past {MAX_PAGES} pages"
            )));
        }
        // A link or cursor seen before would page in a circle.
        let cursor = url
            .query_pairs()
            .find(|(k, _)| k == "after")
            .map(|(_, v)| v.into_owned());
        if !seen_urls.insert(url.as_str().to_string())
            || cursor.is_some_and(|c| !seen_cursors.insert(c))
        {
            return Err(CallError::Malformed(format!(
                "paging.next repeats a page already read (page {pages})"
            )));
        }
        let mut request = url.clone();
        if let Some(proof) = proof {
            request
                .query_pairs_mut()
                .append_pair(APPSECRET_PROOF, proof);
        }
        let (body, usage) = call(http.get(request).bearer_auth(token.expose())).await?;
        let page: Page = serde_json::from_slice(&body)
            .map_err(|e| CallError::Malformed(format!("insights page: {e}")))?;
        rows.extend(page.data);
        let link = page.paging.and_then(|p| p.next);
        let near_limit = usage.percent >= usage_threshold;
        match link {
            // Near the limit with pages to come: stop before Meta blocks the account.
            Some(_) if near_limit => {
                return Err(CallError::Throttled {
                    pause: usage.pause(usage_threshold),
                    detail: format!("usage at {:.0}% of the allowance", usage.percent),
                })
            }
            Some(link) => url = next_page(base_url, &link)?,
            None => {
                return Ok(Insights {
                    rows,
                    pause: usage.pause(usage_threshold),
                })
            }
        }
    }
}

/// Sends one Graph request (an insights page, an async run's start or poll): its body and usage
/// on success, the error sorted by [`classify`] otherwise.
pub async fn call(request: reqwest::RequestBuilder) -> Result<(Vec<u8>, Usage), CallError> {
    let (client, request) = request.build_split();
    let request = request.map_err(|e| CallError::Transient(describe(e)))?;
    // The path only: the query may carry appsecret_proof.
    let span = spans::request_span("meta", request.method().as_str(), request.url().path());
    let exchange = async {
        let answer = client.execute(request).await?;
        let status = answer.status();
        spans::record_status(&tracing::Span::current(), Some(status.as_u16()));
        let usage = Usage::from_headers(answer.headers());
        Ok::<_, reqwest::Error>((status, usage, answer.bytes().await?))
    };
    let answered = exchange.instrument(span.clone()).await;
    if answered.is_err() {
        spans::record_status(&span, None);
    }
    let (status, usage, body) = answered.map_err(|e| CallError::Transient(describe(e)))?;
    if !status.is_success() {
        return Err(classify(status, &body, usage));
    }
    Ok((body.to_vec(), usage))
}

/// The query parameter carrying [`appsecret_proof`].
pub const APPSECRET_PROOF: &str = "appsecret_proof";

/// Meta's `appsecret_proof`: lowercase hex of HMAC-SHA256 over the access token, keyed by the app
/// secret. Apps with "Require App Secret" refuse every Graph call without it; a stolen token is
/// then useless without the secret. Every Graph request of a connection carries the same proof.
pub fn appsecret_proof(token: &str, app_secret: &str) -> String {
    use hmac::{KeyInit, Mac};
    // HMAC takes a key of any length: new_from_slice cannot fail for it.
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(app_secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(token.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `paging.next` as given, provided it points back to the Graph API (the token is sent along), with
/// any `access_token` parameter Meta put in it dropped (the header carries the token) and any
/// `appsecret_proof` too (each request adds its own).
fn next_page(base_url: &str, link: &str) -> Result<Url, CallError> {
    let base = Url::parse(base_url).map_err(|e| CallError::Malformed(e.to_string()))?;
    let mut url =
        Url::parse(link).map_err(|_| CallError::Malformed("paging.next is not a URL".into()))?;
    if url.origin() != base.origin() {
        return Err(CallError::Malformed(format!(
            "paging.next leaves {}",
            base.origin().ascii_serialization()
        )));
    }
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "access_token" && k != APPSECRET_PROOF)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut().clear().extend_pairs(kept);
    Ok(url)
}

pub(super) fn classify(status: StatusCode, body: &[u8], usage: Usage) -> CallError {
    // Redirects are not followed (see `MetaProvider::new`); the Graph API does not send them, so
    // one is a fault on the way, worth another attempt later.
    if status.is_redirection() {
        return CallError::Transient(format!("HTTP {status}: redirects are not followed"));
    }
    let Ok(ErrorBody { error }) = serde_json::from_slice::<ErrorBody>(body) else {
        let text = format!("HTTP {status} without a Graph API error body");
        return if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            CallError::Transient(text)
        } else {
            CallError::Rejected(text)
        };
    };
    let detail = format!(
        "HTTP {status}, code {}{}: {}",
        error.code,
        error
            .error_subcode
            .map(|s| format!("/{s}"))
            .unwrap_or_default(),
        error.message
    );
    if super::report_run::asks_for_async(error.code, error.error_subcode) {
        CallError::TooMuchData(detail)
    } else if error.code == limits::TOKEN_INVALID {
        CallError::TokenInvalid(detail)
    } else if error.code == limits::APP_LIMIT {
        // Code 4 usually comes without usage headers: the minimum pause, for every account.
        CallError::AppThrottled {
            pause: usage.pause(f64::INFINITY).unwrap_or(limits::MIN_PAUSE),
            detail,
        }
    } else if limits::is_throttling(error.code) {
        // Without a time announced (codes 4, 17, 613 usually come without usage headers) the
        // account still pauses, for MIN_PAUSE: an immediate retry would only be throttled again.
        CallError::Throttled {
            pause: Some(usage.pause(f64::INFINITY).unwrap_or(limits::MIN_PAUSE)),
            detail,
        }
    } else if limits::is_permission_error(error.code, error.error_subcode) {
        CallError::PermissionDenied(detail)
    } else if status.is_server_error() || limits::is_transient(error.code) || error.is_transient {
        CallError::Transient(detail)
    } else {
        CallError::Rejected(detail)
    }
}

/// A client error as text without its URL (a `paging.next` link may carry query parameters that
/// are not ours to log).
pub(super) fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    format!("{kind}: {}", e.without_url())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_pages_stay_on_the_graph_api_and_lose_the_token_parameter() {
        let base = "https://graph.facebook.com";
        let url = next_page(
            base,
            "https://graph.facebook.com/v23.0/act_1/insights?access_token=SECRET&after=abc&limit=2",
        )
        .unwrap();
        assert!(!url.as_str().contains("SECRET"), "{url}");
        assert!(url.as_str().contains("after=abc"), "{url}");
        assert!(next_page(base, "https://evil.example/v23.0/act_1/insights").is_err());
        assert!(next_page(base, "http://graph.facebook.com/x").is_err());
    }

    #[test]
    fn appsecret_proof_is_hex_hmac_sha256_of_the_token() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            appsecret_proof("what do ya want for nothing?", "Jefe"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn next_pages_lose_a_proof_meta_put_in_them() {
        let url = next_page(
            "https://graph.facebook.com",
            "https://graph.facebook.com/v23.0/act_1/insights?appsecret_proof=OLD&after=abc",
        )
        .unwrap();
        assert!(!url.as_str().contains("OLD"), "{url}");
    }

    #[test]
    fn error_codes_sort_into_kinds() {
        let body = |code: i64| format!(r#"{{"error":{{"message":"m","code":{code}}}}}"#);
        let bad = StatusCode::BAD_REQUEST;
        let u = Usage::default();
        assert!(matches!(
            classify(bad, body(190).as_bytes(), u),
            CallError::TokenInvalid(_)
        ));
        assert!(matches!(
            classify(bad, body(17).as_bytes(), u),
            CallError::Throttled { .. }
        ));
        assert!(matches!(
            classify(bad, body(80000).as_bytes(), u),
            CallError::Throttled { .. }
        ));
        // Throttled without usage headers still pauses, for the minimum (code 4: see
        // `app_limit_permission_and_transient_errors`).
        for code in [17, 613] {
            assert!(
                matches!(
                    classify(bad, body(code).as_bytes(), u),
                    CallError::Throttled { pause: Some(p), .. } if p == limits::MIN_PAUSE
                ),
                "{code}"
            );
        }
        assert!(matches!(
            classify(bad, body(2).as_bytes(), u),
            CallError::Transient(_)
        ));
        assert!(matches!(
            classify(bad, body(100).as_bytes(), u),
            CallError::Rejected(_)
        ));
        let e500 = StatusCode::INTERNAL_SERVER_ERROR;
        assert!(matches!(
            classify(e500, b"oops", u),
            CallError::Transient(_)
        ));
    }

    #[test]
    fn app_limit_permission_and_transient_errors() {
        let bad = StatusCode::BAD_REQUEST;
        let u = Usage::default();
        let body = |code: i64, sub: i64, transient: bool| {
            format!(
                r#"{{"error":{{"message":"m","code":{code},"error_subcode":{sub},"is_transient":{transient}}}}}"#
            )
        };
        assert!(matches!(
            classify(bad, body(4, 1504022, false).as_bytes(), u),
            CallError::AppThrottled { pause, .. } if pause == limits::MIN_PAUSE
        ));
        for (code, sub) in [(10, 0), (200, 0), (294, 0), (100, 33)] {
            assert!(
                matches!(
                    classify(bad, body(code, sub, false).as_bytes(), u),
                    CallError::PermissionDenied(_)
                ),
                "{code}/{sub}"
            );
        }
        assert!(matches!(
            classify(bad, body(100, 0, true).as_bytes(), u),
            CallError::Transient(_)
        ));
        assert!(matches!(
            classify(bad, body(100, 0, false).as_bytes(), u),
            CallError::Rejected(_)
        ));
        for (code, sub) in [(100, 1487534), (100, 1504018), (2, 1504038)] {
            assert!(
                matches!(
                    classify(bad, body(code, sub, false).as_bytes(), u),
                    CallError::TooMuchData(_)
                ),
                "{code}/{sub}"
            );
        }
        assert!(matches!(
            classify(bad, body(2, 1504038, true).as_bytes(), u),
            CallError::TooMuchData(_)
        ));
    }
}
