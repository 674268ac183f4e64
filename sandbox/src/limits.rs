//! The memory and time a plugin asks for (`[limits]`), and how sizes and durations are
//! written.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Linear memory a plugin gets when `plugin.toml` says nothing.
pub const DEFAULT_MEMORY: u64 = 256 << 20;
/// Wall time of one call when `plugin.toml` says nothing.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

/// Processes a program run may have at once when `plugin.toml` says nothing.
pub const DEFAULT_PROCESSES: u64 = 512;
/// Data memory of one program process when `plugin.toml` says nothing.
pub const DEFAULT_PROGRAM_MEMORY: u64 = 2 << 30;
/// The size the run workspace may grow to while a program runs, when `plugin.toml` says
/// nothing.
pub const DEFAULT_WORKSPACE: u64 = 4 << 30;

/// `[limits]`: memory and time per call, and what the programs it starts may use.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Linear memory, e.g. `128MiB`.
    pub memory: Option<String>,
    /// Wall time of one call, e.g. `30m`.
    pub timeout: Option<String>,
    /// Processes and threads of its programs at once (`RLIMIT_NPROC`), e.g. `256`.
    pub processes: Option<u64>,
    /// Data memory of each program process (`RLIMIT_DATA`), e.g. `4GiB`.
    pub program_memory: Option<String>,
    /// CPU time of each program process (`RLIMIT_CPU`), e.g. `10m`; the call's timeout when
    /// left out.
    pub program_cpu: Option<String>,
    /// How large the run workspace may grow while its programs run, e.g. `8GiB`; also the
    /// largest file a program may write.
    pub workspace_size: Option<String>,
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

    /// Processes of its programs at once.
    pub fn processes(&self) -> Result<u64, String> {
        match self.processes {
            Some(0) => Err("processes must be at least 1".into()),
            Some(n) => Ok(n),
            None => Ok(DEFAULT_PROCESSES),
        }
    }

    /// Data memory per program process, in bytes.
    pub fn program_memory(&self) -> Result<u64, String> {
        self.program_memory
            .as_deref()
            .map_or(Ok(DEFAULT_PROGRAM_MEMORY), parse_size)
    }

    /// CPU time per program process.
    pub fn program_cpu(&self) -> Result<Duration, String> {
        self.program_cpu
            .as_deref()
            .map_or_else(|| self.timeout(), parse_duration)
    }

    /// The workspace size bound, in bytes.
    pub fn workspace_size(&self) -> Result<u64, String> {
        self.workspace_size
            .as_deref()
            .map_or(Ok(DEFAULT_WORKSPACE), parse_size)
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

/// The longest duration any setting takes (timeouts, delays, waits): a year and a day. Longer
/// ones are mistakes, and clocks and deadlines computed from them could overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 86_400);

/// `30s`, `5m`, `1h 30m` (humantime) or a number of seconds, at most [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let duration = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(text).map_err(|e| e.to_string())?,
    };
    if duration > MAX_DURATION {
        return Err("longer than the longest allowed, 366 days".into());
    }
    Ok(duration)
}
