//! `/metrics`: Prometheus text. Runs by state come from the store's counts, not by reading
//! every run.

use super::AppState;
use super::errors::ApiResult;
use crate::records::RunStatus;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// Prometheus text format: runs by status, queue depth, step durations, plugin instantiations.
pub async fn metrics(State(st): State<AppState>) -> ApiResult<Response> {
    use std::fmt::Write;
    let counts = st.engine.runs.count_by_status().await?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP wasmops_runs Runs in the store by status.\n# TYPE wasmops_runs gauge"
    );
    for status in RunStatus::ALL {
        let n = counts.get(&status).copied().unwrap_or(0);
        let _ = writeln!(out, "wasmops_runs{{status=\"{}\"}} {n}", status.as_str());
    }
    let queued = counts.get(&RunStatus::Queued).copied().unwrap_or(0);
    let _ = writeln!(
        out,
        "# HELP wasmops_queue_depth Runs waiting for a slot of their workflow.\n# TYPE wasmops_queue_depth gauge\nwasmops_queue_depth {queued}"
    );
    let _ = writeln!(
        out,
        "# HELP wasmops_step_duration_seconds Finished steps since start.\n# TYPE wasmops_step_duration_seconds summary"
    );
    for (status, (count, ms)) in st
        .engine
        .live
        .step_totals
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
    {
        let _ = writeln!(
            out,
            "wasmops_step_duration_seconds_count{{status=\"{status}\"}} {count}"
        );
        let _ = writeln!(
            out,
            "wasmops_step_duration_seconds_sum{{status=\"{status}\"}} {:.3}",
            *ms as f64 / 1000.0
        );
    }
    let instances = st.engine.sandbox.instantiations();
    let _ = writeln!(
        out,
        "# HELP wasmops_plugin_instantiations_total Plugin instances created since start.\n# TYPE wasmops_plugin_instantiations_total counter\nwasmops_plugin_instantiations_total {instances}"
    );
    let streams = super::events::open_streams();
    let _ = writeln!(
        out,
        "# HELP wasmops_event_streams Run event streams open now.\n# TYPE wasmops_event_streams gauge\nwasmops_event_streams {streams}"
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}
