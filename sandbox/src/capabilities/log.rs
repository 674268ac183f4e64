//! The `log` capability: leveled lines from the plugin, and its own stdout and stderr, into the
//! call's log.
//!
//! Every plugin has it; there is nothing to request or grant.

use super::phases::{CallData, HostCapability, Prepare};
use crate::bindings::log::{Host, Level};
use crate::call_log::CallLog;
use crate::error::{Capability, GrantError};
use serde::{Deserialize, Serialize};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// The most a single unterminated line of plugin output may grow before it is logged anyway.
const MAX_LINE: usize = 16 << 10;

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

    fn link<T: CallData>(
        linker: &mut Linker<T>,
        state: fn(&mut T) -> &mut LogState,
    ) -> wasmtime::Result<()> {
        crate::bindings::log::add_to_linker::<T, HasSelf<LogState>>(linker, state)
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
