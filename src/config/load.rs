//! Loading: the compiled-in defaults, then `config/default.toml`, `config/{env}.toml`, an optional
//! `--config` file and the environment, later wins; then one check of the result.

use std::path::Path;

use figment::providers::{Env, Format, Toml};
use figment::Figment;

use super::{default_lookback_days, ConfigError, ProviderKind, Settings};

pub(super) const DEFAULT_TOML: &str = include_str!("../../config/default.toml");
const ENV_PREFIX: &str = "ADS_STATS_";

impl Settings {
    /// Loads settings the way the binary does: files under `ADS_STATS_CONFIG_DIR` (default `config`),
    /// the optional `--config` file, then the process environment.
    pub fn load(explicit_file: Option<&Path>) -> Result<Self, ConfigError> {
        let (figment, environment) = Self::layers(explicit_file)?;
        Self::from_figment(figment, environment)
    }

    /// Every layer [`Settings::load`] reads, merged but not yet checked, with the environment
    /// name; `ads-stats config` asks it where each value came from.
    pub fn layers(explicit_file: Option<&Path>) -> Result<(Figment, String), ConfigError> {
        let environment = std::env::var("ADS_STATS_ENV").unwrap_or_else(|_| "development".into());
        let dir = std::env::var("ADS_STATS_CONFIG_DIR").unwrap_or_else(|_| "config".into());
        let dir = Path::new(&dir);

        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        figment = figment.merge(Toml::file(dir.join("default.toml")));
        figment = figment.merge(Toml::file(dir.join(format!("{environment}.toml"))));
        if let Some(file) = explicit_file {
            if !file.is_file() {
                return Err(ConfigError::new(
                    "--config",
                    format!("file {} does not exist", file.display()),
                ));
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment
            .merge(
                Env::raw()
                    .only(&["DATABASE_URL"])
                    .map(|_| "database.url".into()),
            )
            .merge(
                Env::raw()
                    .only(&["JWT_SECRET"])
                    .map(|_| "auth.jwt_secret".into()),
            )
            .merge(Env::raw().only(&["PORT"]).map(|_| "server.port".into()))
            .merge(
                Env::prefixed(ENV_PREFIX)
                    .ignore(&["ENV", "CONFIG_DIR"])
                    .split("__"),
            );
        Ok((with_provider_defaults(figment), environment))
    }

    /// Settings from the compiled-in defaults only, adjusted in code (tests, tools).
    pub fn defaults_with(adjust: impl FnOnce(&mut Settings)) -> Result<Self, ConfigError> {
        let mut settings =
            Self::from_figment(Figment::from(Toml::string(DEFAULT_TOML)), "test".into())?;
        adjust(&mut settings);
        settings.validate()?;
        Ok(settings)
    }

    fn from_figment(figment: Figment, environment: String) -> Result<Self, ConfigError> {
        let mut settings: Settings = figment.extract().map_err(figment_error)?;
        settings.environment = environment;
        settings.validate()?;
        Ok(settings)
    }
}

/// Fills in the settings whose default depends on another one (`stats.lookback_days` on
/// `provider`) where no layer set them, so `ads-stats config` prints the value the service runs
/// with. An invalid `provider` is left for extraction to report.
fn with_provider_defaults(figment: Figment) -> Figment {
    if figment.find_value("stats.lookback_days").is_ok() {
        return figment;
    }
    let Ok(provider) = figment.extract_inner::<ProviderKind>("provider") else {
        return figment;
    };
    figment.join(figment::providers::Serialized::default(
        "stats.lookback_days",
        default_lookback_days(provider),
    ))
}

pub(super) fn figment_error(error: figment::Error) -> ConfigError {
    use figment::error::Kind;
    let mut path = error.path.clone();
    let problem = match &error.kind {
        Kind::UnknownField(field, _) => {
            if path.last() != Some(field) {
                path.push(field.clone());
            }
            "is not a known key".to_string()
        }
        Kind::MissingField(field) => {
            if path.last().map(String::as_str) != Some(field.as_ref()) {
                path.push(field.to_string());
            }
            "is missing".to_string()
        }
        other => other.to_string(),
    };
    let key = if path.is_empty() {
        "config".to_string()
    } else {
        path.join(".")
    };
    let source = match &error.metadata {
        Some(meta) => match &meta.source {
            Some(source) => format!(" (from {source})"),
            None => format!(" (from {})", meta.name),
        },
        None => String::new(),
    };
    ConfigError::new(key, format!("{problem}{source}"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{Aggregation, Secret, REAL_SECRET};

    #[test]
    fn compiled_in_defaults_are_valid() {
        let s = Settings::defaults_with(|_| {}).expect("defaults load");
        assert_eq!(s.server.port, 3000);
        assert_eq!(s.jobs.concurrency, 5);
        assert_eq!(s.jobs.max_in_flight, 500);
        assert_eq!(s.jobs.in_flight(), 500);
        assert_eq!(s.jobs.max_provider_requests, 50);
        assert_eq!(s.jobs.provider_requests(), 50);
        assert_eq!(s.stats.aggregation, Aggregation::Sum);
        assert_eq!(s.jobs.timeout, Duration::from_secs(300));
    }

    #[test]
    fn lookback_days_defaults_by_provider_and_an_explicit_value_wins() {
        let meta = |s: &mut Settings| {
            s.provider = ProviderKind::Meta;
            s.stats.aggregation = Aggregation::Latest;
        };
        // A Meta service with every other setting at its default starts, with 28 days.
        let s = Settings::defaults_with(meta).unwrap();
        assert_eq!(s.lookback_days(), 28);
        let s = Settings::defaults_with(|s| {
            meta(s);
            s.stats.lookback_days = Some(0);
        })
        .unwrap();
        assert_eq!(
            s.lookback_days(),
            0,
            "an explicit 0 turns Meta's lookback off"
        );
        let s = Settings::defaults_with(|s| {
            meta(s);
            s.stats.lookback_days = Some(7);
        })
        .unwrap();
        assert_eq!(s.lookback_days(), 7);
        // Meta under `sum` is refused naming the aggregation, not the lookback it implies.
        let err = Settings::defaults_with(|s| s.provider = ProviderKind::Meta).unwrap_err();
        assert_eq!(err.key, "stats.aggregation");

        // Loading resolves the default into the layers, so `ads-stats config` shows it.
        let layered = |toml: &str| {
            let figment = with_provider_defaults(
                Figment::from(Toml::string(DEFAULT_TOML)).merge(Toml::string(toml)),
            );
            figment.extract_inner::<u32>("stats.lookback_days").unwrap()
        };
        assert_eq!(layered(""), 0);
        assert_eq!(
            layered("provider = \"meta\"\n[stats]\naggregation = \"latest\"\n"),
            28
        );
        assert_eq!(
            layered("provider = \"meta\"\n[stats]\naggregation = \"latest\"\nlookback_days = 3\n"),
            3
        );
        assert_eq!(layered("[stats]\nlookback_days = 5\n"), 5);
    }

    #[test]
    fn every_file_in_config_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("config dir") {
            let path = entry.expect("entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                continue;
            }
            seen += 1;
            let figment = Figment::from(Toml::string(DEFAULT_TOML)).merge(Toml::file(&path));
            let mut settings: Settings = figment
                .extract()
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
            settings.auth.jwt_secret = Secret::new(REAL_SECRET);
            settings
                .validate()
                .unwrap_or_else(|e| panic!("{} is invalid: {e}", path.display()));
        }
        assert!(seen >= 2, "expected default.toml and production.toml");
    }

    #[test]
    fn figment_errors_name_the_key() {
        let figment = Figment::from(Toml::string(DEFAULT_TOML))
            .merge(Toml::string("[jobs]\nconcurency = 3\n"));
        let err = figment
            .extract::<Settings>()
            .map_err(figment_error)
            .unwrap_err();
        assert_eq!(err.key, "jobs.concurency");

        let figment = Figment::from(Toml::string(DEFAULT_TOML))
            .merge(Toml::string("[server]\nport = 70000\n"));
        let err = figment
            .extract::<Settings>()
            .map_err(figment_error)
            .unwrap_err();
        assert_eq!(err.key, "server.port");

        let figment = Figment::from(Toml::string(DEFAULT_TOML))
            .merge(Toml::string("[stats]\naggregation = \"avg\"\n"));
        let err = figment
            .extract::<Settings>()
            .map_err(figment_error)
            .unwrap_err();
        assert_eq!(err.key, "stats.aggregation");
    }
}
