//! Walks a planned step tree: one task per parallel branch, one plugin call per leaf, and a
//! durable record write for every state change.

use super::plan::{Action, Node, Planner, Scope};
use super::{Engine, RunRequest};
use crate::plugins::confine::{self, Confinement};
use crate::plugins::exec::ExecPolicy;
use crate::plugins::host::{self, CallContext, CallLimits, Op, OpResult, StepRequest, WitOutcome};
use crate::runs::{Run, RunStatus, StepRun, StepStatus, find_step_mut};
use crate::secrets::{Redactor, Secrets};
use crate::steplog::StepLog;
use crate::workflow::{RunAs, template};
use chrono::Utc;
use serde_json::{Map, Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Outputs are stored with every step record and copied into later templates; big data belongs in
/// files in the workspace.
const MAX_OUTPUTS_BYTES: usize = 1 << 20;
/// One summary line, not a report.
const MAX_SUMMARY_CHARS: usize = 500;

/// Shared by every task of one run.
struct RunCtx {
    engine: Arc<Engine>,
    run_id: String,
    workflow: String,
    workspace: std::path::PathBuf,
    source_dir: Option<std::path::PathBuf>,
    /// Top-level template variables: workflow properties and overrides, `run`, `trigger`, `secrets`.
    base: Map<String, Value>,
    redactor: Redactor,
    state: Mutex<RunState>,
}

struct RunState {
    steps: Vec<StepRun>,
    /// Step id → `{outputs, status, summary}` for `steps.<id>` in templates.
    by_id: Map<String, Value>,
}

pub(super) async fn execute(
    engine: Arc<Engine>,
    run: &mut Run,
    req: RunRequest,
) -> anyhow::Result<()> {
    let workspace = engine.workspaces.join(&run.id);
    std::fs::create_dir_all(&workspace)?;

    let mut top = req.workflow.properties.clone();
    crate::project::merge(&mut top, &req.overrides);
    let mut base = top.clone();
    base.insert(
        "run".into(),
        json!({"id": run.id, "workflow": run.workflow, "version": run.version}),
    );
    base.insert("trigger".into(), serde_json::to_value(&req.trigger.inputs)?);
    base.insert("steps".into(), json!({}));
    base.insert("secrets".into(), engine.secrets.as_json());

    let started = Instant::now();
    run.status = RunStatus::Running;
    run.started_at = Some(Utc::now());

    let planner = Planner {
        projects: &engine.projects,
        context: &Value::Object(base.clone()),
        overrides: &req.overrides,
    };
    let root_scope = Arc::new(Scope {
        properties: top,
        dir: req.source_dir.clone(),
    });
    let nodes = match planner.plan(&req.workflow.steps, &root_scope) {
        Ok(nodes) => nodes,
        Err(e) => {
            run.status = RunStatus::Failed;
            run.error = Some(engine.secrets.redactor().redact(&e));
            return finish(&engine, run, started, &workspace).await;
        }
    };
    run.steps = nodes.iter().map(|n| n.records()).collect();
    engine.store.put_run(run)?;
    engine.store.put_steps(&run.id, &run.steps)?;
    engine.store.flush().await?;

    let ctx = Arc::new(RunCtx {
        redactor: engine.secrets.redactor(),
        engine: engine.clone(),
        run_id: run.id.clone(),
        workflow: run.workflow.clone(),
        workspace: workspace.clone(),
        source_dir: req.source_dir,
        base,
        state: Mutex::new(RunState {
            steps: run.steps.clone(),
            by_id: Map::new(),
        }),
    });
    let ok = run_group(&ctx, &nodes, RunAs::Sequential).await;
    run.steps = ctx.state.lock().unwrap().steps.clone();
    run.status = if ok {
        RunStatus::Succeeded
    } else {
        RunStatus::Failed
    };
    finish(&engine, run, started, &workspace).await
}

async fn finish(
    engine: &Engine,
    run: &mut Run,
    started: Instant,
    workspace: &std::path::Path,
) -> anyhow::Result<()> {
    run.finished_at = Some(Utc::now());
    run.duration_ms = Some(started.elapsed().as_millis() as u64);
    engine.store.put_run(run)?;
    engine.store.flush().await?;
    // Outputs and logs are in the store; the scratch space is not needed after the run.
    let _ = std::fs::remove_dir_all(workspace);
    Ok(())
}

/// Runs children as a group; true when the group succeeded.
async fn run_group(ctx: &Arc<RunCtx>, nodes: &[Arc<Node>], run_as: RunAs) -> bool {
    match run_as {
        RunAs::Sequential => {
            for node in nodes {
                let status = run_node(ctx.clone(), node.clone()).await;
                if !passes(node, status) {
                    return false;
                }
            }
            true
        }
        RunAs::Parallel => {
            let mut tasks = tokio::task::JoinSet::new();
            for node in nodes {
                let (ctx, node) = (ctx.clone(), node.clone());
                tasks.spawn(async move {
                    let status = run_node(ctx, node.clone()).await;
                    passes(&node, status)
                });
            }
            // Siblings all finish before the stage decides.
            let mut ok = true;
            while let Some(result) = tasks.join_next().await {
                ok &= result.unwrap_or(false);
            }
            ok
        }
    }
}

fn passes(node: &Node, status: StepStatus) -> bool {
    matches!(status, StepStatus::Succeeded | StepStatus::Skipped) || node.step.continue_on_error
}

/// Runs one node with its `when`, `retry` and `timeout`; returns its final status.
fn run_node(ctx: Arc<RunCtx>, node: Arc<Node>) -> futures::future::BoxFuture<'static, StepStatus> {
    Box::pin(async move {
        if let Some(when) = &node.step.when {
            match template::evaluate(when, &ctx.template_context(&node.scope)) {
                Ok(v) if template::is_truthy(&v) => {}
                Ok(_) => {
                    ctx.skip_tree(&node, &format!("skipped: `{when}` is false"))
                        .await;
                    return StepStatus::Skipped;
                }
                Err(e) => {
                    ctx.fail(&node, format!("`when` failed: {e}"), 0).await;
                    return StepStatus::Failed;
                }
            }
        }
        let retry = &node.step.retry;
        let mut attempt = 1;
        loop {
            let started = Instant::now();
            ctx.update(&node.path, |s| {
                s.status = StepStatus::Running;
                s.started_at = Some(Utc::now());
                s.finished_at = None;
                s.error = None;
                s.attempts = attempt;
            })
            .await;
            let result = match node.step.timeout {
                Some(limit) => {
                    match tokio::time::timeout(limit, run_action(&ctx, &node, attempt, Some(limit)))
                        .await
                    {
                        Ok(r) => r,
                        Err(_) => {
                            ctx.cancel_running(&node).await;
                            Err(format!(
                                "timed out after {}",
                                humantime::format_duration(limit)
                            ))
                        }
                    }
                }
                None => run_action(&ctx, &node, attempt, None).await,
            };
            let elapsed = started.elapsed();
            match result {
                Ok(done) => {
                    ctx.complete(&node, done, elapsed).await;
                    return StepStatus::Succeeded;
                }
                Err(e) if attempt < retry.attempts => {
                    let delay = retry.delay_before(attempt + 1);
                    ctx.log(
                        &node,
                        "warn",
                        &format!(
                            "attempt {attempt} failed: {e}; retrying in {}",
                            humantime::format_duration(delay)
                        ),
                    );
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(e) => {
                    ctx.fail_after(&node, e, attempt, elapsed).await;
                    return StepStatus::Failed;
                }
            }
        }
    })
}

/// What a finished step reports.
#[derive(Default)]
struct Done {
    summary: Option<String>,
    outputs: Map<String, Value>,
}

async fn run_action(
    ctx: &Arc<RunCtx>,
    node: &Arc<Node>,
    attempt: u32,
    timeout: Option<Duration>,
) -> Result<Done, String> {
    match &node.action {
        Action::Group(run_as) => {
            if run_group(ctx, &node.children, *run_as).await {
                Ok(Done { summary: Some(group_summary(ctx, node)), ..Done::default() })
            } else {
                Err(group_failure(ctx, node))
            }
        }
        Action::Plugin { uses, with } => {
            let config = render_config(with, &ctx.template_context(&node.scope))?;
            ctx.call_plugin(node, uses, config, attempt, timeout).await
        }
        Action::Condition { condition } => {
            let value = template::evaluate(condition, &ctx.template_context(&node.scope))
                .map_err(|e| format!("`if` failed: {e}"))?;
            let config = json!({"if": value, "expression": condition});
            let done = ctx.call_plugin(node, "condition", config, attempt, timeout).await?;
            let branch = match done.outputs.get("branch").and_then(Value::as_str) {
                Some("then") => "then",
                Some("else") => "else",
                other => return Err(format!("the condition plugin chose no branch (got {other:?})")),
            };
            let (taken, not_taken): (Vec<_>, Vec<_>) = node.children.iter().cloned().partition(|c| c.branch == Some(branch));
            for child in &not_taken {
                ctx.skip_tree(child, &format!("skipped: `{}` branch not taken", child.branch.unwrap_or("?"))).await;
            }
            if run_group(ctx, &taken, RunAs::Sequential).await {
                Ok(done)
            } else {
                Err(group_failure(ctx, node))
            }
        }
        Action::Wait => Err("wait and approval steps park the run until someone decides; they need the daemon (`wasmops up`) and cannot run embedded".into()),
        Action::Workflow => Err("workflow steps call published workflows; they need the daemon (`wasmops up`) and cannot run embedded".into()),
    }
}

/// Renders `with`, naming the key whose template failed.
fn render_config(with: &Value, context: &Value) -> Result<Value, String> {
    fn go(value: &Value, path: &str, context: &Value) -> Result<Value, String> {
        Ok(match value {
            Value::String(s) => Value::String(
                template::render(s, context)
                    .map_err(|e| format!("template error in `{path}`: {e}"))?,
            ),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| go(v, &format!("{path}[{i}]"), context))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), go(v, &format!("{path}.{k}"), context)?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => other.clone(),
        })
    }
    go(with, "with", context)
}

fn group_summary(ctx: &RunCtx, node: &Node) -> String {
    let state = ctx.state.lock().unwrap();
    let Some(record) = find(&state.steps, &node.path) else {
        return String::new();
    };
    let total = record.children.len();
    let ok = record
        .children
        .iter()
        .filter(|c| c.status == StepStatus::Succeeded)
        .count();
    let skipped = record
        .children
        .iter()
        .filter(|c| c.status == StepStatus::Skipped)
        .count();
    match skipped {
        0 => format!("{ok}/{total} steps succeeded"),
        s => format!("{ok}/{total} steps succeeded, {s} skipped"),
    }
}

fn group_failure(ctx: &RunCtx, node: &Node) -> String {
    let state = ctx.state.lock().unwrap();
    let failed: Vec<String> = find(&state.steps, &node.path)
        .map(|r| {
            r.children
                .iter()
                .filter(|c| c.status == StepStatus::Failed)
                .map(|c| format!("{} {}", c.path, c.name))
                .collect()
        })
        .unwrap_or_default();
    format!("failed: {}", failed.join(", "))
}

fn find<'a>(steps: &'a [StepRun], path: &str) -> Option<&'a StepRun> {
    let mut indices = path
        .split('.')
        .map(|i| i.parse::<usize>().ok().and_then(|i| i.checked_sub(1)));
    let mut node = steps.get(indices.next()??)?;
    for index in indices {
        node = node.children.get(index?)?;
    }
    Some(node)
}

impl RunCtx {
    fn template_context(&self, scope: &Scope) -> Value {
        let mut ctx = self.base.clone();
        ctx.insert("properties".into(), Value::Object(scope.properties.clone()));
        ctx.insert(
            "steps".into(),
            Value::Object(self.state.lock().unwrap().by_id.clone()),
        );
        Value::Object(ctx)
    }

    /// Applies a change to a step record and makes it durable.
    async fn update(&self, path: &str, change: impl FnOnce(&mut StepRun)) {
        let record = {
            let mut state = self.state.lock().unwrap();
            let Some(step) = find_step_mut(&mut state.steps, path) else {
                return;
            };
            change(step);
            step.shallow()
        };
        self.persist(&[record]).await;
    }

    async fn persist(&self, records: &[StepRun]) {
        for record in records {
            if let Err(e) = self.engine.store.put_step(&self.run_id, record) {
                tracing::error!(run = %self.run_id, step = %record.path, "cannot store step: {e:#}");
            }
        }
        if let Err(e) = self.engine.store.flush().await {
            tracing::error!(run = %self.run_id, "cannot flush the store: {e:#}");
        }
    }

    fn log(&self, node: &Node, stream: &str, text: &str) {
        let line = crate::steplog::LogLine {
            ts: Utc::now().timestamp_millis(),
            stream: stream.into(),
            text: self.redactor.redact(text),
        };
        let _ = self
            .engine
            .store
            .append_logs(&self.run_id, &node.path, &[line]);
    }

    async fn complete(&self, node: &Node, done: Done, elapsed: Duration) {
        let summary = done.summary.map(|s| self.redactor.redact(&s));
        let outputs = match self.redactor.redact_json(&Value::Object(done.outputs)) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        if let Some(id) = &node.step.id {
            self.state.lock().unwrap().by_id.insert(
                id.clone(),
                json!({"outputs": outputs, "status": "succeeded", "summary": summary}),
            );
        }
        self.update(&node.path, |s| {
            s.status = StepStatus::Succeeded;
            s.finished_at = Some(Utc::now());
            s.duration_ms = Some(elapsed.as_millis() as u64);
            s.summary = summary;
            s.outputs = outputs;
        })
        .await;
    }

    async fn fail(&self, node: &Node, error: String, attempts: u32) {
        self.fail_after(node, error, attempts, Duration::ZERO).await
    }

    async fn fail_after(&self, node: &Node, error: String, attempts: u32, elapsed: Duration) {
        let error = self.redactor.redact(&error);
        if let Some(id) = &node.step.id {
            self.state.lock().unwrap().by_id.insert(
                id.clone(),
                json!({"outputs": {}, "status": "failed", "summary": null}),
            );
        }
        self.update(&node.path, |s| {
            s.status = StepStatus::Failed;
            s.finished_at = Some(Utc::now());
            s.duration_ms = Some(elapsed.as_millis() as u64);
            s.summary = Some(error.lines().next().unwrap_or_default().to_string());
            s.error = Some(error);
            if attempts > 0 {
                s.attempts = attempts;
            }
        })
        .await;
    }

    /// Marks a subtree skipped (a false `when`, a branch not taken).
    async fn skip_tree(&self, node: &Node, reason: &str) {
        let mut records = Vec::new();
        {
            let mut state = self.state.lock().unwrap();
            let mut stack = vec![node];
            while let Some(n) = stack.pop() {
                if let Some(step) = find_step_mut(&mut state.steps, &n.path) {
                    step.status = StepStatus::Skipped;
                    step.summary = Some(reason.to_string());
                    records.push(step.shallow());
                }
                stack.extend(n.children.iter().map(|c| c.as_ref()));
            }
        }
        self.persist(&records).await;
    }

    /// After a timeout dropped a subtree's futures: whatever was still running is cancelled.
    async fn cancel_running(&self, node: &Node) {
        let mut records = Vec::new();
        {
            let mut state = self.state.lock().unwrap();
            let mut stack: Vec<&Node> = node.children.iter().map(|c| c.as_ref()).collect();
            while let Some(n) = stack.pop() {
                if let Some(step) = find_step_mut(&mut state.steps, &n.path)
                    && matches!(step.status, StepStatus::Running | StepStatus::Waiting)
                {
                    step.status = StepStatus::Cancelled;
                    step.finished_at = Some(Utc::now());
                    step.summary = Some("cancelled: the enclosing step timed out".into());
                    records.push(step.shallow());
                }
                stack.extend(n.children.iter().map(|c| c.as_ref()));
            }
        }
        self.persist(&records).await;
    }

    async fn call_plugin(
        &self,
        node: &Node,
        uses: &str,
        config: Value,
        attempt: u32,
        step_timeout: Option<Duration>,
    ) -> Result<Done, String> {
        let engine = &self.engine;
        let plugin = engine.registry.get(uses).ok_or_else(|| {
            let known: Vec<&str> = engine.registry.step_plugin_names().collect();
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
        let secrets = granted_secrets(&engine.secrets, &plugin.grants.secrets);
        let call = Arc::new(CallContext {
            plugin: plugin.name().to_string(),
            log: log.clone(),
            exec: ExecPolicy {
                programs: plugin.grants.programs.clone(),
                workspace: self.workspace.clone(),
                env: granted_env,
                confinement: self.confinement(&plugin.grants, node),
            },
            secrets,
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
        let result = host::call(&engine.runtime, &plugin, call, limits, Op::Run(request)).await;
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
                Ok(Done { summary, outputs })
            }
            OpResult::Outcome(Ok(WitOutcome::Waiting(_))) => Err(format!(
                "plugin `{uses}` asked to wait; waiting steps need the daemon (`wasmops up`)"
            )),
            OpResult::Outcome(Err(e)) => Err(e),
            _ => Err(format!("plugin `{uses}` answered the wrong call")),
        }
    }
}

impl RunCtx {
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
