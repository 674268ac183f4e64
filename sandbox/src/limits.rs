//! The memory and time a plugin asks for (`[limits]`), and how sizes and durations are
//! written.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Linear memory a plugin gets when `plugin.toml` says nothing.
pub const DEFAULT_MEMORY: u64 = 256 << 20;
/// Wall time of one call when `plugin.toml` says nothing.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

/// `[limits]`: memory and time per call.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Linear memory, e.g. `128MiB`.
    pub memory: Option<String>,
    /// Wall time of one call, e.g. `30m`.
    pub timeout: Option<String>,
}

impl Limits {
    /// The memory limit in bytes.
    pub fn memory(&self) -> Result<u64, String> {
        self.memory
            .as_deref()
            .map_or(Ok(DEFAULT_MEMORY), parse_size)
    }

    /// The wall-time limit of one call.
    pub fn timeout(&self) -> Result<Duration, String> {
        self.timeout
            .as_deref()
            .map_or(Ok(DEFAULT_TIMEOUT), parse_duration)
    }
}

/// `64MiB`, `1GiB`, `512KiB`, `100MB` or a byte count.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size like 128MiB"))?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => return Err(format!("unknown size unit `{other}` in `{text}`")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// `30s`, `5m`, `1h 30m` (humantime) or a number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text).map_err(|e| e.to_string())
}
