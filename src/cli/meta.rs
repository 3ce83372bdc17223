//! `ads-stats meta check`: before trusting a Meta connection's numbers, an operator compares them
//! with Ads Manager. The command reads the ad account and one day of its insights from Meta (asked
//! as a sync asks them, see `providers/meta/check.rs`) and prints them beside the connection's
//! campaign rows in `ad_stats_daily`, with the difference.
//!
//! It only reads: an expired token or a missing permission is printed, not recorded (the next
//! sync records it). Exit 0 when Meta answered, 1 when it did not, 2 for a connection that cannot
//! be checked (unknown, not META, no token). It never prints the token or the app secret.

use clap::Subcommand;
use serde_json::json;

use super::{failed, CommandError};
use crate::config::Settings;
use crate::db;
use crate::db::connection_totals::{self, StoredDay};
use crate::domain::{parse_day, Metrics};
use crate::providers::meta::check::AccountDay;
use crate::providers::meta::META;
use crate::providers::{MetaProvider, ProviderError};

#[derive(Debug, Subcommand)]
pub enum MetaCommand {
    /// Read the ad account (name, zone, currency, status) and a day's totals (spend, impressions,
    /// purchases, revenue) from Meta and print them beside what ad_stats_daily holds for the
    /// connection's campaigns, with the difference. Exit 0 when Meta answered, 1 when not, 2 for
    /// a connection that cannot be checked.
    Check {
        /// The META ad connection to check (its id in ad_connections)
        #[arg(long, value_name = "ID")]
        connection: String,
        /// The day to compare, YYYY-MM-DD (default: yesterday in the account's zone, as Meta
        /// reports it).
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<String>,
        /// Print one JSON object instead of the table (amounts in hundredths).
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(settings: &Settings, command: MetaCommand) -> Result<(), CommandError> {
    match command {
        MetaCommand::Check {
            connection,
            date,
            json,
        } => check(settings, &connection, date.as_deref(), json).await,
    }
}

/// The four numbers compared, in hundredths for money.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Four {
    spend_cents: i64,
    impressions: i64,
    purchases: i64,
    revenue_cents: i64,
}

impl Four {
    fn add(&mut self, m: &Metrics) {
        self.spend_cents = self.spend_cents.saturating_add(m.spend_cents);
        self.impressions = self.impressions.saturating_add(m.impressions);
        self.purchases = self.purchases.saturating_add(m.purchases);
        self.revenue_cents = self.revenue_cents.saturating_add(m.revenue_cents);
    }

    fn minus(self, other: Four) -> Four {
        Four {
            spend_cents: self.spend_cents.saturating_sub(other.spend_cents),
            impressions: self.impressions.saturating_sub(other.impressions),
            purchases: self.purchases.saturating_sub(other.purchases),
            revenue_cents: self.revenue_cents.saturating_sub(other.revenue_cents),
        }
    }

    fn json(self) -> serde_json::Value {
        json!({
            "spendCents": self.spend_cents,
            "impressions": self.impressions,
            "purchases": self.purchases,
            "revenueCents": self.revenue_cents,
        })
    }
}

impl From<StoredDay> for Four {
    fn from(s: StoredDay) -> Self {
        Four {
            spend_cents: s.spend_cents,
            impressions: s.impressions,
            purchases: s.purchases,
            revenue_cents: s.revenue_cents,
        }
    }
}

/// Everything printed, gathered first so the table and the JSON say the same.
struct Report<'a> {
    connection: &'a str,
    account_id: &'a str,
    day: &'a AccountDay,
    date_given: bool,
    /// Meta's totals over the whole account, and the part in campaigns we do not know.
    meta: Four,
    unknown: Four,
    unknown_campaigns: usize,
    stored: Four,
    stored_rows: i64,
    stored_currency: &'a str,
    action_report_time: &'static str,
}

async fn check(
    settings: &Settings,
    connection: &str,
    date: Option<&str>,
    as_json: bool,
) -> Result<(), CommandError> {
    let date = date
        .map(|d| parse_day(d).map_err(|e| CommandError::Usage(format!("--date: {e}"))))
        .transpose()?;
    let provider =
        MetaProvider::new(&settings.meta).map_err(|e| CommandError::Usage(e.to_string()))?;
    let db = super::connection::open(settings).await?;
    // Everything from the database first: the connection goes back to the pool before Meta is
    // asked.
    let (account, stored_currency, known) = {
        let mut conn = db.conn().await.map_err(failed)?;
        let unknown = || CommandError::Usage(format!("no connection with id {connection}"));
        let account = db::connections::account_of(&mut conn, connection)
            .await
            .map_err(failed)?
            .ok_or_else(unknown)?;
        if !account.provider.eq_ignore_ascii_case(META) {
            return Err(CommandError::Usage(format!(
                "connection {connection} is a {} connection; meta check reads META connections only",
                account.provider
            )));
        }
        if account.access_token_enc.is_none() {
            return Err(CommandError::Usage(format!(
                "connection {connection} has no access token; store one with \
                 `ads-stats connection set-token --connection {connection}`"
            )));
        }
        let currency = connection_totals::currency(&mut conn, connection)
            .await
            .map_err(failed)?
            .ok_or_else(unknown)?;
        let known = connection_totals::campaign_external_ids(&mut conn, connection)
            .await
            .map_err(failed)?;
        (account, currency, known)
    };
    let day = provider
        .account_day(&account, date, chrono::Utc::now())
        .await
        .map_err(|e| meta_error(connection, e))?;
    let stored = {
        let mut conn = db.conn().await.map_err(failed)?;
        connection_totals::campaign_day(&mut conn, connection, day.date)
            .await
            .map_err(failed)?
    };
    let (mut meta, mut unknown, mut unknown_campaigns) = (Four::default(), Four::default(), 0);
    for (campaign, m) in &day.campaigns {
        meta.add(m);
        if !known.iter().any(|k| k == campaign) {
            unknown.add(m);
            unknown_campaigns += 1;
        }
    }
    let report = Report {
        connection,
        account_id: &account.external_account_id,
        day: &day,
        date_given: date.is_some(),
        meta,
        unknown,
        unknown_campaigns,
        stored: stored.into(),
        stored_rows: stored.campaign_rows,
        stored_currency: &stored_currency,
        action_report_time: settings.meta.action_report_time.as_str(),
    };
    if as_json {
        println!("{}", report.json());
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

/// Meta's failure as one line: exit 2 when the connection cannot be asked at all, 1 otherwise,
/// with what to do where there is something to do.
fn meta_error(connection: &str, e: ProviderError) -> CommandError {
    let hint = match &e {
        ProviderError::NotConnected { .. } | ProviderError::Settings(_) => {
            return CommandError::Usage(one_line(&e.to_string()));
        }
        ProviderError::TokenExpired { .. } => format!(
            "; store a new token with `ads-stats connection set-token --connection {connection}`"
        ),
        ProviderError::PermissionDenied { .. } => {
            "; the token needs ads_read on this ad account (see docs/DEPLOY.md)".to_string()
        }
        ProviderError::Throttled { .. }
        | ProviderError::AppThrottled { .. }
        | ProviderError::RateLimited(_) => "; try again later".to_string(),
        _ => String::new(),
    };
    CommandError::Failed(one_line(&format!("Meta did not answer: {e}{hint}")))
}

/// Meta's messages may hold line breaks; an error is one line on stderr.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Hundredths as an amount with two decimals and the currency code: 123400 JPY → `1234.00 JPY`.
fn money(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02} {currency}", abs / 100, abs % 100)
}

impl Report<'_> {
    /// `ACTIVE`, or why the account cannot run ads (e.g. `account_status 2 (DISABLED)`).
    fn status(&self) -> &str {
        self.day
            .account
            .inactive_reason
            .as_deref()
            .unwrap_or("ACTIVE")
    }

    fn table(&self) -> String {
        let info = &self.day.account;
        let currency = info.currency.as_str();
        let stored_currency = self.stored_currency;
        let diff = self.stored.minus(self.meta);
        let name = info
            .name
            .as_deref()
            .map(|n| format!(" \"{n}\""))
            .unwrap_or_default();
        let status = match info.inactive_reason {
            None => "ACTIVE (account_status 1)",
            Some(_) => self.status(),
        };
        let mut out = format!(
            "connection {}: Meta ad account {}{name}\n  zone {}, currency {}, status {status}\n",
            self.connection, self.account_id, info.timezone, currency,
        );
        let which = if self.date_given {
            "as given"
        } else {
            "yesterday in the account's zone"
        };
        out.push_str(&format!(
            "day {} ({which}); Meta asked as a sync asks: level=ad rows summed, unified attribution, action_report_time={}\n\n",
            self.day.date, self.action_report_time
        ));
        let line = |name: &str, a: String, b: String, c: String| {
            format!("{name:<13}{a:>20}{b:>20}{c:>20}\n")
        };
        out.push_str(&line(
            "",
            "Meta".into(),
            "stored".into(),
            "stored - Meta".into(),
        ));
        let (m, s) = (self.meta, self.stored);
        out.push_str(&line(
            "spend",
            money(m.spend_cents, currency),
            money(s.spend_cents, stored_currency),
            money(diff.spend_cents, currency),
        ));
        out.push_str(&line(
            "impressions",
            m.impressions.to_string(),
            s.impressions.to_string(),
            diff.impressions.to_string(),
        ));
        out.push_str(&line(
            "purchases",
            m.purchases.to_string(),
            s.purchases.to_string(),
            diff.purchases.to_string(),
        ));
        out.push_str(&line(
            "revenue",
            money(m.revenue_cents, currency),
            money(s.revenue_cents, stored_currency),
            money(diff.revenue_cents, currency),
        ));
        out.push_str(&format!(
            "\nMeta: {} ad rows for the account; stored: {} campaign rows in ad_stats_daily.\n",
            self.day.ad_rows, self.stored_rows
        ));
        if self.unknown_campaigns > 0 {
            out.push_str(&format!(
                "Meta campaigns with no external_id on this connection: {} (spend {}, {} purchases); a sync leaves them out.\n",
                self.unknown_campaigns,
                money(self.unknown.spend_cents, currency),
                self.unknown.purchases
            ));
        }
        if stored_currency != currency {
            out.push_str(&format!(
                "note: the stored amounts are in {stored_currency}, Meta reports {currency}; the next account read stores Meta's currency, later syncs write it.\n"
            ));
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        let info = &self.day.account;
        json!({
            "connection": self.connection,
            "account": {
                "id": self.account_id,
                "name": info.name,
                "timezone": info.timezone,
                "currency": info.currency,
                "active": info.inactive_reason.is_none(),
                "status": self.status(),
            },
            "date": self.day.date.to_string(),
            "dateIsYesterday": !self.date_given,
            "actionReportTime": self.action_report_time,
            "meta": with(self.meta.json(), "adRows", self.day.ad_rows as i64),
            "metaUnknownCampaigns": with(self.unknown.json(), "campaigns", self.unknown_campaigns as i64),
            "stored": with(
                with(self.stored.json(), "campaignRows", self.stored_rows),
                "currency",
                self.stored_currency,
            ),
            "difference": self.stored.minus(self.meta).json(),
        })
    }
}

fn with(
    mut object: serde_json::Value,
    key: &str,
    value: impl Into<serde_json::Value>,
) -> serde_json::Value {
    object[key] = value.into();
    object
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_has_two_decimals_and_a_sign() {
        assert_eq!(money(123_400, "JPY"), "1234.00 JPY");
        assert_eq!(money(5, "EUR"), "0.05 EUR");
        assert_eq!(money(-5, "EUR"), "-0.05 EUR");
        assert_eq!(money(-123_456, "USD"), "-1234.56 USD");
        assert_eq!(money(0, "USD"), "0.00 USD");
        assert_eq!(money(i64::MIN, "USD"), "-92233720368547758.08 USD");
    }

    #[test]
    fn errors_are_one_line() {
        assert_eq!(
            one_line("code 190:\n  Error\r\nvalidating"),
            "code 190: Error validating"
        );
    }
}
