//! The settings that decide which Meta numbers we keep: when an action is reported
//! (`meta.action_report_time`) and which action types count as each funnel step
//! (`meta.action_types.*`). They live apart from the connection settings because they change the
//! numbers, not how they are fetched.

use serde::{Deserialize, Deserializer};

use super::ConfigError;

/// Meta's `action_report_time`: whether a conversion is counted on the day of the ad impression,
/// on the day of the conversion, or `mixed` (Ads Manager's default: clicks and views on the
/// impression day, other conversions on the conversion day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionReportTime {
    Impression,
    Conversion,
    Mixed,
}

impl ActionReportTime {
    /// The value Meta's API takes.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionReportTime::Impression => "impression",
            ActionReportTime::Conversion => "conversion",
            ActionReportTime::Mixed => "mixed",
        }
    }
}

/// The action types behind each funnel step, each an ordered list: the first type present in an
/// insights row gives the step's number (never a sum: Meta's variants of one event overlap).
/// `purchase` also picks the revenue from `action_values`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionTypes {
    #[serde(deserialize_with = "string_list")]
    pub content_view: Vec<String>,
    #[serde(deserialize_with = "string_list")]
    pub add_to_cart: Vec<String>,
    #[serde(deserialize_with = "string_list")]
    pub checkout: Vec<String>,
    #[serde(deserialize_with = "string_list")]
    pub purchase: Vec<String>,
}

impl ActionTypes {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (key, list) in [
            ("content_view", &self.content_view),
            ("add_to_cart", &self.add_to_cart),
            ("checkout", &self.checkout),
            ("purchase", &self.purchase),
        ] {
            if list.is_empty() || list.iter().any(|t| t.is_empty()) {
                return Err(ConfigError::new(
                    format!("meta.action_types.{key}"),
                    "must list one or more action types, e.g. [\"purchase\"]",
                ));
            }
        }
        Ok(())
    }
}

/// A list of names from a TOML array, or from one comma-separated string (the environment's
/// form: `ADS_STATS_META__ACTION_TYPES__PURCHASE=purchase,omni_purchase`). Entries are trimmed.
fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        List(Vec<String>),
        Text(String),
    }
    let items = match Form::deserialize(d)? {
        Form::List(items) => items,
        Form::Text(text) => text.split(',').map(str::to_string).collect(),
    };
    Ok(items.into_iter().map(|s| s.trim().to_string()).collect())
}

#[cfg(test)]
mod tests {
    use figment::providers::{Format, Toml};
    use figment::Figment;

    use super::*;
    use crate::config::load::{figment_error, DEFAULT_TOML};
    use crate::config::Settings;

    fn load(extra: &str) -> Result<Settings, ConfigError> {
        let figment = Figment::from(Toml::string(DEFAULT_TOML)).merge(Toml::string(extra));
        let settings: Settings = figment.extract().map_err(figment_error)?;
        settings.validate()?;
        Ok(settings)
    }

    #[test]
    fn defaults_are_mixed_and_todays_action_types() {
        let meta = load("").unwrap().meta;
        assert_eq!(meta.action_report_time, ActionReportTime::Mixed);
        assert_eq!(
            meta.action_types.purchase,
            ["purchase", "offsite_conversion.fb_pixel_purchase"]
        );
        assert_eq!(meta.app_secret.expose(), "");
    }

    #[test]
    fn an_unknown_report_time_names_the_key() {
        let err = load("[meta]\naction_report_time = \"lifetime_x\"\n").unwrap_err();
        assert_eq!(err.key, "meta.action_report_time");
        for ok in ["impression", "conversion", "mixed"] {
            let meta = load(&format!("[meta]\naction_report_time = \"{ok}\"\n"))
                .unwrap()
                .meta;
            assert_eq!(meta.action_report_time.as_str(), ok);
        }
    }

    #[test]
    fn lists_come_as_arrays_or_comma_separated_text() {
        let meta = load("[meta.action_types]\npurchase = \" omni_purchase , purchase\"\n")
            .unwrap()
            .meta;
        assert_eq!(meta.action_types.purchase, ["omni_purchase", "purchase"]);
        // The other lists keep their defaults.
        assert_eq!(meta.action_types.checkout[0], "initiate_checkout");
        let err = load("[meta.action_types]\ncheckout = []\n").unwrap_err();
        assert_eq!(err.key, "meta.action_types.checkout");
        let err = load("[meta.action_types]\nadd_to_cart = \"a,,b\"\n").unwrap_err();
        assert_eq!(err.key, "meta.action_types.add_to_cart");
    }

    #[test]
    fn async_run_settings_default_and_are_checked() {
        let meta = load("").unwrap().meta;
        assert_eq!(meta.async_after_days, 7);
        assert_eq!(meta.async_timeout, std::time::Duration::from_secs(600));
        let meta = load("[meta]\nasync_after_days = 1\nasync_timeout = \"90s\"\n")
            .unwrap()
            .meta;
        assert_eq!(
            (meta.async_after_days, meta.async_timeout.as_secs()),
            (1, 90)
        );
        for (extra, key) in [
            ("async_after_days = 0", "meta.async_after_days"),
            ("async_timeout = \"0s\"", "meta.async_timeout"),
            ("async_poll_interval = \"0s\"", "meta.async_poll_interval"),
        ] {
            assert_eq!(load(&format!("[meta]\n{extra}\n")).unwrap_err().key, key);
        }
        assert!(load("[meta]\nasync_timeout = \"soon\"\n").is_err());
    }

    #[test]
    fn the_environment_form_is_one_text_value() {
        // What `ADS_STATS_META__ACTION_TYPES__PURCHASE=omni_purchase,purchase` gives figment:
        // one string at the nested key (read without touching the process environment, which
        // tests running in parallel share).
        let figment = Figment::from(Toml::string(DEFAULT_TOML))
            .merge(("meta.action_types.purchase", "omni_purchase,purchase"));
        let settings: Settings = figment.extract().map_err(figment_error).unwrap();
        assert_eq!(
            settings.meta.action_types.purchase,
            ["omni_purchase", "purchase"]
        );
    }
}
