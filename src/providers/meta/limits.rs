//! Meta's rate limits as it reports them: usage headers in percent of the allowance, with the time
//! until access is regained, and the error codes that mean "throttled".

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

pub const BUSINESS_USE_CASE_USAGE: &str = "x-business-use-case-usage";
pub const AD_ACCOUNT_USAGE: &str = "x-ad-account-usage";
pub const APP_USAGE: &str = "x-app-usage";
pub const INSIGHTS_THROTTLE: &str = "x-fb-ads-insights-throttle";

/// The highest usage figure a response reported, and how long Meta says until it drops.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Usage {
    /// Percent of the allowance (`call_count`, `total_cputime`, `total_time`, `acc_id_util_pct`).
    pub percent: f64,
    /// `estimated_time_to_regain_access` (minutes) or `reset_time_duration` (seconds), the longer.
    pub regain_after: Duration,
}

impl Usage {
    /// Reads the four headers; a header that is missing or not the documented JSON counts as no usage
    /// (a shape change must not stop syncs, and the error codes still protect us).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut usage = Usage::default();
        let json = |name: &str| -> Option<Value> {
            serde_json::from_slice(headers.get(name)?.as_bytes()).ok()
        };
        // {"<business id>": [{"type": "ads_insights", "call_count": 28, "total_cputime": 25,
        //   "total_time": 25, "estimated_time_to_regain_access": 0}, …]}
        if let Some(Value::Object(businesses)) = json(BUSINESS_USE_CASE_USAGE) {
            for entry in businesses.values().filter_map(Value::as_array).flatten() {
                for key in ["call_count", "total_cputime", "total_time"] {
                    usage.raise(number(entry.get(key)));
                }
                let minutes = number(entry.get("estimated_time_to_regain_access"));
                usage.wait(seconds(minutes * 60.0));
            }
        }
        // {"acc_id_util_pct": 9.67, "reset_time_duration": 0, "ads_api_access_tier": "…"}
        if let Some(account) = json(AD_ACCOUNT_USAGE) {
            usage.raise(number(account.get("acc_id_util_pct")));
            let seconds = number(account.get("reset_time_duration"));
            usage.wait(self::seconds(seconds));
        }
        // The app's own platform rate limit: {"call_count": 28, "total_cputime": 25,
        //   "total_time": 25} (no time to regain access is announced).
        if let Some(app) = json(APP_USAGE) {
            for key in ["call_count", "total_cputime", "total_time"] {
                usage.raise(number(app.get(key)));
            }
        }
        // Insights throttling: {"app_id_util_pct": 100, "acc_id_util_pct": 10,
        //   "ads_api_access_tier": "standard_access"}.
        if let Some(throttle) = json(INSIGHTS_THROTTLE) {
            for key in ["app_id_util_pct", "acc_id_util_pct"] {
                usage.raise(number(throttle.get(key)));
            }
        }
        usage
    }

    fn raise(&mut self, percent: f64) {
        if percent.is_finite() && percent > self.percent {
            self.percent = percent;
        }
    }

    fn wait(&mut self, d: Duration) {
        self.regain_after = self.regain_after.max(d.min(MAX_PAUSE));
    }

    /// How long the account should pause: when usage passed `threshold`, at least [`MIN_PAUSE`]
    /// (Meta may announce 0 while already near the limit); otherwise only what Meta announced.
    pub fn pause(&self, threshold: f64) -> Option<Duration> {
        if self.percent >= threshold {
            Some(self.regain_after.max(MIN_PAUSE))
        } else if !self.regain_after.is_zero() {
            Some(self.regain_after)
        } else {
            None
        }
    }
}

/// The shortest pause once usage passed the threshold and Meta announced no time.
pub const MIN_PAUSE: Duration = Duration::from_secs(60);
/// A pause is never taken longer than a day, whatever a header says.
const MAX_PAUSE: Duration = Duration::from_secs(24 * 3600);

/// A header's wait in seconds as a duration: negative or NaN is none, anything past a day (even
/// `inf` or 1e300, which `Duration::from_secs_f64` would panic on) is a day.
fn seconds(s: f64) -> Duration {
    if s.is_nan() || s <= 0.0 {
        Duration::ZERO
    } else {
        Duration::try_from_secs_f64(s).map_or(MAX_PAUSE, |d| d.min(MAX_PAUSE))
    }
}

fn number(v: Option<&Value>) -> f64 {
    match v {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// Error codes Meta uses for throttling: application (4), user (17), a specific call (613) and
/// the business use case limits (80000–80014, 80000 being ads insights).
pub fn is_throttling(code: i64) -> bool {
    matches!(code, 4 | 17 | 613 | 80000..=80014)
}

/// Meta's codes for temporary trouble on its side ("unknown error", "service unavailable").
pub fn is_transient(code: i64) -> bool {
    matches!(code, 1 | 2)
}

/// Expired, revoked or otherwise invalid access token.
pub const TOKEN_INVALID: i64 = 190;

/// Meta's application-level request limit: it applies to every account the app reads.
pub const APP_LIMIT: i64 = 4;

/// The token lacks a permission on the object: code 10 (permission denied), 200–299 (permission
/// errors such as 200 "requires ads_read", 294 "manage advertisements"), and 100 with subcode 33
/// ("object does not exist, cannot be loaded due to missing permissions"). Only a new grant (and
/// `set-token`) helps.
pub fn is_permission_error(code: i64, subcode: Option<i64>) -> bool {
    matches!(code, 10 | 200..=299) || (code == 100 && subcode == Some(33))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn reads_the_highest_figure_and_the_longest_wait() {
        let h = headers(&[
            (
                BUSINESS_USE_CASE_USAGE,
                r#"{"123":[{"type":"ads_insights","call_count":28,"total_cputime":91,"total_time":40,"estimated_time_to_regain_access":2}]}"#,
            ),
            (
                AD_ACCOUNT_USAGE,
                r#"{"acc_id_util_pct":9.67,"reset_time_duration":30}"#,
            ),
        ]);
        let u = Usage::from_headers(&h);
        assert_eq!(u.percent, 91.0);
        assert_eq!(u.regain_after, Duration::from_secs(120));
        assert_eq!(u.pause(75.0), Some(Duration::from_secs(120)));
        assert_eq!(u.pause(95.0), Some(Duration::from_secs(120)));
    }

    #[test]
    fn low_usage_no_pause_and_garbage_ignored() {
        let h = headers(&[(AD_ACCOUNT_USAGE, r#"{"acc_id_util_pct":"80.5"}"#)]);
        let u = Usage::from_headers(&h);
        assert_eq!(u.pause(90.0), None);
        assert_eq!(u.pause(75.0), Some(MIN_PAUSE));
        let h = headers(&[(BUSINESS_USE_CASE_USAGE, "not json")]);
        assert_eq!(Usage::from_headers(&h), Usage::default());
    }

    #[test]
    fn huge_or_infinite_waits_are_a_day_not_a_panic() {
        for (minutes, seconds) in [
            ("\"inf\"", "1e300"),
            ("1e300", "\"inf\""),
            ("\"NaN\"", "-5"),
        ] {
            let h = headers(&[
                (
                    BUSINESS_USE_CASE_USAGE,
                    &format!(
                        r#"{{"1":[{{"call_count":80,"estimated_time_to_regain_access":{minutes}}}]}}"#
                    ),
                ),
                (
                    AD_ACCOUNT_USAGE,
                    &format!(r#"{{"acc_id_util_pct":1,"reset_time_duration":{seconds}}}"#),
                ),
            ]);
            let u = Usage::from_headers(&h);
            let expected = if minutes.contains("NaN") {
                Duration::ZERO
            } else {
                MAX_PAUSE
            };
            assert_eq!(u.regain_after, expected, "{minutes} {seconds}");
        }
    }

    #[test]
    fn app_usage_and_insights_throttle_count_like_the_other_headers() {
        let h = headers(&[(
            APP_USAGE,
            r#"{"call_count":12,"total_cputime":81,"total_time":30}"#,
        )]);
        let u = Usage::from_headers(&h);
        assert_eq!(u.percent, 81.0);
        assert_eq!(u.pause(75.0), Some(MIN_PAUSE));
        let h = headers(&[(
            INSIGHTS_THROTTLE,
            r#"{"app_id_util_pct":96.5,"acc_id_util_pct":"10","ads_api_access_tier":"standard_access"}"#,
        )]);
        assert_eq!(Usage::from_headers(&h).percent, 96.5);
        let h = headers(&[(INSIGHTS_THROTTLE, "[]"), (APP_USAGE, "nope")]);
        assert_eq!(Usage::from_headers(&h), Usage::default());
    }

    #[test]
    fn permission_errors() {
        for (code, sub) in [
            (10, None),
            (200, None),
            (294, Some(1)),
            (299, None),
            (100, Some(33)),
        ] {
            assert!(is_permission_error(code, sub), "{code}/{sub:?}");
        }
        for (code, sub) in [
            (100, None),
            (100, Some(1487534)),
            (190, None),
            (300, None),
            (4, None),
        ] {
            assert!(!is_permission_error(code, sub), "{code}/{sub:?}");
        }
    }

    #[test]
    fn throttling_codes() {
        for c in [4, 17, 613, 80000, 80004, 80014] {
            assert!(is_throttling(c), "{c}");
        }
        for c in [1, 2, 100, 190, 79999, 80015] {
            assert!(!is_throttling(c), "{c}");
        }
    }
}
