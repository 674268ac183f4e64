//! A step's log: leveled lines from the plugin and the output of programs it runs, redacted.

use crate::secrets::Redactor;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

/// The most a single step keeps; a plugin that prints more is truncated, not the daemon's memory.
const MAX_LOG_BYTES: usize = 4 << 20;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogLine {
    /// Milliseconds since the Unix epoch.
    pub ts: i64,
    /// `trace|debug|info|warn|error`, or `stdout|stderr` for program output.
    pub stream: String,
    pub text: String,
}

#[derive(Clone, Default)]
pub struct StepLog {
    inner: Arc<Mutex<LogBuffer>>,
    redactor: Redactor,
}

#[derive(Default)]
struct LogBuffer {
    lines: Vec<LogLine>,
    bytes: usize,
    truncated: bool,
}

impl StepLog {
    pub fn new(redactor: Redactor) -> StepLog {
        StepLog {
            inner: Default::default(),
            redactor,
        }
    }

    pub fn push(&self, stream: &str, text: &str) {
        let text = self.redactor.redact(text.trim_end_matches(['\n', '\r']));
        let mut buf = self.inner.lock().unwrap();
        if buf.bytes + text.len() > MAX_LOG_BYTES {
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
        buf.bytes += text.len();
        buf.lines.push(LogLine {
            ts: chrono::Utc::now().timestamp_millis(),
            stream: stream.to_string(),
            text,
        });
    }

    /// Takes the lines written since the last call, for storing.
    pub fn drain(&self) -> Vec<LogLine> {
        std::mem::take(&mut self.inner.lock().unwrap().lines)
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }
}
