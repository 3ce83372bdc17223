//! The ad account itself: `GET act_{id}?fields=name,timezone_name,currency,account_status`. Meta
//! reports an account's days in its own zone and its amounts in its own currency, and stops
//! answering insights usefully once the account is disabled or closed; reading these keeps the
//! connection's zone, currency and status true without an operator's help.

use reqwest::Url;
use serde::Deserialize;
use serde_json::Value;

use super::client;
use super::{call_error, MetaProvider};
use crate::domain::AdAccount;
use crate::providers::{AccountInfo, ProviderError};

/// The fields asked for; `name` only for the log and `meta check`.
pub const FIELDS: &str = "name,timezone_name,currency,account_status";

/// `account_status` 1: the only status in which the account runs ads.
pub const ACTIVE: i64 = 1;

/// Meta's documented `account_status` codes (Marketing API, Ad Account reference).
pub fn status_name(code: i64) -> &'static str {
    match code {
        1 => "ACTIVE",
        2 => "DISABLED",
        3 => "UNSETTLED",
        7 => "PENDING_RISK_REVIEW",
        8 => "PENDING_SETTLEMENT",
        9 => "IN_GRACE_PERIOD",
        100 => "PENDING_CLOSURE",
        101 => "CLOSED",
        201 => "ANY_ACTIVE",
        202 => "ANY_CLOSED",
        _ => "UNKNOWN",
    }
}

#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    timezone_name: Option<String>,
    #[serde(default)]
    currency: Option<String>,
    /// A number in Meta's answers; a string is accepted too, as for insights numbers.
    #[serde(default)]
    account_status: Option<Value>,
}

impl MetaProvider {
    /// Reads the account with the connection's token. Errors sort as for insights (an expired
    /// token, throttling, a transient failure); an answer without a real zone, an ISO 4217
    /// currency or a status is malformed.
    pub(super) async fn read_account_info(
        &self,
        account: &AdAccount,
    ) -> Result<AccountInfo, ProviderError> {
        let (token, sealed) = self.token(account)?;
        let id = account.external_account_id.trim();
        let id = id.strip_prefix("act_").unwrap_or(id);
        let path = format!("{}/{}/act_{id}", self.base_url, self.api_version);
        let mut url = Url::parse_with_params(&path, [("fields", FIELDS)])
            .map_err(|e| ProviderError::Request(format!("account URL: {e}")))?;
        // Apps with "Require App Secret" refuse the account read without it, as any call.
        if let Some(proof) = self.proof(&token) {
            url.query_pairs_mut()
                .append_pair(client::APPSECRET_PROOF, &proof);
        }
        // Through `call`, like every Graph request: the same errors, and its provider span.
        let (body, _) = client::call(self.http.get(url).bearer_auth(token.expose()))
            .await
            .map_err(|e| call_error(account, &sealed, e))?;
        let answer: Answer = serde_json::from_slice(&body)
            .map_err(|e| ProviderError::Malformed(format!("ad account: {e}")))?;
        parse(answer)
    }
}

fn parse(answer: Answer) -> Result<AccountInfo, ProviderError> {
    let malformed = |what: String| ProviderError::Malformed(format!("ad account: {what}"));
    let zone = answer.timezone_name.unwrap_or_default();
    let zone: chrono_tz::Tz = zone
        .trim()
        .parse()
        .map_err(|_| malformed(format!("timezone_name `{zone}` is not an IANA time zone")))?;
    let currency = answer.currency.unwrap_or_default();
    if !is_iso_4217_shaped(&currency) {
        return Err(malformed(format!(
            "currency `{currency}` is not three uppercase letters (ISO 4217)"
        )));
    }
    let code = match &answer.account_status {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| malformed("no account_status number".into()))?;
    Ok(AccountInfo {
        name: answer.name,
        timezone: zone.name().to_string(),
        currency,
        inactive_reason: (code != ACTIVE)
            .then(|| format!("account_status {code} ({})", status_name(code))),
    })
}

/// Three uppercase ASCII letters: the shape of every ISO 4217 code. (Not a list of codes: a code
/// Meta adds must not stop syncs.)
pub fn is_iso_4217_shaped(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(zone: &str, currency: &str, status: Value) -> Answer {
        Answer {
            name: Some("Shop".into()),
            timezone_name: Some(zone.into()),
            currency: Some(currency.into()),
            account_status: Some(status),
        }
    }

    #[test]
    fn active_and_inactive_accounts() {
        let info = parse(answer("Asia/Tokyo", "JPY", 1.into())).unwrap();
        assert_eq!(
            (info.timezone.as_str(), info.currency.as_str()),
            ("Asia/Tokyo", "JPY")
        );
        assert_eq!(info.inactive_reason, None);
        let info = parse(answer("UTC", "USD", "2".into())).unwrap();
        assert_eq!(
            info.inactive_reason.as_deref(),
            Some("account_status 2 (DISABLED)")
        );
        let info = parse(answer("UTC", "USD", 101.into())).unwrap();
        assert_eq!(
            info.inactive_reason.as_deref(),
            Some("account_status 101 (CLOSED)")
        );
    }

    #[test]
    fn bad_zone_currency_or_status_is_malformed() {
        assert!(parse(answer("Mars/Base", "USD", 1.into())).is_err());
        for currency in ["usd", "US", "USDT", "U$D", ""] {
            assert!(
                parse(answer("UTC", currency, 1.into())).is_err(),
                "{currency}"
            );
        }
        assert!(parse(answer("UTC", "USD", Value::Null)).is_err());
    }
}
