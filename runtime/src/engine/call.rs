//! One plugin call for a step: the request, the capabilities in force, the limits, and what the
//! plugin answered.

use super::plan::Node;
use super::records::{Done, RunCtx};
use serde_json::{Map, Value, json};
use std::time::Duration;
use wasmops_sandbox::{CallEnv, CallLog, Decision, StepOutcome, StepRequest, WaitRequest};

/// Outputs are stored with every step record and copied into later templates; big data belongs in
/// files in the workspace.
const MAX_OUTPUTS_BYTES: usize = 1 << 20;
/// One summary line, not a report.
const MAX_SUMMARY_CHARS: usize = 500;
/// Where plugins that offer `$WASMOPS_OUTPUT` put its files, below the workspace
/// (`wasmops_sdk::output_file`).
pub(super) const OUTPUTS_DIR: &str = ".wasmops/outputs";

pub(super) enum PluginOutcome {
    Done(Done),
    Waiting(WaitRequest),
}

/// `run`, or `resume` of a parked step with its state and the decision.
pub(super) enum CallKind {
    Run,
    Resume { state: String, decision: Decision },
}

impl RunCtx {
    pub async fn call_plugin(
        &self,
        node: &Node,
        uses: &str,
        config: Value,
        attempt: u32,
        step_timeout: Option<Duration>,
        kind: CallKind,
    ) -> Result<PluginOutcome, String> {
        let engine = &self.engine;
        let plugin = engine.registry.get(uses).ok_or_else(|| {
            let names = engine.registry.names(wasmops_sandbox::PluginKind::Step);
            let known: Vec<&str> = names.iter().map(String::as_str).collect();
            let hint = crate::diagnostics::did_you_mean(uses, known.iter().copied())
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_else(|| format!("; installed: {}", known.join(", ")));
            format!("unknown plugin `{uses}`{hint}")
        })?;
        let log = CallLog::new(self.redactor.clone());
        let env = CallEnv {
            log: log.clone(),
            workspace: Some(self.workspace.clone()),
            sources: node
                .scope
                .dir
                .iter()
                .chain(self.source_dir.iter())
                .cloned()
                .collect(),
            timeout: step_timeout,
        };
        let request = StepRequest {
            run_id: self.run_id.clone(),
            step_path: node.path.clone(),
            step_id: node.step.id.clone(),
            config: config.to_string(),
            context: self.request_context(node).to_string(),
            attempt,
            // The same for every attempt and after a restart, so side effects can be made
            // idempotent.
            idempotency_key: format!("{}/{}", self.run_id, node.path),
            workspace: self.workspace.to_string_lossy().into_owned(),
            source_dir: node
                .scope
                .dir
                .as_ref()
                .or(self.source_dir.as_ref())
                .map(|d| d.to_string_lossy().into_owned()),
        };
        let sandbox = &engine.sandbox;
        let log_stream = super::logs::stream(log, engine.runs.clone(), &self.run_id, &node.path);
        let result = match kind {
            CallKind::Run => sandbox.step_run(&plugin, env, &request).await,
            CallKind::Resume { state, decision } => {
                sandbox
                    .step_resume(&plugin, env, &request, &state, &decision)
                    .await
            }
        };
        // The raw `$WASMOPS_OUTPUT` file of this attempt (the SDK's convention) holds what the
        // program wrote, unredacted; what the plugin made of it is in its result.
        let _ = wasmops_sandbox::remove_beneath(
            &self.workspace,
            &std::path::Path::new(OUTPUTS_DIR).join(format!("{}.{attempt}.env", node.path)),
        );
        log_stream.finish().await;
        match result.map_err(|failure| failure.to_string())? {
            StepOutcome::Completed(result) => {
                if result.outputs.len() > MAX_OUTPUTS_BYTES {
                    return Err(format!(
                        "plugin `{uses}` returned {} bytes of outputs; the limit is {MAX_OUTPUTS_BYTES}",
                        result.outputs.len()
                    ));
                }
                let outputs = match serde_json::from_str::<Value>(&result.outputs) {
                    Ok(Value::Object(map)) => map,
                    Ok(Value::Null) => Map::new(),
                    Ok(_) | Err(_) => {
                        return Err(format!(
                            "plugin `{uses}` returned outputs that are not a JSON object"
                        ));
                    }
                };
                let summary =
                    result
                        .summary
                        .map(|s| match s.char_indices().nth(MAX_SUMMARY_CHARS) {
                            Some((cut, _)) => format!("{}…", &s[..cut]),
                            None => s,
                        });
                Ok(PluginOutcome::Done(Done {
                    summary,
                    outputs,
                    approved_by: None,
                }))
            }
            StepOutcome::Waiting(wait) => Ok(PluginOutcome::Waiting(wait)),
        }
    }

    /// The run context a plugin gets, as the WIT documents it: `properties`, `run`, `env` (the
    /// environment of the asset a change step runs on, or the run's `env` property) and
    /// `trigger` (what the trigger fired with, as `{{ trigger.* }}` reads it).
    fn request_context(&self, node: &Node) -> Value {
        let env = node
            .scope
            .environment
            .as_ref()
            .map(|e| Value::String(e.clone()))
            .or_else(|| self.base.get("env").cloned())
            .unwrap_or(Value::Null);
        json!({
            "properties": node.scope.properties,
            "run": self.base.get("run").cloned().unwrap_or(Value::Null),
            "env": env,
            "trigger": self.base.get("trigger").cloned().unwrap_or(Value::Null),
        })
    }

    /// A call whose plugin must complete (no waiting), as most steps do.
    pub async fn call_to_completion(
        &self,
        node: &Node,
        uses: &str,
        config: Value,
        attempt: u32,
        step_timeout: Option<Duration>,
    ) -> Result<Done, String> {
        match self
            .call_plugin(node, uses, config, attempt, step_timeout, CallKind::Run)
            .await?
        {
            PluginOutcome::Done(done) => Ok(done),
            PluginOutcome::Waiting(_) => Err(format!(
                "plugin `{uses}` asked to wait, which only `wait` steps may do"
            )),
        }
    }
}
