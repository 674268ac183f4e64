//! The `log` capability: leveled lines from the plugin, its own stdout and stderr, and the
//! output of programs it runs, redacted and capped, into the call's log.
//!
//! Every plugin has it; there is nothing to request or grant.

use super::{HostCapability, Prepare};
use crate::bindings::log::{Host, Level};
use crate::call::CallState;
use crate::error::{Capability, GrantError};
use crate::redact::Redactor;
use serde::{Deserialize, Serialize};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// The most one call's log keeps; a plugin that prints more is truncated, not the daemon's
/// memory.
const MAX_LOG_BYTES: usize = 4 << 20;

/// The most a single unterminated line of plugin output may grow before it is logged anyway.
const MAX_LINE: usize = 16 << 10;

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
        let mut buf = self.inner.lock().unwrap_or_else(|e| e.into_inner());
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
        std::mem::take(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()).lines)
    }
}

/// The log capability.
pub(crate) struct Log;

/// Nothing to ask for: every plugin may log.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LogRequest {}

/// Nothing to narrow.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LogOperator {}

/// Always granted.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LogGrant {}

/// A call's log, as the `log` host function sees it.
pub(crate) struct LogState {
    log: CallLog,
}

impl HostCapability for Log {
    const NAME: Capability = Capability::Log;
    const REQUEST_KEYS: &'static [&'static str] = &[];
    const OPERATOR_KEYS: &'static [&'static str] = &[];
    type Request = LogRequest;
    type Operator = LogOperator;
    type Grant = LogGrant;
    type State = LogState;

    fn link(
        linker: &mut Linker<CallState>,
        state: fn(&mut CallState) -> &mut LogState,
    ) -> wasmtime::Result<()> {
        crate::bindings::log::add_to_linker::<_, HasSelf<LogState>>(linker, state)
    }

    fn grant(_: &LogRequest, _: &LogOperator) -> Result<LogGrant, GrantError> {
        Ok(LogGrant {})
    }

    fn prepare(_: &LogGrant, cx: &mut Prepare<'_>) -> Result<LogState, String> {
        // The plugin's own stdout and stderr land in the log too, so a crash's message (a
        // Python traceback, a Rust panic) is where the operator looks.
        cx.wasi.stdout(PluginOutput {
            log: cx.env.log.clone(),
            stream: "plugin-stdout",
        });
        cx.wasi.stderr(PluginOutput {
            log: cx.env.log.clone(),
            stream: "plugin-stderr",
        });
        Ok(LogState {
            log: cx.env.log.clone(),
        })
    }
}

impl Host for LogState {
    async fn log(&mut self, level: Level, message: String) {
        let stream = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        for line in message.lines() {
            self.log.push(stream, line);
        }
    }
}

/// A plugin's stdout or stderr, line by line into its log.
struct PluginOutput {
    log: CallLog,
    stream: &'static str,
}

impl IsTerminal for PluginOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for PluginOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            log: self.log.clone(),
            stream: self.stream,
            pending: Vec::new(),
        })
    }
}

struct LineWriter {
    log: CallLog,
    stream: &'static str,
    pending: Vec<u8>,
}

impl LineWriter {
    fn emit_complete_lines(&mut self) {
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.log.push(self.stream, &String::from_utf8_lossy(&line));
        }
        if self.pending.len() > MAX_LINE {
            let line = std::mem::take(&mut self.pending);
            self.log.push(self.stream, &String::from_utf8_lossy(&line));
        }
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.pending.extend_from_slice(buf);
        self.emit_complete_lines();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.log.push(self.stream, &String::from_utf8_lossy(&line));
        }
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
}
