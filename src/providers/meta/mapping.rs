//! One insights row to our metrics: money from decimal strings to cents without floats, counts from
//! integer strings, and the funnel from `actions` / `action_values`.

use serde::Deserialize;

use crate::config::ActionTypes;
use crate::domain::{Level, Metrics};

/// Why a value of an insights row does not map to our metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("`{0}` is not a whole number")]
    NotWhole(String),
    #[error("`{0}` is not a non-negative decimal amount")]
    NotAmount(String),
    #[error("`{0}` is too large")]
    TooLarge(String),
    /// The field (`spend`, `actions purchase`, …) that held the bad value.
    #[error("{field}: {error}")]
    InField {
        field: String,
        error: Box<MappingError>,
    },
}

impl MappingError {
    fn in_field(self, field: impl Into<String>) -> Self {
        MappingError::InField {
            field: field.into(),
            error: Box::new(self),
        }
    }
}

/// One row of `GET act_{id}/insights` with `time_increment=1`, as far as we read it. Meta sends
/// every number as a string and leaves a field out when it has nothing to count.
#[derive(Debug, Clone, Deserialize)]
pub struct InsightRow {
    #[serde(default)]
    pub campaign_id: Option<String>,
    #[serde(default)]
    pub adset_id: Option<String>,
    #[serde(default)]
    pub ad_id: Option<String>,
    pub date_start: String,
    #[serde(default)]
    pub spend: Option<String>,
    #[serde(default)]
    pub impressions: Option<String>,
    #[serde(default)]
    pub inline_link_clicks: Option<String>,
    #[serde(default)]
    pub actions: Vec<ActionStat>,
    #[serde(default)]
    pub action_values: Vec<ActionStat>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ActionStat {
    pub action_type: String,
    pub value: String,
}

/// The insights `fields` of every request: the three ids (rows are per ad, summed up to the
/// job's level here), the day, and what the funnel needs.
pub const FIELDS: &str =
    "campaign_id,adset_id,ad_id,date_start,spend,impressions,inline_link_clicks,actions,action_values";

/// The row field holding the provider's id of an entity of `level`.
pub fn id_field(level: Level) -> &'static str {
    match level {
        Level::Campaign => "campaign_id",
        Level::Adset => "adset_id",
        Level::Ad => "ad_id",
    }
}

impl InsightRow {
    /// The id of the row's entity at `level`: its ad, or the ad set or campaign the ad is in.
    pub fn entity_external_id(&self, level: Level) -> Option<&str> {
        match level {
            Level::Campaign => self.campaign_id.as_deref(),
            Level::Adset => self.adset_id.as_deref(),
            Level::Ad => self.ad_id.as_deref(),
        }
    }

    /// Our metrics for this row, each funnel step from the first of its `types` present; the
    /// error names the field that does not parse.
    pub fn metrics(&self, types: &ActionTypes) -> Result<Metrics, MappingError> {
        let spend_cents = opt(&self.spend, "spend", parse_cents)?;
        let impressions = opt(&self.impressions, "impressions", parse_count)?;
        let clicks = opt(&self.inline_link_clicks, "inline_link_clicks", parse_count)?;
        let count = |types: &[String]| -> Result<i64, MappingError> {
            match first_present(&self.actions, types) {
                Some(a) => parse_count(&a.value)
                    .map_err(|e| e.in_field(format!("actions {}", a.action_type))),
                None => Ok(0),
            }
        };
        let content_views = count(&types.content_view)?;
        let add_to_cart = count(&types.add_to_cart)?;
        let checkouts = count(&types.checkout)?;
        let purchases = count(&types.purchase)?;
        let revenue_cents = match first_present(&self.action_values, &types.purchase) {
            Some(a) => parse_cents(&a.value)
                .map_err(|e| e.in_field(format!("action_values {}", a.action_type)))?,
            None => 0,
        };
        Ok(Metrics::from_totals(
            spend_cents,
            impressions,
            clicks,
            content_views,
            add_to_cart,
            checkouts,
            purchases,
            revenue_cents,
        ))
    }
}

fn opt(
    value: &Option<String>,
    field: &str,
    parse: fn(&str) -> Result<i64, MappingError>,
) -> Result<i64, MappingError> {
    match value {
        Some(v) => parse(v).map_err(|e| e.in_field(field)),
        None => Ok(0),
    }
}

/// The first of `types` (in the settings' order) that the row reports. Never a sum: Meta's
/// variants of one event overlap (`purchase` already includes the pixel's
/// `offsite_conversion.fb_pixel_purchase`), so adding them would count events twice.
pub fn first_present<'a>(actions: &'a [ActionStat], types: &[String]) -> Option<&'a ActionStat> {
    types
        .iter()
        .find_map(|t| actions.iter().find(|a| a.action_type == *t))
}

/// A non-negative whole number as Meta writes counts ("1234"; "12.0" is taken, "12.5" is not).
pub fn parse_count(text: &str) -> Result<i64, MappingError> {
    let text = text.trim();
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b == b'0')
    {
        return Err(MappingError::NotWhole(text.into()));
    }
    whole
        .parse::<i64>()
        .map_err(|_| MappingError::TooLarge(text.into()))
}

/// A non-negative decimal amount in the account currency ("12.34") in hundredths, exactly: digits
/// are read as digits, never through a float. Beyond two decimals it rounds half up. Spend and
/// purchase value cannot be negative (a refund is not reported this way): a `-` is refused rather
/// than written as money that would subtract from sellpage totals.
pub fn parse_cents(text: &str) -> Result<i64, MappingError> {
    let text = text.trim();
    let bad = || MappingError::NotAmount(text.into());
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let digit = |i: usize| frac.as_bytes().get(i).map_or(0, |b| i64::from(b - b'0'));
    let round_up = i64::from(digit(2) >= 5);
    whole
        .parse::<i64>()
        .ok()
        .and_then(|w| w.checked_mul(100))
        .and_then(|c| c.checked_add(digit(0) * 10 + digit(1) + round_up))
        .ok_or_else(|| MappingError::TooLarge(text.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cents_are_exact() {
        assert_eq!(parse_cents("12.34"), Ok(1234));
        assert_eq!(parse_cents("0.1"), Ok(10));
        assert_eq!(parse_cents("7"), Ok(700));
        assert_eq!(parse_cents("0.29"), Ok(29), "0.29 as f64 * 100 is 28.999…");
        assert_eq!(parse_cents("1.005"), Ok(101));
        assert_eq!(parse_cents("1.0049"), Ok(100));
        assert_eq!(parse_cents("92233720368547758.07"), Ok(i64::MAX));
        for bad in [
            "",
            ".5",
            "1,5",
            "1.2.3",
            "abc",
            "1e3",
            "+1",
            "-2.50",
            "-0",
            "92233720368547758.08",
        ] {
            assert!(parse_cents(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn counts_are_whole() {
        assert_eq!(parse_count("1234"), Ok(1234));
        assert_eq!(parse_count("12.0"), Ok(12));
        for bad in ["12.5", "-1", "", "x"] {
            assert!(parse_count(bad).is_err(), "{bad}");
        }
    }

    fn action(t: &str, v: &str) -> ActionStat {
        ActionStat {
            action_type: t.into(),
            value: v.into(),
        }
    }

    fn defaults() -> ActionTypes {
        crate::config::Settings::defaults_with(|_| {})
            .expect("default settings")
            .meta
            .action_types
    }

    #[test]
    fn the_first_listed_type_present_wins() {
        let actions = vec![
            action("offsite_conversion.fb_pixel_purchase", "3"),
            action("purchase", "4"),
            action("offsite_conversion.fb_pixel_add_to_cart", "9"),
            action("link_click", "50"),
        ];
        let types = defaults();
        let value = |list: &[String]| first_present(&actions, list).map(|a| a.value.as_str());
        assert_eq!(value(&types.purchase), Some("4"));
        assert_eq!(value(&types.add_to_cart), Some("9"));
        assert_eq!(value(&types.content_view), None);
        let pixel_first = vec![
            "offsite_conversion.fb_pixel_purchase".to_string(),
            "purchase".to_string(),
        ];
        assert_eq!(value(&pixel_first), Some("3"));
    }

    #[test]
    fn negative_spend_or_purchase_value_is_refused() {
        let row = |spend: &str, value: &str| InsightRow {
            campaign_id: Some("1".into()),
            adset_id: None,
            ad_id: None,
            date_start: "2026-11-20".into(),
            spend: Some(spend.into()),
            impressions: None,
            inline_link_clicks: None,
            actions: vec![action("purchase", "1")],
            action_values: vec![action("purchase", value)],
        };
        assert_eq!(
            row("1.50", "9.99")
                .metrics(&defaults())
                .unwrap()
                .revenue_cents,
            999
        );
        let e = row("-1.50", "9.99")
            .metrics(&defaults())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("spend: `-1.50`"), "{e}");
        let e = row("1.50", "-9.99")
            .metrics(&defaults())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("action_values purchase"), "{e}");
    }
}
