//! `[meta]`: the Meta (Facebook) Graph API provider's settings and their checks.

use std::time::Duration;

use serde::Deserialize;

use super::validate::{is_loopback_host, nonzero, positive};
use super::{ActionReportTime, ActionTypes, ConfigError, ProviderKind, Secret};

/// The Meta (Facebook) Graph API provider: where it is, how it pages, how long a request may take,
/// the key that seals access tokens, and when the usage headers pause an account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaSettings {
    /// Scheme and host of the Graph API (tests point it at a local server).
    pub base_url: String,
    /// The Graph API version in each path, e.g. `v23.0`.
    pub api_version: String,
    /// Rows per insights page (`limit`).
    pub page_size: u32,
    /// One HTTP request (connect and answer) taking longer fails the attempt, which is retried.
    #[serde(with = "super::duration")]
    pub timeout: Duration,
    /// Base64 of 32 random bytes; AES-256-GCM key for `ad_connections.access_token_enc`.
    pub token_key: Secret,
    /// Percent (0–100] of any usage figure Meta reports at which an account's jobs pause.
    pub usage_threshold: f64,
    /// How often each META connection's account (zone, currency, status) is read again; a
    /// `connection set-token` reads it at once.
    #[serde(with = "super::duration")]
    pub account_refresh: Duration,
    /// The Meta app's secret; when set, every Graph request carries `appsecret_proof` (apps with
    /// "Require App Secret" refuse calls without it). Empty: not sent.
    pub app_secret: Secret,
    /// When conversions are counted: `impression`, `conversion` or `mixed` (Ads Manager's).
    pub action_report_time: ActionReportTime,
    /// The action types behind each funnel step, first present wins.
    pub action_types: ActionTypes,
    /// A job whose range has more days than this asks Meta for an async report run at once
    /// (long synchronous requests are the ones Meta refuses).
    pub async_after_days: u32,
    /// How long one attempt polls an async report run before it gives up (the run is kept for
    /// the next attempt).
    #[serde(with = "super::duration")]
    pub async_timeout: Duration,
    /// The first wait between polls of an async report run; each wait doubles, up to 30s.
    #[serde(with = "super::duration")]
    pub async_poll_interval: Duration,
}

/// The bytes of the token key: 32 bytes from base64, `None` when no key is set.
pub const TOKEN_KEY_BYTES: usize = 32;

impl MetaSettings {
    /// The decoded `meta.token_key`: `Ok(None)` when unset, an error when set but not base64 of
    /// exactly 32 bytes (never naming the value).
    pub fn token_key_bytes(&self) -> Result<Option<[u8; TOKEN_KEY_BYTES]>, ConfigError> {
        use base64::Engine;
        let text = self.token_key.expose().trim();
        if text.is_empty() {
            return Ok(None);
        }
        let bad = || {
            ConfigError::new(
                "meta.token_key",
                "is not base64 of 32 bytes (make one with `openssl rand -base64 32`)",
            )
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| bad())?;
        let key: [u8; TOKEN_KEY_BYTES] = bytes.try_into().map_err(|_| bad())?;
        Ok(Some(key))
    }

    pub(super) fn validate(
        &self,
        provider: ProviderKind,
        production: bool,
    ) -> Result<(), ConfigError> {
        let key = self.token_key_bytes()?;
        if key.is_none() && production && provider == ProviderKind::Meta {
            return Err(ConfigError::new(
                "meta.token_key",
                "is missing and ADS_STATS_ENV=production with provider = \"meta\"; set \
                 ADS_STATS_META__TOKEN_KEY to `openssl rand -base64 32`",
            ));
        }
        // The access token travels in a header: plain http only to this machine (a local fake).
        let url = self.base_url.trim();
        let parsed = reqwest::Url::parse(url).ok().filter(|u| u.has_host());
        let Some(parsed) = parsed.filter(|u| matches!(u.scheme(), "https" | "http")) else {
            return Err(ConfigError::new(
                "meta.base_url",
                "must be an https:// URL, e.g. https://graph.facebook.com",
            ));
        };
        if parsed.scheme() == "http" && !is_loopback_host(parsed.host_str().unwrap_or_default()) {
            return Err(ConfigError::new(
                "meta.base_url",
                "must be https:// (plain http:// only to a loopback host such as 127.0.0.1): \
                 the access token would cross the network unencrypted",
            ));
        }
        let version = self.api_version.trim();
        if !(version.starts_with('v') && version[1..].parse::<f64>().is_ok()) {
            return Err(ConfigError::new(
                "meta.api_version",
                format!("`{version}` is not a Graph API version such as v23.0"),
            ));
        }
        positive("meta.page_size", self.page_size as usize)?;
        nonzero("meta.timeout", self.timeout)?;
        nonzero("meta.account_refresh", self.account_refresh)?;
        positive("meta.async_after_days", self.async_after_days as usize)?;
        nonzero("meta.async_timeout", self.async_timeout)?;
        nonzero("meta.async_poll_interval", self.async_poll_interval)?;
        if !(self.usage_threshold > 0.0 && self.usage_threshold <= 100.0) {
            return Err(ConfigError::new(
                "meta.usage_threshold",
                "must be a percentage above 0 and at most 100",
            ));
        }
        self.action_types.validate()?;
        Ok(())
    }
}
