//! Accepts the Unix 5-field cron form as well as the cron crate's own (seconds first).

use cron::Schedule;
use std::str::FromStr;

/// Parses `expr` into a schedule. Five fields are read as Unix cron (minute hour day month weekday,
/// Sunday = 0 or 7) and converted; six or seven fields go to the cron crate unchanged.
pub fn parse_cron(expr: &str) -> Result<Schedule, String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let converted = match fields.len() {
        5 => {
            let weekday = unix_weekday_to_cron(fields[4])?;
            format!("0 {} {} {} {} {}", fields[0], fields[1], fields[2], fields[3], weekday)
        }
        6 | 7 => fields.join(" "),
        n => {
            return Err(format!(
                "`{expr}` has {n} fields; use 5 (\"*/5 * * * *\") or the 6/7-field form with seconds first"
            ))
        }
    };
    Schedule::from_str(&converted).map_err(|e| format!("`{expr}` is not a cron expression ({e})"))
}

/// Unix numbers weekdays 0-6 from Sunday (7 is Sunday too); the cron crate numbers them 1-7 from
/// Sunday. Every part, numbers and names (MON, Tue) alike, is expanded and renumbered.
fn unix_weekday_to_cron(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok(field.to_string());
    }
    let mut days = [false; 7];
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().map_err(|_| bad_weekday(field))?),
            None => (part, 1),
        };
        if step == 0 {
            return Err(bad_weekday(field));
        }
        let (lo, hi) = match range {
            "*" => (0, 6),
            r => match r.split_once('-') {
                Some((a, b)) => (weekday_number(a, field)?, weekday_number(b, field)?),
                None if part.contains('/') => (weekday_number(r, field)?, 6),
                None => {
                    let d = weekday_number(r, field)?;
                    (d, d)
                }
            },
        };
        if lo > hi {
            return Err(bad_weekday(field));
        }
        // step_by cannot overflow where `d += step` would, for a step near u32::MAX.
        for d in (lo..=hi).step_by(usize::try_from(step).unwrap_or(usize::MAX)) {
            days[(d % 7) as usize] = true;
        }
    }
    let list: Vec<String> = (0..7)
        .filter(|d| days[*d])
        .map(|d| (d + 1).to_string())
        .collect();
    Ok(list.join(","))
}

/// A Unix weekday: 0-7 (Sunday = 0 or 7) or a name, SUN to SAT in any case. Names are mapped
/// here too, so a list mixing names and numbers keeps the Unix numbering throughout.
fn weekday_number(s: &str, field: &str) -> Result<u32, String> {
    const NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    if let Some(n) = NAMES.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(n as u32);
    }
    match s.parse::<u32>() {
        Ok(n) if n <= 7 => Ok(n),
        _ => Err(bad_weekday(field)),
    }
}

fn bad_weekday(field: &str) -> String {
    format!("weekday field `{field}` is not valid (0-7, Sunday = 0 or 7)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone, Timelike, Utc, Weekday};

    #[test]
    fn five_fields_run_on_the_five_minute_marks() {
        let s = parse_cron("*/5 * * * *").unwrap();
        let from = Utc.with_ymd_and_hms(2026, 11, 28, 10, 2, 17).unwrap();
        let next: Vec<_> = s.after(&from).take(3).collect();
        assert_eq!(
            next[0],
            Utc.with_ymd_and_hms(2026, 11, 28, 10, 5, 0).unwrap()
        );
        assert_eq!(next[1].minute(), 10);
        assert_eq!(next[2].minute(), 15);
    }

    #[test]
    fn crate_form_is_accepted_unchanged() {
        let s = parse_cron("0 */5 * * * *").unwrap();
        let from = Utc.with_ymd_and_hms(2026, 11, 28, 10, 2, 17).unwrap();
        assert_eq!(s.after(&from).next().unwrap().minute(), 5);
    }

    #[test]
    fn unix_weekdays_are_renumbered() {
        // 2026-11-28 is a Saturday. Unix "1-5" is Monday to Friday.
        let s = parse_cron("0 9 * * 1-5").unwrap();
        let from = Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).unwrap();
        let next = s.after(&from).next().unwrap();
        assert_eq!(next.weekday(), Weekday::Mon);
        assert_eq!(next.hour(), 9);
        // Sunday as 0 and as 7.
        for expr in ["0 9 * * 0", "0 9 * * 7"] {
            let next = parse_cron(expr).unwrap().after(&from).next().unwrap();
            assert_eq!(next.weekday(), Weekday::Sun, "{expr}");
        }
        // Friday to Sunday crosses the numbering seam (the start, a Saturday, is one of them).
        let days: Vec<_> = parse_cron("0 9 * * 5-7")
            .unwrap()
            .after(&from)
            .take(3)
            .map(|d| d.weekday())
            .collect();
        assert_eq!(days, vec![Weekday::Sat, Weekday::Sun, Weekday::Fri]);
    }

    #[test]
    fn nonsense_is_rejected() {
        assert!(parse_cron("every five minutes").is_err());
        assert!(parse_cron("* * *").is_err());
        assert!(parse_cron("*/5 * * * 9").is_err());
        assert!(parse_cron("61 * * * *").is_err());
    }
}
