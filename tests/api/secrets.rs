//! No placeholder secret runs in production: `config --check` (the unit's `ExecStartPre=`) refuses
//! each secret key holding a placeholder, naming the key; and no file under `config/` or `docs/`
//! (nor the README) holds a secret value that production would start with, so copying an example
//! never yields a working, public secret.

use std::path::{Path, PathBuf};
use std::process::Output;

use ads_stats::config::{Secret, Settings};

use crate::helpers::ads_stats;

/// A JWT secret production accepts (as `openssl rand -hex 32` makes).
const REAL_JWT: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const REAL_TOKEN: &str = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";
/// Base64 of 32 random bytes (`openssl rand -base64 32`).
const REAL_KEY: &str = "6w6MH0u0Okmd+r7sRJQMu7P7fUapGo8ylNwpAEEOD4U=";

async fn check(envs: &[(&str, &str)]) -> Output {
    ads_stats()
        .args(["config", "--check"])
        .env("ADS_STATS_ENV", "production")
        .envs(envs.iter().copied())
        .output()
        .await
        .expect("ads-stats runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn config_check_refuses_a_placeholder_in_each_secret_naming_the_key() {
    // (environment variable, settings key, placeholders, a good value)
    let cases: [(&str, &str, Vec<&str>, &str); 3] = [
        (
            "JWT_SECRET",
            "auth.jwt_secret",
            vec![
                // What config/systemd/ads-stats.env used to ship: 33 bytes, not the default.
                "CHANGE-ME-run-openssl-rand-hex-32",
                "0123456789abcdef-example-0123456789abcdef",
                "abcabcabcabcabcabcabcabcabcabcabcabcabcabc",
            ],
            REAL_JWT,
        ),
        (
            "ADS_STATS_METRICS__BEARER_TOKEN",
            "metrics.bearer_token",
            vec![
                "change-this-scrape-token-0123456789",
                "ExAmPlE-token-0123456789abcdef",
                "ab12ab12ab12ab12ab12ab12ab12ab12",
            ],
            REAL_TOKEN,
        ),
        (
            "ADS_STATS_META__TOKEN_KEY",
            "meta.token_key",
            vec![
                // Valid base64 of 32 bytes each: only the placeholder rule refuses them.
                "ExampleKey0123456789abcdefghijklmnopqrstuvA=",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            ],
            REAL_KEY,
        ),
    ];
    for (var, key, placeholders, good) in cases {
        for placeholder in placeholders {
            let mut envs = vec![(var, placeholder)];
            if var != "JWT_SECRET" {
                envs.push(("JWT_SECRET", REAL_JWT));
            }
            let out = check(&envs).await;
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{var}={placeholder}: {err}");
            assert_eq!(err.trim().lines().count(), 1, "one line: {err:?}");
            assert!(err.contains(key), "{var}={placeholder}: {err}");
            assert!(!err.contains(placeholder), "the value was printed: {err}");
        }
        let mut envs = vec![(var, good)];
        if var != "JWT_SECRET" {
            envs.push(("JWT_SECRET", REAL_JWT));
        }
        let out = check(&envs).await;
        assert_eq!(out.status.code(), Some(0), "{var}: {}", stderr(&out));
    }
    // `serve` refuses the same way (the checks are shared), before touching the database.
    crate::cli::config_errors(
        &[
            ("ADS_STATS_ENV", "production"),
            ("JWT_SECRET", "CHANGE-ME-run-openssl-rand-hex-32"),
        ],
        &["auth.jwt_secret"],
    )
    .await;
    // Outside production the rule does not apply (a laptop may use anything on loopback).
    let out = ads_stats()
        .args(["config", "--check"])
        .env(
            "ADS_STATS_METRICS__BEARER_TOKEN",
            "change-this-scrape-token-0123456789",
        )
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[tokio::test]
async fn the_shipped_environment_file_does_not_start_unedited() {
    let text =
        std::fs::read_to_string(root().join("config/systemd/ads-stats.env")).expect("env file");
    let envs: Vec<(String, String)> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert!(envs.iter().any(|(k, v)| k == "JWT_SECRET" && v.is_empty()));
    let out = ads_stats()
        .args(["config", "--check"])
        .env("ADS_STATS_ENV", "production")
        .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("auth.jwt_secret"), "{}", stderr(&out));
}

/// Which secret an assignment's name sets: `JWT_SECRET`, `ADS_STATS_AUTH__JWT_SECRET` and
/// `jwt_secret` all set `auth.jwt_secret`, and so on.
fn secret_key(name: &str) -> Option<&'static str> {
    let name = name.to_ascii_lowercase();
    [
        ("jwt_secret", "auth.jwt_secret"),
        ("bearer_token", "metrics.bearer_token"),
        ("token_key", "meta.token_key"),
    ]
    .into_iter()
    .find(|(suffix, _)| name.ends_with(suffix))
    .map(|(_, key)| key)
}

/// Every `NAME=value` or `name = "value"` assignment of a secret in `text`, as
/// (line number, settings key, value).
fn secret_assignments(text: &str) -> Vec<(usize, &'static str, String)> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let bytes = line.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if !(bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let Some(key) = secret_key(&line[start..i]) else {
                continue;
            };
            let rest = line[i..].trim_start();
            let Some(rest) = rest.strip_prefix('=') else {
                continue;
            };
            let rest = rest.trim_start();
            let value = match rest.chars().next() {
                Some(q @ ('"' | '\'' | '`')) => rest[1..].split(q).next().unwrap_or(""),
                _ => rest
                    .split(|c: char| c.is_whitespace() || c == '`')
                    .next()
                    .unwrap_or(""),
            };
            found.push((number + 1, key, value.to_string()));
        }
    }
    found
}

/// Whether production would start with `value` in `key` (every other secret good).
fn starts_in_production(key: &str, value: &str) -> bool {
    Settings::defaults_with(|s| {
        s.environment = "production".into();
        s.auth.jwt_secret = Secret::new(REAL_JWT);
        let secret = Secret::new(value);
        match key {
            "auth.jwt_secret" => s.auth.jwt_secret = secret,
            "metrics.bearer_token" => s.metrics.bearer_token = secret,
            "meta.token_key" => s.meta.token_key = secret,
            other => panic!("unknown key {other}"),
        }
    })
    .is_ok()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable folder") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn the_scanner_finds_each_form_of_assignment() {
    let text = "JWT_SECRET=abc\n\
                -e JWT_SECRET=\"quoted value\" \\\n\
                export ADS_STATS_METRICS__BEARER_TOKEN='single'\n\
                token_key = \"toml\"\n\
                #ADS_STATS_META__TOKEN_KEY=`commented`\n\
                `JWT_SECRET`: `openssl rand -hex 32`\n";
    let found: Vec<(&str, String)> = secret_assignments(text)
        .into_iter()
        .map(|(_, k, v)| (k, v))
        .collect();
    assert_eq!(
        found,
        vec![
            ("auth.jwt_secret", "abc".to_string()),
            ("auth.jwt_secret", "quoted value".to_string()),
            ("metrics.bearer_token", "single".to_string()),
            ("meta.token_key", "toml".to_string()),
            ("meta.token_key", "commented".to_string()),
        ]
    );
    // The check it runs tells a real secret from a placeholder.
    assert!(starts_in_production("auth.jwt_secret", REAL_JWT));
    assert!(!starts_in_production(
        "auth.jwt_secret",
        "CHANGE-ME-run-openssl-rand-hex-32"
    ));
    assert!(starts_in_production("meta.token_key", REAL_KEY));
    assert!(starts_in_production("metrics.bearer_token", REAL_TOKEN));
}

#[test]
fn no_file_in_config_or_docs_holds_a_secret_production_would_start_with() {
    let mut files = Vec::new();
    files_under(&root().join("config"), &mut files);
    files_under(&root().join("docs"), &mut files);
    files.push(root().join("README.md"));
    let mut seen = 0;
    let mut startable = Vec::new();
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for (line, key, value) in secret_assignments(&text) {
            seen += 1;
            // An empty optional secret is "not set"; an empty JWT secret is refused anyway.
            if !value.is_empty() && starts_in_production(key, &value) {
                let name = file.strip_prefix(root()).unwrap_or(file).display();
                startable.push(format!("{name}:{line}: {key}"));
            }
        }
    }
    // default.toml's three secrets and the environment file's, at least.
    assert!(seen >= 6, "the scanner found only {seen} assignments");
    assert!(
        startable.is_empty(),
        "these would start the service in production; use an empty value or an obvious \
         placeholder such as <generate with openssl rand -hex 32>:\n{}",
        startable.join("\n")
    );
}
