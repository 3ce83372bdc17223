//! Query parameters shared by the read routes: dates, range, level, limit and the page cursor.

use chrono::NaiveDate;

use crate::db::reads::After;
use crate::domain::{parse_day, Level};
use crate::http::ApiError;

/// The levels a `level` parameter names, for the OpenAPI document (the parser also takes lower
/// case).
#[derive(utoipa::ToSchema)]
#[allow(clippy::upper_case_acronyms, dead_code)]
pub enum LevelName {
    CAMPAIGN,
    ADSET,
    AD,
}

/// The longest range one request may cover, in days (a year, leap day included).
pub const MAX_RANGE_DAYS: i64 = 366;
pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

/// `from`..=`to`, both `YYYY-MM-DD`, in order and at most [`MAX_RANGE_DAYS`] long.
pub fn range(from: Option<&str>, to: Option<&str>) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let day = |name: &str, text: Option<&str>| {
        let text = text.ok_or_else(|| {
            ApiError::bad_request("invalid_date", format!("`{name}` is required (YYYY-MM-DD)"))
        })?;
        parse_day(text)
            .map_err(|why| ApiError::bad_request("invalid_date", format!("{name}: {why}")))
    };
    let (from, to) = (day("from", from)?, day("to", to)?);
    if from > to {
        return Err(ApiError::bad_request(
            "invalid_range",
            format!("from ({from}) is after to ({to})"),
        ));
    }
    if (to - from).num_days() + 1 > MAX_RANGE_DAYS {
        return Err(ApiError::bad_request(
            "invalid_range",
            format!("the range covers more than {MAX_RANGE_DAYS} days; split it"),
        ));
    }
    Ok((from, to))
}

pub fn level(text: Option<&str>) -> Result<Level, ApiError> {
    let text = text.ok_or_else(|| {
        ApiError::bad_request(
            "invalid_level",
            "`level` is required (CAMPAIGN, ADSET or AD)",
        )
    })?;
    text.parse()
        .map_err(|why: String| ApiError::bad_request("invalid_level", why))
}

pub fn limit(text: Option<&str>) -> Result<i64, ApiError> {
    let Some(text) = text else {
        return Ok(DEFAULT_LIMIT);
    };
    match text.parse::<i64>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
        )),
    }
}

/// A cursor is the last row's (date, id), hex-encoded: opaque to clients, and safe in a URL.
pub fn encode_cursor(date: NaiveDate, id: &str) -> String {
    format!("{date}|{id}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn cursor(text: Option<&str>) -> Result<Option<After>, ApiError> {
    let Some(text) = text else {
        return Ok(None);
    };
    decode_cursor(text)
        .map(Some)
        .ok_or_else(|| ApiError::bad_request("invalid_cursor", "cursor is not one this API gave"))
}

/// An optional id filter (`entityId`, `sellpageId`): no id holds a control character, and
/// PostgreSQL text cannot hold a NUL at all, so such a value is refused rather than sent.
pub fn id_filter<'a>(name: &str, value: Option<&'a str>) -> Result<Option<&'a str>, ApiError> {
    match value {
        Some(v) if v.chars().any(char::is_control) => Err(ApiError::bad_request(
            "invalid_query",
            format!("`{name}` holds a control character"),
        )),
        other => Ok(other),
    }
}

fn decode_cursor(text: &str) -> Option<After> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    let bytes = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    let decoded = String::from_utf8(bytes).ok()?;
    let (date, id) = decoded.split_once('|')?;
    // A cursor this API gave never holds one (ids are checked before they reach a page).
    if id.chars().any(char::is_control) {
        return None;
    }
    Some(After {
        date: parse_day(date).ok()?,
        id: id.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: ApiError) -> &'static str {
        match e {
            ApiError::BadRequest { code, .. } => code,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        for id in ["cmp-1", "with|bar", "ünï", ""] {
            let after = cursor(Some(&encode_cursor(date, id))).unwrap().unwrap();
            assert_eq!((after.date, after.id.as_str()), (date, id));
        }
        for bad in ["zz", "abc", "00", "32303236", "é1"] {
            assert_eq!(
                code(cursor(Some(bad)).unwrap_err()),
                "invalid_cursor",
                "{bad}"
            );
        }
    }

    #[test]
    fn ranges_are_ordered_and_at_most_366_days() {
        assert!(
            range(Some("2024-01-01"), Some("2024-12-31")).is_ok(),
            "a leap year"
        );
        assert_eq!(
            code(range(Some("2024-01-01"), Some("2025-01-01")).unwrap_err()),
            "invalid_range"
        );
        assert_eq!(
            code(range(Some("2026-02-02"), Some("2026-02-01")).unwrap_err()),
            "invalid_range"
        );
        assert_eq!(
            code(range(Some("2026-02-30"), Some("2026-03-01")).unwrap_err()),
            "invalid_date"
        );
        assert_eq!(
            code(range(None, Some("2026-03-01")).unwrap_err()),
            "invalid_date"
        );
    }

    #[test]
    fn limits_are_1_to_1000() {
        assert_eq!(limit(None).unwrap(), 100);
        assert_eq!(limit(Some("1000")).unwrap(), 1000);
        for bad in ["0", "1001", "-5", "ten", "1.5"] {
            assert_eq!(
                code(limit(Some(bad)).unwrap_err()),
                "invalid_limit",
                "{bad}"
            );
        }
    }
}
