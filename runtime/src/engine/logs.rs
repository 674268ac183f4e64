//! A plugin call's log, written to the store while the plugin runs: lines can be read as they
//! come, memory holds only what is not written yet, and what a program printed before a
//! timeout or a cancel is kept even when the call itself is dropped.

use crate::store::RunStore;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};
use wasmops_sandbox::CallLog;

/// How often new lines are written while a call runs.
const INTERVAL: Duration = Duration::from_millis(200);

/// The writer of one call's log. Dropped (the step's future was dropped on a timeout or a
/// cancel), it still writes what is left, on its own task.
pub(super) struct LogStream {
    stop: DropGuard,
    writer: JoinHandle<()>,
}

/// Starts writing `log` to `run_id`'s log of step `step`.
pub(super) fn stream(log: CallLog, runs: Arc<dyn RunStore>, run_id: &str, step: &str) -> LogStream {
    let token = CancellationToken::new();
    let stopped = token.clone();
    let (run_id, step) = (run_id.to_string(), step.to_string());
    let writer = tokio::spawn(async move {
        loop {
            let last = tokio::select! {
                () = stopped.cancelled() => true,
                () = tokio::time::sleep(INTERVAL) => false,
            };
            let lines = log.drain();
            if !lines.is_empty()
                && let Err(e) = runs.append_logs(&run_id, &step, &lines).await
            {
                tracing::error!(run = %run_id, step = %step, "cannot store log lines: {e:#}");
            }
            if last {
                break;
            }
        }
    });
    LogStream {
        stop: token.drop_guard(),
        writer,
    }
}

impl LogStream {
    /// Writes what is left and returns once it is stored.
    pub(super) async fn finish(self) {
        drop(self.stop);
        let _ = self.writer.await;
    }
}
