//! [`Context`]: what the host told the plugin about the step it is running.
//!
//! It mirrors the WIT `step-request` minus the `config` (which arrives separately, already typed),
//! with paths as [`PathBuf`]s and the run context parsed from JSON only when a plugin asks for it —
//! a step that never looks at `properties` should not pay for parsing them.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

use crate::bindings::wasmops::plugin::types::StepRequest;

/// The step being run: identity, attempt, directories and the run context.
#[derive(Debug)]
pub struct Context {
    /// The run this step belongs to (`wfr_…`).
    pub run_id: String,
    /// The step's path in the run tree, e.g. `2.1`; stable within a run.
    pub step_path: String,
    /// The step's `id`, when the workflow gave it one.
    pub step_id: Option<String>,
    /// 1 on the first attempt; retries and resumed runs count up.
    pub attempt: u32,
    /// Identical for every attempt of this step in this run: use it to make side effects idempotent.
    pub idempotency_key: String,
    /// The run's workspace. The same absolute path works for `std::fs` and for programs run with
    /// [`crate::exec`].
    pub workspace: PathBuf,
    /// Directory of the workflow or project the run came from (read-only), when there is one.
    pub source_dir: Option<PathBuf>,
    config_json: String,
    context_json: String,
    context: OnceLock<Value>,
}

impl Context {
    /// Builds a context from the raw WIT request.
    pub fn from_request(request: StepRequest) -> Self {
        Self {
            run_id: request.run_id,
            step_path: request.step_path,
            step_id: request.step_id,
            attempt: request.attempt,
            idempotency_key: request.idempotency_key,
            workspace: PathBuf::from(request.workspace),
            source_dir: request.source_dir.map(PathBuf::from),
            config_json: request.config,
            context_json: request.context,
            context: OnceLock::new(),
        }
    }

    /// A context for unit tests of plugin logic outside a host.
    pub fn for_tests(workspace: impl Into<PathBuf>) -> Self {
        Self {
            run_id: "wfr_test0000".into(),
            step_path: "1".into(),
            step_id: None,
            attempt: 1,
            idempotency_key: "wfr_test0000/1".into(),
            workspace: workspace.into(),
            source_dir: None,
            config_json: "{}".into(),
            context_json: "{}".into(),
            context: OnceLock::new(),
        }
    }

    /// The run context as JSON: an object with `properties`, `run`, `env` and `trigger`.
    /// Parsed on first use; malformed JSON (a host bug) reads as `null`.
    pub fn context(&self) -> &Value {
        self.context
            .get_or_init(|| serde_json::from_str(&self.context_json).unwrap_or(Value::Null))
    }

    /// The merged `properties` of the run (`null` when there are none).
    pub fn properties(&self) -> &Value {
        self.context_field("properties")
    }

    /// The run's environment, as `{{ env }}` reads it in templates (`null` when absent).
    pub fn env(&self) -> &Value {
        self.context_field("env")
    }

    /// What triggered the run (`null` when absent).
    pub fn trigger(&self) -> &Value {
        self.context_field("trigger")
    }

    /// A value from the run context by JSON pointer, e.g. `/properties/hostname`.
    pub fn lookup(&self, pointer: &str) -> Option<&Value> {
        self.context().pointer(pointer)
    }

    /// The step's `with` block exactly as the host sent it (JSON text).
    pub fn raw_config(&self) -> &str {
        &self.config_json
    }

    /// The step's `id` if it has one, else its path: the best short name for messages and files.
    pub fn step_name(&self) -> &str {
        self.step_id.as_deref().unwrap_or(&self.step_path)
    }

    /// Resolves a path from the workflow: absolute paths stay, relative ones are taken relative to
    /// the source directory when there is one, else to the workspace.
    pub fn resolve_source_path(&self, path: impl AsRef<Path>) -> PathBuf {
        let path = path.as_ref();
        if path.is_absolute() {
            return path.to_path_buf();
        }
        self.source_dir
            .as_deref()
            .unwrap_or(&self.workspace)
            .join(path)
    }

    /// Resolves a path relative to the workspace (absolute paths stay as they are).
    pub fn resolve_workspace_path(&self, path: impl AsRef<Path>) -> PathBuf {
        self.workspace.join(path)
    }

    /// The `WASMOPS_*` variables a program run for this step should see: run id, step path,
    /// workspace and attempt.
    pub fn standard_env(&self) -> Vec<(String, String)> {
        vec![
            ("WASMOPS_RUN_ID".into(), self.run_id.clone()),
            ("WASMOPS_STEP_PATH".into(), self.step_path.clone()),
            (
                "WASMOPS_WORKSPACE".into(),
                self.workspace.to_string_lossy().into_owned(),
            ),
            ("WASMOPS_ATTEMPT".into(), self.attempt.to_string()),
        ]
    }

    fn context_field(&self, key: &str) -> &Value {
        static NULL: Value = Value::Null;
        self.context().get(key).unwrap_or(&NULL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(context: &str, source_dir: Option<&str>) -> StepRequest {
        StepRequest {
            run_id: "wfr_abcd1234".into(),
            step_path: "2.1".into(),
            step_id: Some("plan".into()),
            config: r#"{"a":1}"#.into(),
            context: context.into(),
            attempt: 2,
            idempotency_key: "k".into(),
            workspace: "/ws".into(),
            source_dir: source_dir.map(Into::into),
        }
    }

    #[test]
    fn context_is_parsed_lazily() {
        let ctx = Context::from_request(request(r#"{"properties":{"host":"a"}}"#, None));
        assert!(ctx.context.get().is_none());
        assert_eq!(ctx.properties()["host"], "a");
        assert_eq!(ctx.lookup("/properties/host").unwrap(), "a");
        assert!(ctx.trigger().is_null());
        assert_eq!(ctx.raw_config(), r#"{"a":1}"#);
        assert_eq!(ctx.step_name(), "plan");
    }

    #[test]
    fn source_paths() {
        let ctx = Context::from_request(request("{}", Some("/src")));
        assert_eq!(ctx.resolve_source_path("x.sh"), Path::new("/src/x.sh"));
        assert_eq!(ctx.resolve_source_path("/abs.sh"), Path::new("/abs.sh"));
        let ctx = Context::from_request(request("{}", None));
        assert_eq!(ctx.resolve_source_path("x.sh"), Path::new("/ws/x.sh"));
    }
}
