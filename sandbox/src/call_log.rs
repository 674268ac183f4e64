//! The log of one plugin call: leveled lines from the plugin, its own output and the output of
//! programs it runs, redacted and capped, until the caller drains them into storage.

use crate::secrets::Redactor;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

/// The most one call's log keeps; a plugin that prints more is truncated, not the daemon's
/// memory.
const MAX_LOG_BYTES: usize = 4 << 20;
/// What a line costs beyond its text (timestamp, stream, record): counted against
/// [`MAX_LOG_BYTES`] too, so a million one-character lines are bounded like a million long ones.
const LINE_OVERHEAD: usize = 64;

/// One line of a call's log.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogLine {
    /// Milliseconds since the Unix epoch.
    pub ts: i64,
    /// `trace|debug|info|warn|error` from the plugin, `plugin-stdout|plugin-stderr` for its own
    /// output, `stdout|stderr` for programs it runs.
    pub stream: String,
    /// The text, secrets replaced by `***`.
    pub text: String,
}

/// The log of one call: cheap to clone, shared by the capabilities that write to it. The caller
/// drains it into durable storage.
#[derive(Clone, Default)]
pub struct CallLog {
    inner: Arc<Mutex<LogBuffer>>,
    redactor: Redactor,
}

#[derive(Default)]
struct LogBuffer {
    lines: Vec<LogLine>,
    bytes: usize,
    truncated: bool,
}

impl CallLog {
    /// A log whose lines are scrubbed of the secrets `redactor` knows.
    pub fn new(redactor: Redactor) -> CallLog {
        CallLog {
            inner: Default::default(),
            redactor,
        }
    }

    /// Adds a line (trailing newlines removed), unless the log is full.
    pub fn push(&self, stream: &str, text: &str) {
        let text = self.redactor.redact(text.trim_end_matches(['\n', '\r']));
        let mut buf = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let cost = text.len() + LINE_OVERHEAD;
        if buf.bytes + cost > MAX_LOG_BYTES {
            if !buf.truncated {
                buf.truncated = true;
                buf.lines.push(LogLine {
                    ts: chrono::Utc::now().timestamp_millis(),
                    stream: "warn".into(),
                    text: format!("log truncated at {MAX_LOG_BYTES} bytes"),
                });
            }
            return;
        }
        buf.bytes += cost;
        buf.lines.push(LogLine {
            ts: chrono::Utc::now().timestamp_millis(),
            stream: stream.to_string(),
            text,
        });
    }

    /// Takes the lines written since the last call, for storing.
    pub fn drain(&self) -> Vec<LogLine> {
        std::mem::take(
            &mut self
                .inner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .lines,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_redacted_and_capped() {
        let log = CallLog::new(Redactor::new(["hunter22"].into_iter()));
        log.push("info", "password is hunter22\n");
        let big = "x".repeat(MAX_LOG_BYTES / 2 + 1);
        log.push("stdout", &big);
        log.push("stdout", &big);
        log.push("stdout", &big);
        let lines = log.drain();
        assert_eq!(lines[0].text, "password is ***");
        assert_eq!(lines.len(), 3, "one big line, then the truncation notice");
        assert_eq!(lines[2].stream, "warn");
        assert!(log.drain().is_empty());
    }

    #[test]
    fn many_short_lines_are_bounded_too() {
        let log = CallLog::new(Redactor::default());
        for i in 0..1_000_000 {
            log.push("stdout", &(i % 10).to_string());
        }
        let lines = log.drain();
        assert!(lines.len() < 70_000, "{} lines kept", lines.len());
        assert_eq!(lines.last().unwrap().stream, "warn");
    }
}
