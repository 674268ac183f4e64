//! One plugin call for a step: the request, the capabilities in force, the limits, and what the
//! plugin answered.

use super::plan::Node;
use super::records::{Done, RunCtx};
use crate::plugins::confine::{self, Confinement};
use crate::plugins::exec::ExecPolicy;
use crate::plugins::host::{
    self, CallContext, CallLimits, Decision, Op, OpResult, StepRequest, WaitRequest, WitOutcome,
};
use crate::secrets::Secrets;
use crate::steplog::StepLog;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Outputs are stored with every step record and copied into later templates; big data belongs in
/// files in the workspace.
const MAX_OUTPUTS_BYTES: usize = 1 << 20;
/// One summary line, not a report.
const MAX_SUMMARY_CHARS: usize = 500;

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
            let names = engine.registry.step_plugin_names();
            let known: Vec<&str> = names.iter().map(String::as_str).collect();
            let hint = crate::diagnostics::did_you_mean(uses, known.iter().copied())
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_else(|| format!("; installed: {}", known.join(", ")));
            format!("unknown plugin `{uses}`{hint}")
        })?;
        let plugin_timeout = plugin.grants.timeout;
        let wall = step_timeout.map_or(plugin_timeout, |t| t.min(plugin_timeout));
        let log = StepLog::new(self.redactor.clone());
        let granted_env = plugin
            .grants
            .env
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.clone(), v)))
            .collect();
        let call = Arc::new(CallContext {
            plugin: plugin.name().to_string(),
            log: log.clone(),
            exec: ExecPolicy {
                programs: plugin.grants.programs.clone(),
                workspace: self.workspace.clone(),
                env: granted_env,
                confinement: self.confinement(&plugin.grants, node),
            },
            secrets: granted_secrets(&engine.secrets, &plugin.grants.secrets),
            deadline: Instant::now() + wall,
            http_grants: plugin.grants.http.clone(),
            http_allow_private: plugin.grants.allow_private_http,
            denials: Default::default(),
        });
        let request = StepRequest {
            run_id: self.run_id.clone(),
            step_path: node.path.clone(),
            step_id: node.step.id.clone(),
            config: config.to_string(),
            context: json!({
                "properties": node.scope.properties,
                "run": {"id": self.run_id, "workflow": self.workflow},
            })
            .to_string(),
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
        let limits = CallLimits {
            memory: plugin.grants.memory,
            wall,
        };
        let op = match kind {
            CallKind::Run => Op::Run(request),
            CallKind::Resume { state, decision } => Op::Resume(request, state, decision),
        };
        let result = host::call(&engine.runtime, &plugin, call, limits, op).await;
        let lines = log.drain();
        if let Err(e) = engine.store.append_logs(&self.run_id, &node.path, &lines) {
            tracing::error!(run = %self.run_id, "cannot store logs: {e:#}");
        }
        match result? {
            OpResult::Outcome(Ok(WitOutcome::Completed(result))) => {
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
            OpResult::Outcome(Ok(WitOutcome::Waiting(wait))) => Ok(PluginOutcome::Waiting(wait)),
            OpResult::Outcome(Err(e)) => Err(e),
            _ => Err(format!("plugin `{uses}` answered the wrong call")),
        }
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

    /// What the programs a plugin starts may touch: the workspace, the workflow's directory to
    /// read, the granted directories, and what the granted programs need to start.
    fn confinement(&self, grants: &crate::capabilities::Grants, node: &Node) -> Confinement {
        use crate::plugins::manifest::FileMode;
        let mut read_write = vec![self.workspace.clone()];
        let mut read_only: Vec<std::path::PathBuf> = node
            .scope
            .dir
            .iter()
            .chain(self.source_dir.iter())
            .cloned()
            .collect();
        for (dir, mode) in &grants.dirs {
            match mode {
                FileMode::Rw => read_write.push(dir.clone()),
                FileMode::Ro => read_only.push(dir.clone()),
            }
        }
        read_only.extend(
            grants
                .programs
                .values()
                .flat_map(|p| confine::program_roots(p)),
        );
        read_only.sort();
        read_only.dedup();
        Confinement {
            read_write,
            read_only,
            network: grants.network,
            unconfined: self.engine.unconfined,
        }
    }
}

fn granted_secrets(secrets: &Secrets, patterns: &[String]) -> Vec<(String, String)> {
    let Value::Object(all) = secrets.as_json() else {
        return Vec::new();
    };
    all.into_iter()
        .filter(|(k, _)| Secrets::is_granted(patterns, k))
        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
        .collect()
}
