//! Local dates and times in the ad connections' IANA zones: syncs are dated by them.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;

/// The time zone named `name`, or `None` when it is not an IANA name.
pub fn parse_zone(name: &str) -> Option<Tz> {
    name.trim().parse().ok()
}

/// The distinct local dates at `now` of the zones, ascending; UTC's date when there is none (a
/// seller without an active connection, refused afterwards). Never empty.
pub fn local_todays(now: DateTime<Utc>, zones: &[String], seller_id: &str) -> Vec<NaiveDate> {
    let mut dates: BTreeSet<NaiveDate> = zones
        .iter()
        .map(|zone| local_today(now, zone, &format!("seller {seller_id}")))
        .collect();
    if dates.is_empty() {
        dates.insert(now.date_naive());
    }
    dates.into_iter().collect()
}

/// The date at `now` in the zone named `zone`. An unknown name counts as UTC, with a warning
/// naming `owner` (a connection, or a seller): one bad row must not stop the tick for everyone (the CLI that writes zones
/// validates them; this guards against rows written by hand).
pub fn local_today(now: DateTime<Utc>, zone: &str, owner: &str) -> NaiveDate {
    local_now(now, zone, owner).date()
}

/// The wall-clock time at `now` in the zone named `zone` (an unknown one as in [`local_today`]).
pub fn local_now(now: DateTime<Utc>, zone: &str, owner: &str) -> NaiveDateTime {
    let tz = parse_zone(zone).unwrap_or_else(|| {
        tracing::warn!(owner, timezone = zone, "unknown time zone; using UTC");
        chrono_tz::UTC
    });
    now.with_timezone(&tz).naive_local()
}
