//! Durations as workflow authors write them: `30s`, `5m`, `1h30m`, `250ms`, `2d`, or a bare
//! number of seconds.
//!
//! Plugins take timeouts and intervals in their `with` blocks; parsing them the same way
//! everywhere (and the same way the workflow's own `timeout:` is parsed) avoids surprises.
//! [`HumanDuration`] deserializes from either a string or an integer.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer};

use crate::Error;

/// Parses `30s`, `5m`, `1h30m`, `1h 30m`, `250ms`, `2d`, or `45` (seconds).
pub fn parse_duration(text: &str) -> Result<Duration, Error> {
    let invalid = || {
        Error::new(format!(
            "invalid duration `{text}`: expected e.g. `30s`, `5m`, `1h30m` or a number of seconds"
        ))
    };
    let s = text.trim();
    if s.is_empty() {
        return Err(invalid());
    }
    if let Ok(seconds) = s.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(invalid());
        }
        let amount: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = rest[unit_len..].trim_start();
        let part = match unit {
            "ms" => Duration::from_millis(amount),
            "s" | "sec" | "secs" => Duration::from_secs(amount),
            "m" | "min" | "mins" => Duration::from_secs(amount.saturating_mul(60)),
            "h" | "hr" | "hrs" => Duration::from_secs(amount.saturating_mul(3600)),
            "d" => Duration::from_secs(amount.saturating_mul(86_400)),
            _ => return Err(invalid()),
        };
        total = total.saturating_add(part);
    }
    Ok(total)
}

/// Formats a duration compactly: `1h30m`, `45s`, `250ms`, `2m0.5s` becomes `2m500ms`.
pub fn format_duration(duration: Duration) -> String {
    if duration.is_zero() {
        return "0s".into();
    }
    let mut out = String::new();
    let mut secs = duration.as_secs();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    let millis = duration.subsec_millis();
    if millis > 0 {
        out.push_str(&format!("{millis}ms"));
    }
    if out.is_empty() {
        out = format!("{}µs", duration.subsec_micros());
    }
    out
}

/// A duration in a `with` block: a string like `5m` or an integer number of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl From<HumanDuration> for Duration {
    fn from(value: HumanDuration) -> Self {
        value.0
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = HumanDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"30s\", \"5m\" or a number of seconds")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HumanDuration, E> {
                Ok(HumanDuration(Duration::from_secs(v)))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HumanDuration, E> {
                u64::try_from(v)
                    .map(|v| HumanDuration(Duration::from_secs(v)))
                    .map_err(|_| E::custom(format!("a duration cannot be negative, got {v}")))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<HumanDuration, E> {
                Duration::try_from_secs_f64(v)
                    .map(HumanDuration)
                    .map_err(|_| E::custom(format!("invalid duration {v}")))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                parse_duration(v)
                    .map(HumanDuration)
                    .map_err(|e| E::custom(e.message()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration(" 45 ").unwrap(), Duration::from_secs(45));
        for bad in ["", "m", "5x", "1.5h", "-3s", "5 m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats() {
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_millis(120_500)), "2m500ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn deserializes_string_or_number() {
        let d: HumanDuration = serde_json::from_str("\"2m\"").unwrap();
        assert_eq!(d.0, Duration::from_secs(120));
        let d: HumanDuration = serde_json::from_str("7").unwrap();
        assert_eq!(d.0, Duration::from_secs(7));
        assert!(serde_json::from_str::<HumanDuration>("-1").is_err());
        assert!(serde_json::from_str::<HumanDuration>("true").is_err());
    }
}
