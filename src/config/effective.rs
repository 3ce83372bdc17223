//! The effective configuration as TOML, each value annotated with the layer that set it, for
//! `ads-stats config`: an operator sees what a process will run with, and why, without reading
//! four files and the environment. Secrets never print.

use figment::value::{Dict, Value};
use figment::Figment;

/// Shown instead of a secret's value.
pub const REDACTED: &str = "<redacted>";

/// Key names that hold secrets. Matched by name rather than listed by key, so a secret added to
/// the settings later is hidden without anyone remembering this file.
const SECRET_WORDS: [&str; 4] = ["secret", "password", "token", "sha256"];

/// Renders the merged `figment` (already checked by [`super::Settings::load`]) as TOML with a
/// `# source` comment per value. The error is figment's, as text (it is only ever printed).
pub fn render(figment: &Figment, environment: &str) -> Result<String, String> {
    let dict: Dict = figment.extract().map_err(|e| e.to_string())?;
    let mut out = format!(
        "# ads-stats effective configuration, ADS_STATS_ENV={environment}\n\
         # Every value is followed by the layer that set it; secrets print as \"{REDACTED}\".\n"
    );
    let mut tables = Vec::new();
    for (key, value) in &dict {
        match value {
            Value::Dict(..) => tables.push((key.clone(), value)),
            _ => out.push_str(&line(figment, key, key, value)),
        }
    }
    // A stack, depth first: reversed so the sections come out in key order.
    tables.reverse();
    while let Some((path, value)) = tables.pop() {
        let Value::Dict(_, inner) = value else {
            continue;
        };
        out.push_str(&format!("\n[{path}]\n"));
        let mut nested = Vec::new();
        for (key, value) in inner {
            let full = format!("{path}.{key}");
            match value {
                Value::Dict(..) => nested.push((full, value)),
                _ => out.push_str(&line(figment, &full, key, value)),
            }
        }
        tables.extend(nested.into_iter().rev());
    }
    Ok(out)
}

fn line(figment: &Figment, full_key: &str, key: &str, value: &Value) -> String {
    let shown = shown_value(full_key, value);
    format!("{key} = {shown}  # {}\n", source_of(figment, full_key))
}

/// Keys whose names hold a secret word but whose values are not secrets (a duration).
const NOT_SECRETS: [&str; 1] = ["auth.max_token_lifetime"];

fn is_secret(full_key: &str) -> bool {
    if NOT_SECRETS.contains(&full_key) {
        return false;
    }
    let last = full_key.rsplit('.').next().unwrap_or(full_key);
    SECRET_WORDS.iter().any(|w| last.contains(w))
}

fn shown_value(full_key: &str, value: &Value) -> String {
    if is_secret(full_key) {
        // An empty secret says only that none is set (a metrics scrape needs no token): show it.
        let empty = matches!(value, Value::String(_, s) if s.is_empty());
        return if empty {
            "\"\"".into()
        } else {
            quoted(REDACTED)
        };
    }
    if full_key == "database.url" {
        if let Value::String(_, url) = value {
            return quoted(&redact_url_password(url));
        }
    }
    // JSON's scalars, strings and arrays are valid TOML values (its string escapes are TOML's).
    serde_json::to_string(value).unwrap_or_else(|_| quoted("?"))
}

fn quoted(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

/// `postgres://user:pass@host/db?password=x` → the same with both passwords `<redacted>`.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:{REDACTED}@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => {
                        format!("{k}={REDACTED}")
                    }
                    _ => p.to_string(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// The file or environment variable that set `key`, or `default` for the built-in defaults.
fn source_of(figment: &Figment, key: &str) -> String {
    let Some(meta) = figment.find_metadata(key) else {
        return "default".into();
    };
    if let Some(source @ figment::Source::File(_)) = &meta.source {
        // Relative to the working folder when that is shorter, as the operator typed it.
        return source.to_string();
    }
    if meta.name.contains("environment variable") {
        return env_var_for(key, meta.name.starts_with('`'));
    }
    // The copy of config/default.toml compiled into the binary.
    "default".into()
}

/// The variable behind an environment layer: the prefixed `ADS_STATS_SECTION__KEY` form (as the
/// operator spelt it) or one of the conventional shortcuts.
fn env_var_for(key: &str, prefixed: bool) -> String {
    if !prefixed {
        let shortcut = match key {
            "database.url" => "DATABASE_URL",
            "auth.jwt_secret" => "JWT_SECRET",
            "server.port" => "PORT",
            _ => "",
        };
        if !shortcut.is_empty() {
            return format!("environment variable {shortcut}");
        }
    }
    let wanted = format!("ADS_STATS_{}", key.replace('.', "__")).to_ascii_uppercase();
    let name = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .find(|k| k.to_ascii_uppercase() == wanted)
        .unwrap_or(wanted);
    format!("environment variable {name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_redacted() {
        assert_eq!(
            redact_url_password("postgres://ads:hunter2@db:5432/stats?sslmode=require"),
            "postgres://ads:<redacted>@db:5432/stats?sslmode=require"
        );
        assert_eq!(
            redact_url_password("postgresql://ads@db/stats?password=hunter2&x=1"),
            "postgresql://ads@db/stats?password=<redacted>&x=1"
        );
        assert_eq!(
            redact_url_password("sqlite://data/a.db"),
            "sqlite://data/a.db"
        );
        assert_eq!(redact_url_password("data/a.db"), "data/a.db");
    }

    #[test]
    fn secret_keys_are_recognised_by_name() {
        for key in [
            "auth.jwt_secret",
            "metrics.bearer_token",
            "dashboard.admin_password_sha256",
            "meta.token_key",
        ] {
            assert!(is_secret(key), "{key}");
        }
        assert!(!is_secret("server.port"));
        assert!(!is_secret("dashboard.admin_user"));
        assert!(!is_secret("auth.max_token_lifetime"));
    }
}
