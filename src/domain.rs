//! The vocabulary every part shares: levels, metric bundles and how ratios derive from totals.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The most days one sync job may cover (a quarter); longer ranges are split by the caller.
pub const MAX_RANGE_DAYS: i64 = 93;

/// The current time as stored in every timestamp column: UTC, microsecond precision (what
/// PostgreSQL keeps), so a value written and read back compares equal on both backends.
pub fn now_utc() -> chrono::NaiveDateTime {
    use chrono::{SubsecRound, Utc};
    Utc::now().naive_utc().trunc_subsecs(6)
}

/// How raw rows fold into a daily row (`stats.aggregation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregation {
    /// Daily = sum of the day's raw rows.
    Sum,
    /// Daily = the latest raw row (providers reporting day-to-date totals).
    Latest,
}

/// Where in the ad hierarchy a stats row belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    Campaign,
    Adset,
    Ad,
}

impl Level {
    /// In the order a full sync runs them.
    pub const ALL: [Level; 3] = [Level::Campaign, Level::Adset, Level::Ad];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Campaign => "CAMPAIGN",
            Level::Adset => "ADSET",
            Level::Ad => "AD",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "CAMPAIGN" => Ok(Level::Campaign),
            "ADSET" => Ok(Level::Adset),
            "AD" => Ok(Level::Ad),
            _ => Err(format!("unknown level `{s}` (use CAMPAIGN, ADSET or AD)")),
        }
    }
}

/// Parses a calendar date written exactly `YYYY-MM-DD`.
pub fn parse_day(text: &str) -> Result<chrono::NaiveDate, String> {
    let shaped = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shaped {
        return Err(format!("`{text}` is not a date in YYYY-MM-DD form"));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("{text} is not a day of the calendar"))
}

/// Checks an ad account id (`ad_connections.external_account_id`) against Meta's shape,
/// `^(act_)?[0-9]+$`. The id goes into the Graph API's URL path: anything else (a `/`, `..`, `?`,
/// `#`) could point a request, and the account's token, at another endpoint.
pub fn check_account_id(id: &str) -> Result<(), String> {
    let digits = id.strip_prefix("act_").unwrap_or(id);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!(
            "account id {id:?} is not an ad account id (digits, optionally after `act_`)"
        ))
    }
}

/// An entity that delivers, with the daily budget the provider should assume for it (the mock),
/// the connection (ad account) it runs under and the provider's own id for it (Meta).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityBudget {
    pub entity_id: String,
    pub daily_budget_cents: i64,
    pub connection_id: String,
    /// `campaigns/adsets/ads.external_id`; `None` when no provider id is recorded.
    pub external_id: Option<String>,
}

/// A seller's link to a provider's ad account, as a sync needs it. The access token stays sealed
/// here; only the provider that uses it opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdAccount {
    pub connection_id: String,
    /// `META`, …
    pub provider: String,
    /// The provider's account id, with or without `act_`.
    pub external_account_id: String,
    /// base64(nonce || ciphertext || tag), see `crate::crypto`.
    pub access_token_enc: Option<String>,
    /// IANA zone the provider reports the account's days in.
    pub timezone: String,
    /// No request for this account before this time (UTC), set from the provider's usage headers.
    pub paused_until: Option<chrono::NaiveDateTime>,
    /// When the provider's account read (zone, currency, status) is due; `None`: not scheduled.
    pub account_read_due_at: Option<chrono::NaiveDateTime>,
}

/// The funnel counts and money of one reading, plus the ratios derived from them.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Metrics {
    pub spend_cents: i64,
    pub impressions: i64,
    pub clicks: i64,
    pub content_views: i64,
    pub add_to_cart: i64,
    pub checkouts: i64,
    pub purchases: i64,
    pub revenue_cents: i64,
    pub cpm: f64,
    pub ctr: f64,
    pub roas: f64,
}

impl Metrics {
    /// Builds metrics from totals, deriving the ratios (never averaging them).
    #[allow(clippy::too_many_arguments)]
    pub fn from_totals(
        spend_cents: i64,
        impressions: i64,
        clicks: i64,
        content_views: i64,
        add_to_cart: i64,
        checkouts: i64,
        purchases: i64,
        revenue_cents: i64,
    ) -> Self {
        let (cpm, ctr, roas) = ratios(spend_cents, impressions, clicks, revenue_cents);
        Self {
            spend_cents,
            impressions,
            clicks,
            content_views,
            add_to_cart,
            checkouts,
            purchases,
            revenue_cents,
            cpm,
            ctr,
            roas,
        }
    }
}

/// cpm = spend in dollars per thousand impressions; ctr = clicks per impression in percent;
/// roas = revenue per unit of spend. Each is 0 when its denominator is 0. Evaluates
/// [`Ratio::ALL`], the one definition the SQL that folds daily rows is also derived from.
pub fn ratios(
    spend_cents: i64,
    impressions: i64,
    clicks: i64,
    revenue_cents: i64,
) -> (f64, f64, f64) {
    let total = |t: Total| match t {
        Total::SpendCents => spend_cents,
        Total::Impressions => impressions,
        Total::Clicks => clicks,
        Total::RevenueCents => revenue_cents,
    };
    let [cpm, ctr, roas] = Ratio::ALL.map(|r| r.of(total(r.numerator), total(r.denominator)));
    (cpm, ctr, roas)
}

/// A total a ratio derives from, named as its column is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    SpendCents,
    Impressions,
    Clicks,
    RevenueCents,
}

impl Total {
    /// The column of the stats tables holding this total.
    pub fn column(self) -> &'static str {
        match self {
            Total::SpendCents => "spend_cents",
            Total::Impressions => "impressions",
            Total::Clicks => "clicks",
            Total::RevenueCents => "revenue_cents",
        }
    }
}

/// One ratio derived from totals: `numerator / unit / denominator * scale`, in that order, and 0
/// when the denominator is 0. Rust ([`Ratio::of`]) and SQL ([`Ratio::sql`]) evaluate the same
/// operations in the same order, so a ratio read back from the database equals, to the bit, the
/// one computed here (tests compare them bit for bit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ratio {
    /// The column holding it (`cpm`, `ctr`, `roas`).
    pub name: &'static str,
    pub numerator: Total,
    /// Divides the numerator first (cents to dollars: 100), or 1.
    pub unit: f64,
    pub denominator: Total,
    /// Multiplies the quotient last (per thousand: 1000; percent: 100), or 1.
    pub scale: f64,
}

impl Ratio {
    pub const CPM: Ratio = Ratio {
        name: "cpm",
        numerator: Total::SpendCents,
        unit: 100.0,
        denominator: Total::Impressions,
        scale: 1000.0,
    };
    pub const CTR: Ratio = Ratio {
        name: "ctr",
        numerator: Total::Clicks,
        unit: 1.0,
        denominator: Total::Impressions,
        scale: 100.0,
    };
    pub const ROAS: Ratio = Ratio {
        name: "roas",
        numerator: Total::RevenueCents,
        unit: 1.0,
        denominator: Total::SpendCents,
        scale: 1.0,
    };
    /// In the order of the stats tables' columns.
    pub const ALL: [Ratio; 3] = [Ratio::CPM, Ratio::CTR, Ratio::ROAS];

    /// The ratio of two totals. Dividing or multiplying by 1 is exact in floating point, so the
    /// steps the SQL leaves out change nothing.
    pub fn of(&self, numerator: i64, denominator: i64) -> f64 {
        if denominator == 0 {
            0.0
        } else {
            numerator as f64 / self.unit / denominator as f64 * self.scale
        }
    }

    /// The same ratio as an SQL expression over the totals `total` writes (a column, or an
    /// expression such as a sum), computed in double precision on both backends; a unit or
    /// scale of 1 is left out.
    pub fn sql(&self, total: impl Fn(Total) -> String) -> String {
        let real = |t: Total| format!("CAST({} AS DOUBLE PRECISION)", total(t));
        // `{:?}` writes 100.0, not 100: a real literal, never integer arithmetic.
        let step = |op: &str, x: f64| {
            if x == 1.0 {
                String::new()
            } else {
                format!(" {op} {x:?}")
            }
        };
        format!(
            "CASE WHEN {} = 0 THEN 0.0 ELSE {}{} / {}{} END",
            total(self.denominator),
            real(self.numerator),
            step("/", self.unit),
            real(self.denominator),
            step("*", self.scale),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_round_trip() {
        for level in Level::ALL {
            assert_eq!(level.as_str().parse::<Level>(), Ok(level));
        }
        assert_eq!("adset".parse::<Level>(), Ok(Level::Adset));
        assert!("KEYWORD".parse::<Level>().is_err());
    }

    #[test]
    fn ratio_sql_is_the_rust_formula_in_the_same_order() {
        let sql: Vec<String> = Ratio::ALL
            .iter()
            .map(|r| r.sql(|t| t.column().to_string()))
            .collect();
        assert_eq!(
            sql,
            [
                "CASE WHEN impressions = 0 THEN 0.0 ELSE CAST(spend_cents AS DOUBLE PRECISION) / 100.0 / CAST(impressions AS DOUBLE PRECISION) * 1000.0 END",
                "CASE WHEN impressions = 0 THEN 0.0 ELSE CAST(clicks AS DOUBLE PRECISION) / CAST(impressions AS DOUBLE PRECISION) * 100.0 END",
                "CASE WHEN spend_cents = 0 THEN 0.0 ELSE CAST(revenue_cents AS DOUBLE PRECISION) / CAST(spend_cents AS DOUBLE PRECISION) END",
            ]
        );
    }

    #[test]
    fn ratios_keep_the_operation_order_to_the_bit() {
        // The formulas as written before the table, step by step.
        for (s, i, c, r) in [
            (850, 1000, 20, 1700),
            (1, 3, 1, 7),
            (123_457, 999_983, 4_271, 98_765),
        ] {
            let (cpm, ctr, roas) = ratios(s, i, c, r);
            let (s, i, c, r) = (s as f64, i as f64, c as f64, r as f64);
            assert_eq!(cpm.to_bits(), (s / 100.0 / i * 1000.0).to_bits());
            assert_eq!(ctr.to_bits(), (c / i * 100.0).to_bits());
            assert_eq!(roas.to_bits(), (r / s).to_bits());
        }
    }

    #[test]
    fn ratios_are_zero_without_denominator() {
        assert_eq!(ratios(0, 0, 0, 0), (0.0, 0.0, 0.0));
        let (cpm, ctr, roas) = ratios(850, 1000, 20, 1700);
        assert_eq!(cpm, 8.5);
        assert_eq!(ctr, 2.0);
        assert_eq!(roas, 2.0);
    }

    #[test]
    fn account_ids_are_digits_with_an_optional_act_prefix() {
        for ok in ["act_1001", "1001", "act_0"] {
            assert!(check_account_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "act_",
            "act_s1",
            "1/../../../me/accounts?fields=access_token#",
            " 1001",
            "1001 ",
            "act_1001/x",
            "ACT_1001",
            "１２",
        ] {
            assert!(check_account_id(bad).is_err(), "{bad:?}");
        }
    }
}
