//! What `ads-stats meta check` asks Meta: the ad account (name, zone, currency, status) and one
//! day of its insights, asked exactly as a sync asks them (`level=ad`, every ad status, unified
//! attribution, `meta.action_report_time`, the configured action types, every page followed,
//! `appsecret_proof` when set), so the totals compare like for like with what the pipeline wrote.
//! It only reads: no verdict (expired, revoked, paused) is recorded, the caller decides what to
//! print.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::{call_error, client, MetaProvider, Totals};
use crate::domain::{AdAccount, Level, Metrics};
use crate::providers::{AccountInfo, FetchRequest, ProviderError, ReportRuns};

/// One account's day as Meta reports it.
#[derive(Debug, Clone)]
pub struct AccountDay {
    pub account: AccountInfo,
    /// The day asked for: the one given, or yesterday in the account's zone as Meta reports it.
    pub date: NaiveDate,
    /// The ads' rows of the day summed per Meta campaign id (every metric we keep adds up).
    pub campaigns: BTreeMap<String, Metrics>,
    /// How many ad rows Meta sent for the day.
    pub ad_rows: usize,
}

impl MetaProvider {
    /// Reads the account, then its ads' rows of `date` (default: yesterday in the zone Meta
    /// reports for the account, which is the day Ads Manager calls yesterday), summed per
    /// campaign. Errors sort as for a sync: `NotConnected` when the connection cannot be asked at
    /// all (no token, no key, a bad account id), the others when Meta did not answer usefully.
    pub async fn account_day(
        &self,
        account: &AdAccount,
        date: Option<NaiveDate>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<AccountDay, ProviderError> {
        let info = self.read_account_info(account).await?;
        let date = match date {
            Some(d) => d,
            None => yesterday_in(&info.timezone, now)?,
        };
        let (token, sealed) = self.token(account)?;
        let request = FetchRequest {
            seller_id: "",
            level: Level::Campaign,
            date_from: date,
            date_to: date,
            entities: &[],
            others: &[],
            accounts: std::slice::from_ref(account),
            report_runs: ReportRuns::default(),
        };
        let url = self.first_page(&request, account)?;
        let proof = self.proof(&token);
        let answer = client::insights(
            &self.http,
            &self.base_url,
            url,
            &token,
            proof.as_deref(),
            self.usage_threshold,
        )
        .await
        .map_err(|e| call_error(account, &sealed, e))?;
        let malformed = |what: String| ProviderError::Malformed(format!("insights row: {what}"));
        let mut sums: BTreeMap<String, Totals> = BTreeMap::new();
        let ad_rows = answer.rows.len();
        for row in answer.rows {
            if row.date_start.trim() != date.format("%Y-%m-%d").to_string() {
                return Err(malformed(format!(
                    "a row for {}, not the day asked for ({date})",
                    row.date_start
                )));
            }
            let campaign = row
                .campaign_id
                .as_deref()
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .ok_or_else(|| malformed("no campaign_id in a level=ad row".into()))?
                .to_string();
            let metrics = row
                .metrics(&self.action_types)
                .map_err(|e| malformed(e.to_string()))?;
            sums.entry(campaign.clone())
                .or_default()
                .add(&metrics)
                .map_err(|()| malformed(format!("the sums of campaign {campaign} overflow")))?;
        }
        Ok(AccountDay {
            account: info,
            date,
            campaigns: sums.into_iter().map(|(k, t)| (k, t.metrics())).collect(),
            ad_rows,
        })
    }
}

/// The day before today in `zone` (an IANA name the account read checked).
fn yesterday_in(
    zone: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<NaiveDate, ProviderError> {
    let tz: chrono_tz::Tz = zone
        .parse()
        .map_err(|_| ProviderError::Malformed(format!("ad account: zone `{zone}`")))?;
    let today = now.with_timezone(&tz).date_naive();
    today
        .pred_opt()
        .ok_or_else(|| ProviderError::Malformed(format!("no day before {today}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn yesterday_is_the_account_zone_s() {
        // 03:00 UTC on 6 December: already the 6th in Tokyo, still the 5th in Los Angeles.
        let now = chrono::Utc.with_ymd_and_hms(2026, 12, 6, 3, 0, 0).unwrap();
        let day = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(yesterday_in("Asia/Tokyo", now).unwrap(), day("2026-12-05"));
        assert_eq!(yesterday_in("UTC", now).unwrap(), day("2026-12-05"));
        assert_eq!(
            yesterday_in("America/Los_Angeles", now).unwrap(),
            day("2026-12-04")
        );
        assert!(yesterday_in("Mars/Base", now).is_err());
    }
}
