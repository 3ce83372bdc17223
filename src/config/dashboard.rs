//! `[dashboard]`: who may sign in to the operator dashboard, and how its cookie is marked.
//!
//! The password is an argon2id PHC string (`admin_password_hash`, made by `ads-stats dashboard
//! hash-password`). The unsalted SHA-256 digest of earlier releases (`admin_password_sha256`)
//! still works for this release, with a warning at start; when both are set the argon2 hash wins.

use std::time::Duration;

use serde::Deserialize;

use super::validate::nonzero;
use super::{ConfigError, Secret};

/// The operator dashboard at `/dashboard`. Off (404) unless both the user and a password hash
/// are set, so a fresh install never exposes it by accident.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardSettings {
    pub admin_user: String,
    /// argon2id PHC string of the admin password (`ads-stats dashboard hash-password`).
    pub admin_password_hash: Secret,
    /// Deprecated: hex SHA-256 of the admin password (`printf %s 'password' | sha256sum`). A
    /// secret type all the same: an unsalted hash of a weak password is easy to reverse.
    pub admin_password_sha256: Secret,
    /// Marks the session cookie `Secure`. Unset: `Secure` when `ADS_STATS_ENV=production`
    /// (behind TLS), not otherwise (plain http on a laptop); see [`super::Settings::secure_cookies`].
    #[serde(default)]
    pub secure_cookies: Option<bool>,
    /// How long a login lasts.
    #[serde(with = "super::duration")]
    pub session_ttl: Duration,
}

/// How the configured admin password is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminPassword {
    /// An argon2id PHC string (checked by [`crate::password::verify`]).
    Argon2(String),
    /// The deprecated unsalted SHA-256 digest.
    Sha256([u8; 32]),
}

impl DashboardSettings {
    /// The admin user and how to check the password, when both are set (the dashboard is on).
    /// The argon2 hash wins over the SHA-256 digest.
    pub fn admin(&self) -> Option<(&str, AdminPassword)> {
        let user = self.admin_user.trim();
        if user.is_empty() {
            return None;
        }
        let phc = self.admin_password_hash.expose().trim();
        if !phc.is_empty() {
            return Some((user, AdminPassword::Argon2(phc.to_string())));
        }
        let digest = parse_sha256_hex(self.admin_password_sha256.expose())?;
        Some((user, AdminPassword::Sha256(digest)))
    }

    /// Whether any password hash is set (with or without a user).
    pub fn has_password(&self) -> bool {
        !self.admin_password_hash.expose().trim().is_empty()
            || !self.admin_password_sha256.expose().trim().is_empty()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let phc = self.admin_password_hash.expose().trim();
        if !phc.is_empty() {
            crate::password::check_phc(phc).map_err(|e| {
                ConfigError::new(
                    "dashboard.admin_password_hash",
                    format!("{e}; make one with `ads-stats dashboard hash-password`"),
                )
            })?;
        }
        let hash = self.admin_password_sha256.expose().trim();
        if !hash.is_empty() && parse_sha256_hex(hash).is_none() {
            return Err(ConfigError::new(
                "dashboard.admin_password_sha256",
                "is not 64 hex digits (better: set dashboard.admin_password_hash from \
                 `ads-stats dashboard hash-password`)",
            ));
        }
        // SHA-256 of the empty string: a dashboard anyone opens by leaving the password blank.
        if hash.eq_ignore_ascii_case(EMPTY_SHA256) {
            return Err(ConfigError::new(
                "dashboard.admin_password_sha256",
                "is the digest of an empty password; choose a password",
            ));
        }
        nonzero("dashboard.session_ttl", self.session_ttl)
    }
}

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// 32 bytes from 64 hex digits (either case, whitespace around ignored).
fn parse_sha256_hex(text: &str) -> Option<[u8; 32]> {
    let text = text.trim().as_bytes();
    // from_str_radix alone would take a leading '+'.
    if text.len() != 64 || !text.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn an_empty_dashboard_password_is_refused() {
        let mut s = Settings::defaults_with(|_| {}).unwrap();
        s.dashboard.admin_user = "admin".into();
        s.dashboard.admin_password_sha256 = Secret::new(EMPTY_SHA256.to_uppercase());
        let err = s.validate().unwrap_err();
        assert_eq!(err.key, "dashboard.admin_password_sha256");
    }

    #[test]
    fn an_invalid_phc_string_names_the_key_and_the_hash_wins_over_sha256() {
        let err = Settings::defaults_with(|s| {
            s.dashboard.admin_password_hash = Secret::new("$argon2id$v=19$nonsense");
        })
        .unwrap_err();
        assert_eq!(err.key, "dashboard.admin_password_hash");
        let phc = crate::password::hash("pw").unwrap();
        let s = Settings::defaults_with(|s| {
            s.dashboard.admin_user = "admin".into();
            s.dashboard.admin_password_hash = Secret::new(phc.clone());
            s.dashboard.admin_password_sha256 = Secret::new("ab".repeat(32));
        })
        .unwrap();
        assert_eq!(
            s.dashboard.admin(),
            Some(("admin", AdminPassword::Argon2(phc)))
        );
    }

    #[test]
    fn cookies_are_secure_by_default_in_production_only() {
        let mut s = Settings::defaults_with(|_| {}).unwrap();
        assert_eq!(s.dashboard.secure_cookies, None);
        assert!(!s.secure_cookies());
        s.environment = "production".into();
        assert!(s.secure_cookies());
        s.dashboard.secure_cookies = Some(false);
        assert!(!s.secure_cookies(), "the setting overrides");
        s.environment = "development".into();
        s.dashboard.secure_cookies = Some(true);
        assert!(s.secure_cookies());
    }
}
