//! Bad input: property tests over the parsers and the token extractor, oversized headers and slow
//! bodies. Nothing a client sends panics the service or gets a 500.

use std::future::Future;
use std::time::{Duration, Instant};

use ads_stats::auth::TokenVerifier;
use ads_stats::config::{parse_cron, parse_duration, Settings};
use ads_stats::domain::{parse_day, Level};
use ads_stats::jobs::SyncJobId;
use ads_stats::pipeline::SyncRequest;
use chrono::{Datelike, NaiveDate, TimeZone, Utc, Weekday};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::Method;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{app, seller_catalog, today, Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    random_job_ids_are_404_never_5xx,
    signed_tokens_for_odd_sellers_never_5xx,
    nul_in_a_job_id_or_a_seller_id_is_not_a_server_error,
);

/// How long one request may take before the test calls it a hang.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

// ---------- strategies ----------

/// Every day with a four-digit year, the only ones `YYYY-MM-DD` can write.
fn any_day() -> impl Strategy<Value = NaiveDate> {
    let first = NaiveDate::from_ymd_opt(0, 1, 1).expect("a real day");
    let last = NaiveDate::from_ymd_opt(9999, 12, 31).expect("a real day");
    (first.num_days_from_ce()..=last.num_days_from_ce())
        .prop_map(|n| NaiveDate::from_num_days_from_ce_opt(n).expect("in chrono's range"))
}

fn any_level() -> impl Strategy<Value = Level> {
    prop::sample::select(Level::ALL.to_vec())
}

/// Text that looks like a date often enough to reach the calendar check, plus plain noise.
fn date_like_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}",
        "[0-9]{4}-[01][0-9]-[0-3][0-9]",
        "[0-9+ -]{8,12}",
        "[0-9]{4}-[0-9]{2}-[0-9]\\PC",
        prop::collection::vec(any::<u8>(), 0..16)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

/// Numbers, units and separators in the shapes humantime reads, including overflowing ones.
fn duration_like_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ \t]{0,2}[0-9]{1,25}(\\.[0-9]{0,4})?[ ]?(ns|us|ms|s|sec|m|min|h|hr|d|day|w|week|M|month|y|year|years|)",
        "([0-9]{1,22}(ns|ms|s|m|h|d|w|M|y)[ ]{0,2}){1,6}",
        "[0-9a-zA-Z .,+-]{0,20}",
    ]
}

/// A number as cron fields are written, with the edges where arithmetic overflows.
fn cron_number() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..=80,
        1 => (u64::from(u32::MAX) - 8)..=(u64::from(u32::MAX) + 1),
        1 => any::<u64>(),
    ]
}

/// One token of a cron expression: mostly cron grammar with random numbers, sometimes noise
/// without whitespace.
fn cron_token() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("*".to_string()),
        Just("?".to_string()),
        cron_number().prop_map(|n| n.to_string()),
        (cron_number(), cron_number()).prop_map(|(a, b)| format!("{a}-{b}")),
        "[A-Za-z]{1,4}",
        "(MON|TUE|WED|THU|FRI|SAT|SUN|JAN|FEB|DEC|L|W|LW|#)",
    ];
    let part = (atom, prop::option::of(cron_number())).prop_map(|(a, step)| match step {
        Some(s) => format!("{a}/{s}"),
        None => a,
    });
    prop_oneof![
        4 => prop::collection::vec(part, 1..4).prop_map(|parts| parts.join(",")),
        1 => "[^\\s]{1,10}",
    ]
}

/// 5, 6 or 7 random tokens (and sometimes another count) joined by random whitespace.
fn cron_like_text() -> impl Strategy<Value = String> {
    let fields = prop_oneof![
        4 => prop::collection::vec(cron_token(), 5..=7),
        1 => prop::collection::vec(cron_token(), 0..10),
    ];
    (fields, prop::collection::vec("[ \t]{1,3}", 10)).prop_map(|(fields, gaps)| {
        let mut text = String::new();
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                text.push_str(&gaps[i % gaps.len()]);
            }
            text.push_str(field);
        }
        text
    })
}

/// A valid Unix cron field over `lo..=hi`: `*`, `*/s`, or a list of values, ranges and stepped
/// ranges. Steps stay below the field's width (`*/60` on minutes is refused, as by cronie).
fn unix_field(lo: u32, hi: u32) -> impl Strategy<Value = String> {
    let width = hi - lo + 1;
    let ordered = move |(a, b): (u32, u32)| (a.min(b), a.max(b));
    let item = prop_oneof![
        (lo..=hi).prop_map(|n| n.to_string()),
        (lo..=hi, lo..=hi).prop_map(move |ab| {
            let (a, b) = ordered(ab);
            format!("{a}-{b}")
        }),
        (lo..=hi, lo..=hi, 1..width).prop_map(move |(a, b, s)| {
            let (a, b) = ordered((a, b));
            format!("{a}-{b}/{s}")
        }),
    ];
    prop_oneof![
        Just("*".to_string()),
        (1..width).prop_map(|s| format!("*/{s}")),
        prop::collection::vec(item, 1..=3).prop_map(|items| items.join(",")),
    ]
}

fn valid_unix_cron() -> impl Strategy<Value = String> {
    let weekday = prop_oneof![
        3 => unix_weekday_field().prop_filter_map("valid Unix", |w| w.valid.then_some(w.text)),
        1 => unix_field(0, 7),
    ];
    (
        unix_field(0, 59),
        unix_field(0, 23),
        unix_field(1, 31),
        prop_oneof![
            3 => unix_field(1, 12),
            1 => prop::sample::select(MONTH_NAMES.to_vec()).prop_map(str::to_string),
        ],
        weekday,
    )
        .prop_map(|(min, hour, dom, month, dow)| format!("{min} {hour} {dom} {month} {dow}"))
}

const WEEKDAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

/// A Unix weekday field and the days it means.
#[derive(Debug, Clone)]
struct WeekdayField {
    text: String,
    days: Vec<Weekday>,
    /// Valid in Unix cron (crontab(5): numbers, ranges and steps in lists; a name only alone).
    valid: bool,
}

/// Weekday fields: lists of numbers 0-7 (Sunday = 0 or 7), ranges, steps and names; a name
/// inside a list is not Unix cron, but if it is accepted it must still mean the Unix days.
fn unix_weekday_field() -> impl Strategy<Value = WeekdayField> {
    let days_of = |lo: u32, hi: u32, step: u32| -> Vec<u32> {
        (lo..=hi).step_by(step as usize).map(|d| d % 7).collect()
    };
    let item = prop_oneof![
        (0u32..=7).prop_map(move |n| (n.to_string(), days_of(n, n, 1), true)),
        (0u32..=7, 0u32..=7).prop_map(move |(a, b)| {
            let (a, b) = (a.min(b), a.max(b));
            (format!("{a}-{b}"), days_of(a, b, 1), true)
        }),
        (0u32..=7, 0u32..=7, 1u32..=7).prop_map(move |(a, b, s)| {
            let (a, b) = (a.min(b), a.max(b));
            (format!("{a}-{b}/{s}"), days_of(a, b, s), true)
        }),
        (1u32..=7).prop_map(move |s| (format!("*/{s}"), days_of(0, 6, s), true)),
        (0u32..7).prop_map(|n| (WEEKDAY_NAMES[n as usize].to_string(), vec![n], false)),
    ];
    prop::collection::vec(item, 1..=3).prop_map(|items| {
        let text = items.iter().map(|(t, _, _)| t.as_str()).collect::<Vec<_>>();
        let valid = items.len() == 1 || items.iter().all(|(_, _, numeric)| *numeric);
        let mut days: Vec<Weekday> = items
            .iter()
            .flat_map(|(_, days, _)| days.iter())
            // chrono numbers weekdays from Monday = 0; Unix from Sunday = 0.
            .map(|n| Weekday::try_from(((n + 6) % 7) as u8).expect("0-6"))
            .collect();
        days.sort_by_key(|d| d.num_days_from_sunday());
        days.dedup();
        WeekdayField {
            text: text.join(","),
            days,
            valid,
        }
    })
}

/// Noise in the weekday field of an otherwise valid expression: the field `parse_cron` rewrites
/// itself before the cron crate sees it, with numbers near 0-7 and steps at the overflow edge.
fn weekday_noise() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        3 => 0u64..=9,
        2 => (u64::from(u32::MAX) - 8)..=(u64::from(u32::MAX) + 1),
        1 => any::<u64>(),
    ];
    let range = prop_oneof![
        Just("*".to_string()),
        number.clone().prop_map(|n| n.to_string()),
        (number.clone(), number.clone()).prop_map(|(a, b)| format!("{a}-{b}")),
        "[0-9*?/,-]{0,4}",
    ];
    let part = (range, prop::option::of(number)).prop_map(|(r, step)| match step {
        Some(s) => format!("{r}/{s}"),
        None => r,
    });
    prop::collection::vec(part, 1..4).prop_map(|parts| parts.join(","))
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
        }
    }
    out
}

/// Three (sometimes more or fewer) base64url segments: JWT-shaped, with headers and claims that
/// are real JSON often enough to get past the first checks, and signatures that are never right.
fn jwt_shaped() -> impl Strategy<Value = String> {
    let header = prop_oneof![
        // The one header that gets as far as the signature check, so the most common.
        4 => Just(r#"{"alg":"HS256","typ":"JWT"}"#.to_string()),
        1 => Just(r#"{"alg":"none","typ":"JWT"}"#.to_string()),
        1 => Just(r#"{"alg":"None"}"#.to_string()),
        1 => Just(r#"{"alg":"RS256","typ":"JWT"}"#.to_string()),
        1 => Just(r#"{"alg":"HS512"}"#.to_string()),
        1 => Just(r#"{"alg":"ES256","kid":"x"}"#.to_string()),
        1 => Just("{}".to_string()),
        1 => "\\PC{0,40}",
    ];
    let seller = prop_oneof![
        any::<String>().prop_map(|s| Value::String(s).to_string()),
        Just("null".to_string()),
        Just("42".to_string()),
        Just("[]".to_string()),
    ];
    let exp = prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        Just("4102444800".to_string()),
        Just("1e400".to_string()),
        Just("-0.5".to_string()),
        Just("\"soon\"".to_string()),
        Just("null".to_string()),
    ];
    let claims = prop_oneof![
        3 => (seller, exp).prop_map(|(s, e)| format!(r#"{{"sellerId":{s},"exp":{e}}}"#)),
        1 => "\\PC{0,60}",
    ];
    let signature = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..48).prop_map(|b| base64url(&b)),
        "[A-Za-z0-9_=+/-]{0,12}",
    ];
    let segments = prop::collection::vec("[A-Za-z0-9_-]{0,40}", 0..3);
    prop_oneof![
        3 => (header, claims, signature).prop_map(|(h, c, s)| {
            format!("{}.{}.{s}", base64url(h.as_bytes()), base64url(c.as_bytes()))
        }),
        1 => (segments.clone(), segments).prop_map(|(a, b)| {
            a.into_iter().chain(b).collect::<Vec<_>>().join(".")
        }),
    ]
}

/// Random token-ish text for the verifier.
fn token_like_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,120}",
        jwt_shaped(),
        prop::collection::vec("[A-Za-z0-9_-]{0,60}", 1..=5).prop_map(|s| s.join(".")),
    ]
}

/// Makes `bytes` sendable as a header value (no control characters but tab), keeping the rest,
/// obs-text 0x80-0xFF included.
fn sendable(mut bytes: Vec<u8>) -> Vec<u8> {
    for b in &mut bytes {
        if (*b < 0x20 && *b != b'\t') || *b == 0x7f {
            *b = b'?';
        }
    }
    bytes
}

/// Tokens signed with the service's own secret whose claims are wrong all the same: `sellerId`
/// missing, blank or not a string, or `exp` missing, past, fractional, negative or not a number.
fn signed_with_bad_claims(secret: String) -> impl Strategy<Value = String> {
    let long_ago = ads_stats::auth::unix_now() - 3_600;
    let seller = prop_oneof![
        3 => "[a-z0-9-]{1,12}".prop_map(|s| Some((Value::from(s), true))),
        1 => Just(None),
        1 => "[ \t]{0,3}".prop_map(|s| Some((Value::from(s), false))),
        1 => any::<i64>().prop_map(|n| Some((Value::from(n), false))),
        1 => Just(Some((Value::Null, false))),
    ];
    let exp = prop_oneof![
        3 => Just(Some((Value::from(4_102_444_800u64), true))),
        1 => Just(None),
        2 => (0..long_ago).prop_map(|t| Some((Value::from(t), false))),
        1 => any::<i64>().prop_filter("negative", |n| *n < 0).prop_map(|n| Some((Value::from(n), false))),
        1 => Just(Some((Value::from(4_102_444_800.5f64), false))),
        1 => "\\PC{0,8}".prop_map(|s| Some((Value::from(s), false))),
    ];
    (seller, exp)
        .prop_filter("at least one claim is wrong", |(seller, exp)| {
            !(matches!(seller, Some((_, true))) && matches!(exp, Some((_, true))))
        })
        .prop_map(move |(seller, exp)| {
            let mut claims = serde_json::Map::new();
            if let Some((v, _)) = seller {
                claims.insert("sellerId".into(), v);
            }
            if let Some((v, _)) = exp {
                claims.insert("exp".into(), v);
            }
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
                &Value::Object(claims),
                &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
            )
            .expect("HS256 signs any JSON")
        })
}

/// Random Authorization header values: printable text, UTF-8, raw bytes, and `Bearer` (in
/// various spellings) followed by noise, JWT-shaped tokens, or tokens signed with `secret` that
/// carry wrong claims.
fn authorization_values(secret: String) -> impl Strategy<Value = Vec<u8>> {
    let scheme = prop_oneof![
        4 => Just("Bearer "),
        1 => Just("bearer "),
        1 => Just("BEARER "),
        1 => Just("Bearer"),
        1 => Just("Bearer  "),
        1 => Just("Basic "),
    ];
    let credentials = prop_oneof![
        3 => jwt_shaped(),
        2 => signed_with_bad_claims(secret),
        1 => "[ -~]{0,200}",
        1 => prop::collection::vec("[A-Za-z0-9_-]{0,60}", 1..=5).prop_map(|s| s.join(".")),
        1 => any::<String>(),
    ];
    prop_oneof![
        4 => (scheme, credentials).prop_map(|(s, c)| format!("{s}{c}").into_bytes()),
        1 => "[ -~]{0,200}".prop_map(String::into_bytes),
        1 => any::<String>().prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
    .prop_map(sendable)
}

/// Job ids: noise, ids of the real shape for sellers that do not exist, control characters
/// (NUL included), and bytes that are not UTF-8 once the path is decoded.
fn job_id_bytes() -> impl Strategy<Value = Vec<u8>> {
    let shaped = (any::<String>(), any_day(), any_level())
        .prop_map(|(seller, day, level)| SyncRequest::one_day(seller, level, day).job_id());
    prop_oneof![
        2 => any::<String>().prop_map(String::into_bytes),
        1 => "[A-Za-z0-9_.:-]{1,80}".prop_map(String::into_bytes),
        1 => shaped.prop_map(String::into_bytes),
        1 => "[\\x00-\\x1f]{1,4}[a-z_]{0,10}".prop_map(String::into_bytes),
        1 => "sync__[a-z]{1,4}\\x00[a-z]{0,4}__2026-01-01__2026-01-01__AD".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 1..40),
    ]
    // "." and ".." are dot segments: the URL would lose them and ask for another route.
    .prop_filter("a job id segment, not a dot segment", |id| {
        !id.is_empty() && id != b"." && id != b".."
    })
}

/// Percent-encodes everything but unreserved ASCII, so the bytes reach the router as one segment.
fn path_segment(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-_~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------- running properties against the live service ----------

/// Runs `cases` cases of `strategy` through `check`, an async check against the live service.
/// The runner is synchronous; `block_in_place` lets it block this worker while the app keeps
/// serving on the others (the test runtime must be multi-threaded).
fn run_cases<S, F, Fut>(cases: u32, strategy: S, check: F)
where
    S: Strategy,
    S::Value: std::fmt::Debug,
    F: Fn(S::Value) -> Fut,
    Fut: Future<Output = Result<(), TestCaseError>>,
{
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        // Each shrink step is a real request; a few hundred find the small case soon enough.
        max_shrink_iters: 300,
        ..Config::default()
    });
    let outcome = tokio::task::block_in_place(|| {
        runner.run(&strategy, |value| handle.block_on(check(value)))
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

/// Sends `request`, failing the case (not the whole process) on a transport error or a hang.
async fn send_within(request: reqwest::RequestBuilder) -> Result<(u16, String), TestCaseError> {
    let response = tokio::time::timeout(REQUEST_DEADLINE, request.send())
        .await
        .map_err(|_| TestCaseError::fail(format!("no answer within {REQUEST_DEADLINE:?}")))?
        .map_err(|e| TestCaseError::fail(format!("request failed: {e}")))?;
    let status = response.status().as_u16();
    let body = tokio::time::timeout(REQUEST_DEADLINE, response.text())
        .await
        .map_err(|_| TestCaseError::fail("the body never finished"))?
        .map_err(|e| TestCaseError::fail(format!("body unreadable: {e}")))?;
    Ok((status, body))
}

/// The answer is `status` with the JSON error body `{"error": code, "message": <non-empty>}`.
fn expect_error(
    what: &str,
    (status, body): &(u16, String),
    expected_status: u16,
    code: &str,
) -> Result<(), TestCaseError> {
    prop_assert!(
        *status < 500,
        "{what}: server error {status}, body {body:?}"
    );
    prop_assert_eq!(*status, expected_status, "{}: body {:?}", what, body);
    let json: Value = serde_json::from_str(body)
        .map_err(|e| TestCaseError::fail(format!("{what}: body is not JSON ({e}): {body:?}")))?;
    prop_assert_eq!(json["error"].as_str(), Some(code), "{}: {}", what, json);
    prop_assert!(
        json["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: no message in {json}"
    );
    Ok(())
}

// ---------- pure functions ----------

/// The weekdays a schedule fires on during one week, Sunday first.
fn weekdays_in_a_week(schedule: &cron::Schedule) -> Vec<Weekday> {
    // 2026-11-28 is a Saturday; any seven days from it name each weekday once.
    let from = Utc
        .with_ymd_and_hms(2026, 11, 28, 0, 0, 0)
        .single()
        .expect("a real instant");
    let until = from + chrono::Duration::days(7);
    let mut fired: Vec<Weekday> = schedule
        .after(&from)
        .take_while(|t| *t < until)
        .map(|t| t.weekday())
        .collect();
    fired.sort_by_key(|d| d.num_days_from_sunday());
    fired.dedup();
    fired
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        // Bugs these find are pinned by the example tests below, not by a regressions file.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn parse_day_accepts_only_ten_char_days_that_reformat_to_themselves(text in date_like_text()) {
        if let Ok(day) = parse_day(&text) {
            prop_assert_eq!(text.chars().count(), 10);
            prop_assert_eq!(text.len(), 10);
            prop_assert_eq!(day.format("%Y-%m-%d").to_string(), text);
        }
    }

    #[test]
    fn parse_day_reads_back_every_formatted_day(day in any_day()) {
        let text = day.format("%Y-%m-%d").to_string();
        prop_assert_eq!(parse_day(&text), Ok(day));
    }

    #[test]
    fn parse_duration_never_panics(text in duration_like_text()) {
        let _ = parse_duration(&text);
    }

    #[test]
    fn parse_duration_reads_back_humantime_formatted_durations(
        secs in prop_oneof![0u64..=120, 0u64..=400 * 86_400, 0u64..=u64::from(u32::MAX)],
        nanos in prop_oneof![Just(0u32), 0u32..1_000_000_000],
        pad in "[ \t]{0,2}",
    ) {
        let duration = Duration::new(secs, nanos);
        let text = humantime::format_duration(duration).to_string();
        prop_assert_eq!(parse_duration(&text), Ok(duration), "{}", text);
        // Surrounding whitespace (from a TOML value or an environment variable) is ignored.
        prop_assert_eq!(parse_duration(&format!("{pad}{text}{pad}")), Ok(duration), "{}", text);
    }

    #[test]
    fn parse_cron_never_panics(text in prop_oneof![any::<String>(), cron_like_text()]) {
        let _ = parse_cron(&text);
    }

    #[test]
    fn parse_cron_accepts_valid_unix_expressions(expr in valid_unix_cron()) {
        let parsed = parse_cron(&expr);
        prop_assert!(parsed.is_ok(), "`{}` rejected: {:?}", expr, parsed.err());
    }

    #[test]
    fn parse_cron_never_panics_on_weekday_fields(field in weekday_noise()) {
        let _ = parse_cron(&format!("*/5 * * * {field}"));
    }

    #[test]
    fn unix_weekday_fields_mean_the_unix_days(field in unix_weekday_field()) {
        let expr = format!("0 12 * * {}", field.text);
        let parsed = parse_cron(&expr);
        prop_assert!(
            parsed.is_ok() || !field.valid,
            "`{}` rejected: {:?}", expr, parsed.as_ref().err()
        );
        if let Ok(schedule) = parsed {
            prop_assert_eq!(weekdays_in_a_week(&schedule), field.days, "`{}` accepted with other days", expr);
        }
    }

    #[test]
    fn job_ids_are_the_documented_shape(
        seller in any::<String>(),
        level in any_level(),
        day in any_day(),
    ) {
        let id = SyncRequest::one_day(seller.clone(), level, day).job_id();
        let d = day.format("%Y-%m-%d").to_string();
        prop_assert_eq!(&id, &format!("sync__{seller}__{d}__{d}__{level}"));
        // Read from the right, the id gives back every part whatever the seller holds: the
        // dates and the level never contain an underscore.
        let rest = id.strip_prefix("sync__").ok_or_else(|| TestCaseError::fail("prefix"))?;
        let parts: Vec<&str> = rest.rsplitn(4, "__").collect();
        prop_assert_eq!(parts, vec![level.as_str(), d.as_str(), d.as_str(), seller.as_str()]);
    }

    #[test]
    fn job_ids_split_on_double_underscores_for_plain_sellers(
        // `a_` would give `sync__a___…`, where the first `__` is inside `a___`.
        seller in any::<String>().prop_filter("no `__`, no trailing `_`", |s| {
            !s.contains("__") && !s.ends_with('_')
        }),
        level in any_level(),
        day in any_day(),
    ) {
        let id = SyncRequest::one_day(seller.clone(), level, day).job_id();
        let d = day.format("%Y-%m-%d").to_string();
        let parts: Vec<&str> = id.split("__").collect();
        prop_assert_eq!(parts, vec!["sync", seller.as_str(), d.as_str(), d.as_str(), level.as_str()]);
    }

    #[test]
    fn token_verifier_rejects_random_text_without_panicking(token in token_like_text()) {
        let settings = Settings::defaults_with(|_| {}).expect("default settings are valid");
        let verifier = TokenVerifier::new(&settings.auth);
        prop_assert!(verifier.verify(&token).is_err());
    }
}

// The smallest failures the properties found, pinned so that every run shows them.

#[test]
fn weekday_steps_near_u32_max_neither_panic_nor_add_days() {
    use Weekday::*;
    // `1 + 4294967295` overflows the u32 day counter in the weekday expansion: a panic in a debug
    // build, a wrapped counter that marks extra days in a release build.
    for (field, unix_days) in [
        ("1/4294967295", vec![Mon]),
        ("1-5/4294967295", vec![Mon]),
        ("5/4294967294", vec![Fri]),
    ] {
        let expr = format!("0 12 * * {field}");
        let parsed = std::panic::catch_unwind(|| parse_cron(&expr))
            .unwrap_or_else(|_| panic!("parse_cron(`{expr}`) panicked"));
        if let Ok(schedule) = parsed {
            assert_eq!(weekdays_in_a_week(&schedule), unix_days, "`{expr}`");
        }
    }
}

#[test]
fn weekday_names_mixed_with_numbers_keep_the_unix_numbering() {
    use Weekday::*;
    // Not crontab(5) syntax, so refusing is fine; accepting with numbers read as the cron crate's
    // (1 = Sunday) is not.
    for (field, unix_days) in [("SUN,1", vec![Sun, Mon]), ("MON,3", vec![Mon, Wed])] {
        let expr = format!("0 12 * * {field}");
        if let Ok(schedule) = parse_cron(&expr) {
            assert_eq!(weekdays_in_a_week(&schedule), unix_days, "`{expr}`");
        }
    }
}

// ---------- the token extractor over HTTP ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_authorization_headers_are_401_json() {
    let app = app(Backend::Sqlite)
        .with_catalog(seller_catalog("s1"))
        .spawn()
        .await;
    let secret = app.settings.auth.jwt_secret.expose().to_string();
    let strategy = (authorization_values(secret), job_id_bytes());
    run_cases(128, strategy, |(value, job_id)| {
        let app = &app;
        async move {
            let header = HeaderValue::from_bytes(&value).map_err(|e| {
                TestCaseError::fail(format!("strategy made an unsendable value: {e}"))
            })?;
            let post = app
                .request(Method::POST, "/api/ads-manager/sync")
                .header(AUTHORIZATION, header.clone());
            expect_error("POST sync", &send_within(post).await?, 401, "unauthorized")?;
            let path = format!("/api/ads-manager/sync/{}", path_segment(&job_id));
            let get = app
                .request(Method::GET, &path)
                .header(AUTHORIZATION, header);
            expect_error("GET job", &send_within(get).await?, 401, "unauthorized")
        }
    });
    assert_eq!(app.jobs().await.len(), 0, "no request got as far as a job");
}

async fn random_job_ids_are_404_never_5xx(backend: Backend) {
    // s1 exists: an unknown seller would be refused (403) before its job is looked up.
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .spawn()
        .await;
    let token = app.token("s1");
    run_cases(128, job_id_bytes(), |job_id| {
        let (app, token) = (&app, &token);
        async move {
            let path = format!("/api/ads-manager/sync/{}", path_segment(&job_id));
            let get = app.request(Method::GET, &path).bearer_auth(token);
            expect_error(&path, &send_within(get).await?, 404, "not_found")
        }
    });
    assert_eq!(app.health().await.status(), 200);
}

/// A token signed with the right secret still carries whatever seller id its issuer put in it.
/// Such sellers do not exist here: 403 on POST and on their jobs; a blank id is an invalid
/// token (401 on both), and one with control characters may be refused as one too.
async fn signed_tokens_for_odd_sellers_never_5xx(backend: Backend) {
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .spawn()
        .await;
    let seller = prop_oneof![
        any::<String>(),
        "[a-z]{0,3}\\x00[a-z]{0,3}",
        "[\\x00-\\x1f ]{1,4}",
        "\\PC{1,200}",
    ]
    .prop_filter("not the seller that exists", |s| s != "s1");
    run_cases(64, seller, |seller| {
        let app = &app;
        async move {
            let token = app.token(&seller);
            let post = send_within(
                app.request(Method::POST, "/api/ads-manager/sync")
                    .bearer_auth(&token),
            )
            .await?;
            let path = format!(
                "/api/ads-manager/sync/sync__{}",
                path_segment(seller.as_bytes())
            );
            let get = send_within(app.request(Method::GET, &path).bearer_auth(&token)).await?;
            // A blank seller is no seller: the token is invalid. A seller id with control
            // characters may be refused the same way, as long as both routes agree.
            let refused_token =
                seller.trim().is_empty() || (seller.chars().any(char::is_control) && post.0 == 401);
            if refused_token {
                expect_error("POST sync", &post, 401, "unauthorized")?;
                expect_error("GET job", &get, 401, "unauthorized")?;
            } else {
                expect_error("POST sync", &post, 403, "forbidden")?;
                expect_error("GET job", &get, 403, "forbidden")?;
            }
            Ok(())
        }
    });
    assert_eq!(app.jobs().await.len(), 0);
}

/// PostgreSQL refuses text holding NUL ("invalid byte sequence for encoding UTF8: 0x00"); the
/// properties above found both ways a client gets one into a query.
async fn nul_in_a_job_id_or_a_seller_id_is_not_a_server_error(backend: Backend) {
    let app = app(backend)
        .with_catalog(seller_catalog("s1"))
        .spawn()
        .await;
    let get = app
        .request(Method::GET, "/api/ads-manager/sync/sync__s1%00")
        .bearer_auth(app.token("s1"));
    let get = send_within(get).await.expect("an answer");
    let post = app
        .request(Method::POST, "/api/ads-manager/sync")
        .bearer_auth(app.token("s\u{0}1"));
    let post = send_within(post).await.expect("an answer");
    assert!(
        get.0 == 404 && (post.0 == 401 || post.0 == 403),
        "GET job `sync__s1\\0` (404 expected): {get:?}; \
         POST sync with sellerId `s\\01` (401 or 403 expected): {post:?}"
    );
}

// ---------- oversized headers and slow bodies, over a raw socket ----------

/// What came back on a raw connection.
#[derive(Debug)]
enum RawAnswer {
    Response {
        status: u16,
        body: String,
    },
    /// The server closed (or reset) the connection without a complete response head.
    Closed,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads one HTTP/1.1 response (head, then `Content-Length` bytes of body) or the close.
async fn read_answer(reader: &mut (impl AsyncRead + Unpin)) -> RawAnswer {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("not an HTTP response head: {head:?}"));
            let length: usize = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
            let body = &buf[end + 4..];
            if body.len() >= length {
                let body = String::from_utf8_lossy(&body[..length]).to_string();
                return RawAnswer::Response { status, body };
            }
        }
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                return match find(&buf, b"\r\n\r\n") {
                    None => RawAnswer::Closed,
                    Some(_) => panic!(
                        "connection closed mid-response: {:?}",
                        String::from_utf8_lossy(&buf)
                    ),
                }
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn host_port(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_string()
}

async fn health_within_deadline(app: &TestApp) {
    let health = tokio::time::timeout(REQUEST_DEADLINE, app.health())
        .await
        .expect("/health answers in time");
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_megabyte_header_is_refused_without_a_hang() {
    let app = app(Backend::Sqlite)
        .with_catalog(seller_catalog("s1"))
        .spawn()
        .await;
    let huge = "a".repeat(1024 * 1024);
    let requests = [
        format!(
            "POST /api/ads-manager/sync HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {huge}\r\n\
             Content-Length: 0\r\n\r\n"
        ),
        format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: {huge}\r\n\r\n"),
    ];
    for request in requests {
        let stream = TcpStream::connect(host_port(&app)).await.expect("connect");
        let (mut reader, mut writer) = stream.into_split();
        // The server may stop reading and close long before the megabyte is written: a failed
        // write is an acceptable end, so the writer runs on its own and its errors are ignored.
        let write = tokio::spawn(async move {
            let _ = writer.write_all(request.as_bytes()).await;
            let _ = writer.flush().await;
            writer
        });
        let answer = tokio::time::timeout(REQUEST_DEADLINE, read_answer(&mut reader))
            .await
            .unwrap_or_else(|_| panic!("no answer and no close within {REQUEST_DEADLINE:?}"));
        match answer {
            RawAnswer::Response { status, body } => assert!(
                (400..500).contains(&status),
                "a 1 MB header got {status}: {body:?}"
            ),
            RawAnswer::Closed => {}
        }
        write.abort();
    }
    health_within_deadline(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_is_cut_off_with_408() {
    let body_timeout = Duration::from_secs(1);
    let app = app(Backend::Sqlite)
        .with_catalog(seller_catalog("s1"))
        .with_settings(move |s| s.server.body_timeout = body_timeout)
        .spawn()
        .await;
    // A valid body, so that only its pace can be wrong; padded with JSON whitespace to 100 bytes.
    let mut body = format!(r#"{{"date":"{}"}}"#, today().format("%Y-%m-%d"));
    body.push_str(&" ".repeat(100 - body.len()));
    let head = format!(
        "POST /api/ads-manager/sync HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        app.token("s1"),
        body.len()
    );
    let stream = TcpStream::connect(host_port(&app)).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(head.as_bytes()).await.expect("head sent");
    let started = Instant::now();
    // One byte every 300 ms: the whole body would take 30 s.
    let trickle = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_millis(300));
        for byte in body.into_bytes() {
            ticks.tick().await;
            if writer.write_all(&[byte]).await.is_err() {
                break;
            }
        }
    });
    let deadline = body_timeout + Duration::from_secs(4);
    let answer = tokio::time::timeout(deadline, read_answer(&mut reader))
        .await
        .unwrap_or_else(|_| panic!("no answer and no close within {deadline:?}"));
    let elapsed = started.elapsed();
    trickle.abort();
    match answer {
        RawAnswer::Response { status, body } => {
            assert_eq!(status, 408, "{body}");
            let json: Value = serde_json::from_str(&body).expect("JSON error body");
            assert_eq!(json["error"], "request_timeout", "{json}");
            assert!(
                json["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{json}"
            );
            assert!(
                elapsed >= body_timeout,
                "answered after {elapsed:?}, before the body timeout"
            );
        }
        // A close is a cut-off too, but only if it came from the timeout, not at once.
        RawAnswer::Closed => assert!(
            elapsed >= body_timeout,
            "closed after {elapsed:?}, before the body timeout"
        ),
    }
    assert!(app.jobs().await.is_empty(), "a cut-off request queued jobs");
    health_within_deadline(&app).await;
}
