//! Durations as settings and the command line write them.

use std::time::Duration;

use serde::{de, Deserializer};

/// A duration as settings and the command line write it: "30s", "5m", "2h", "7d" (whitespace
/// around it ignored). The error is one sentence naming the value.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration ({e}); use e.g. \"30s\""))
}

/// Durations in settings are human strings ("30s", "5m") or whole seconds: the
/// `#[serde(with = "crate::duration")]` of every duration setting (`config` re-exports
/// this module as `super::duration` for its own structs).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    struct Visitor;
    impl de::Visitor<'_> for Visitor {
        type Value = Duration;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a duration such as \"30s\", \"5m\", \"7d\"")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            parse_duration(v).map_err(E::custom)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            u64::try_from(v)
                .map(Duration::from_secs)
                .map_err(|_| E::custom("a duration cannot be negative"))
        }
    }
    d.deserialize_any(Visitor)
}
