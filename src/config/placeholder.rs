//! Placeholder secrets: values written to be replaced, which production refuses.
//!
//! A sample value copied from a file (`CHANGE-ME-run-openssl-rand-hex-32`, `example-token`) or a
//! lazy one (`aaaaaaaa…`, `1234512345…`) is public knowledge, whatever its length: with it anyone
//! can mint API tokens, read `/metrics`, or unseal stored access tokens. Production
//! (`ADS_STATS_ENV=production`) refuses, naming the key, any of these secrets that contains
//! `change` or `example` (any case) or has fewer than [`MIN_DISTINCT_BYTES`] distinct bytes.
//! Random output (`openssl rand -hex 32` has 16 possible digits, `-base64 32` 64) passes.

use super::{ConfigError, Settings};

/// Fewer different bytes than this is a pattern, not a random value.
pub const MIN_DISTINCT_BYTES: usize = 10;

/// Words that mark a value written to be replaced.
const PLACEHOLDER_WORDS: [&str; 2] = ["change", "example"];

/// Why `value` looks like a placeholder, or `None` when it could be a real secret. Says nothing
/// of the value itself (it goes into an error line).
pub fn problem(value: &str) -> Option<String> {
    let lower = value.to_ascii_lowercase();
    if let Some(word) = PLACEHOLDER_WORDS.iter().find(|w| lower.contains(*w)) {
        return Some(format!("contains `{word}`: it is a placeholder"));
    }
    let mut seen = [false; 256];
    for b in value.bytes() {
        seen[usize::from(b)] = true;
    }
    let distinct = seen.iter().filter(|s| **s).count();
    (distinct < MIN_DISTINCT_BYTES).then(|| {
        format!("has only {distinct} distinct bytes (at least {MIN_DISTINCT_BYTES}): it is a pattern, not a random value")
    })
}

/// In production, refuses a placeholder in `auth.jwt_secret`, `metrics.bearer_token` or
/// `meta.token_key`. Empty values are left to the checks that know whether each is required (the
/// JWT secret is; the other two are optional).
pub(super) fn check(settings: &Settings) -> Result<(), ConfigError> {
    if !settings.is_production() {
        return Ok(());
    }
    let secrets = [
        (
            "auth.jwt_secret",
            "`openssl rand -hex 32`",
            &settings.auth.jwt_secret,
        ),
        (
            "metrics.bearer_token",
            "`openssl rand -hex 32`",
            &settings.metrics.bearer_token,
        ),
        (
            "meta.token_key",
            "`openssl rand -base64 32`",
            &settings.meta.token_key,
        ),
    ];
    for (key, generate, secret) in secrets {
        let value = secret.expose().trim();
        if value.is_empty() {
            continue;
        }
        if let Some(problem) = problem(value) {
            return Err(ConfigError::new(
                key,
                format!("{problem} and ADS_STATS_ENV=production; generate one with {generate}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn placeholders_and_patterns_are_refused() {
        for bad in [
            "CHANGE-ME-run-openssl-rand-hex-32",
            "please-ChAnGe-this-0123456789abcdef",
            "an-EXAMPLE-secret-0123456789abcdef0123",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "1234512345123451234512345123451234512345",
            "abcdefghiabcdefghiabcdefghiabcdefghi",
        ] {
            assert!(problem(bad).is_some(), "{bad}");
        }
        for good in [
            "0123456789abcdef0123456789abcdef-private",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "q3Vb0yJt9cXo2HnK8wq1ZrT4m5sLpA7dEeFgUuIiOo0=",
        ] {
            assert_eq!(problem(good), None, "{good}");
        }
    }

    #[test]
    fn production_names_the_key_and_never_the_value() {
        const REAL: &str = "0123456789abcdef0123456789abcdef-private";
        const KEY: &str = "q3Vb0yJt9cXo2HnK8wq1ZrT4m5sLpA7dEeFgUuIiOo0=";
        type Set = fn(&mut Settings, &str);
        let cases: [(&str, Set); 3] = [
            ("auth.jwt_secret", |s, v| s.auth.jwt_secret = Secret::new(v)),
            ("metrics.bearer_token", |s, v| {
                s.metrics.bearer_token = Secret::new(v)
            }),
            ("meta.token_key", |s, v| s.meta.token_key = Secret::new(v)),
        ];
        for (key, set) in cases {
            let mut s = Settings::defaults_with(|_| {}).unwrap();
            s.environment = "production".into();
            s.auth.jwt_secret = Secret::new(REAL);
            set(&mut s, "my-example-value-0123456789abcdef-000");
            let err = s.validate().unwrap_err();
            assert_eq!(err.key, key);
            assert!(!err.to_string().contains("my-example-value"), "{err}");
            s.environment = "development".into();
            assert!(
                s.validate().is_ok() || key == "meta.token_key",
                "only production refuses"
            );
            s.environment = "production".into();
            set(&mut s, if key == "meta.token_key" { KEY } else { REAL });
            s.validate().expect("a random value passes");
        }
    }
}
