//! Walks a planned step tree: one task per parallel branch, one plugin call per leaf, and a
//! durable record write for every state change. Steps a previous attempt of the run completed are
//! kept, so the same walk serves a first run, a resumed run and a retry.

use super::plan::{Action, Node, Planner, Scope};
use super::records::{Done, RunCtx, RunState, find};
use super::{Engine, EngineError};
use crate::records::{Run, RunSpec, RunStatus, StepRun, StepStatus};
use crate::store::{RunQuery, list_all};
use crate::workflow::{RunAs, template};
use chrono::Utc;
use serde_json::{Map, Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub(super) async fn execute(
    engine: Arc<Engine>,
    run_id: &str,
    spec: RunSpec,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let mut run = engine.load(run_id).await?;
    let workspace = engine.workspaces.join(&run.id);
    std::fs::create_dir_all(&workspace)?;
    // Only the daemon lists the workspaces; a program reaches its own by path (its user keeps
    // the right to look through directories), so nothing left in another run's workspace,
    // failed ones kept for a retry among them, is within reach of anyone else on the host.
    std::fs::set_permissions(
        &engine.workspaces,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )?;
    let started = Instant::now();
    let previous = std::mem::take(&mut run.steps);
    if let Some(reason) = count_interruption(&mut run, &previous) {
        run.status = RunStatus::Failed;
        run.error = Some(reason);
        run.steps = previous;
        return finish(&engine, run, started, &workspace).await;
    }
    run.status = RunStatus::Running;
    run.started_at.get_or_insert_with(Utc::now);
    run.finished_at = None;
    // Durable before planning: if planning or anything after it takes the process down, the
    // next start sees a run that was executing and counts it.
    engine.runs.put(&run.id, Some(&run), &[]).await?;

    // Parsing and planning a large workflow is CPU work: off the async workers, a few at a time.
    let parsed = {
        let spec = spec.clone();
        crate::blocking::run(move || Engine::parse_spec(&spec)).await
    };
    let workflow = match parsed
        .map_err(EngineError::Invalid)
        .and_then(|parsed| parsed)
    {
        Ok(w) => w,
        Err(e) => {
            run.status = RunStatus::Failed;
            run.error = Some(e.to_string());
            return finish(&engine, run, started, &workspace).await;
        }
    };
    let mut top = workflow.properties.clone();
    crate::project::merge(&mut top, &spec.overrides);
    let mut base = top.clone();
    base.insert(
        "run".into(),
        json!({"id": run.id, "workflow": run.workflow, "version": run.version}),
    );
    base.insert(
        "trigger".into(),
        serde_json::to_value(&spec.trigger.inputs)?,
    );
    base.insert("steps".into(), json!({}));
    // No template sees `secrets` but a plugin step's `with:`, and there only what its plugin is
    // granted (see `run_action`); not even a property of that name stands in for them.
    base.remove("secrets");

    // Steps see project files in the workspace, never where they came from.
    let projects = match engine.projects_for(&spec).await {
        Ok(projects) => projects,
        Err(e) => {
            run.status = RunStatus::Failed;
            run.error = Some(e.to_string());
            return finish(&engine, run, started, &workspace).await;
        }
    };
    let seen = super::files::in_workspace(&projects, &workspace);
    let run_dir = super::files::run_dir(&run.workflow, spec.source_dir.as_deref(), &workspace);
    let root_scope = Arc::new(Scope {
        properties: top,
        dir: run_dir.clone(),
        environment: None,
    });
    let planned = {
        let (context, overrides) = (Value::Object(base.clone()), spec.overrides.clone());
        crate::blocking::run(move || {
            let planner = Planner {
                projects: &seen,
                context: &context,
                overrides: &overrides,
            };
            planner.plan(&workflow.steps, &root_scope)
        })
        .await
        .and_then(|planned| planned)
    };
    let planned = match planned {
        Ok(nodes) => super::files::materialize(
            &engine,
            &projects,
            &nodes,
            run_dir.as_deref(),
            spec.source_dir.as_deref(),
            &workspace,
        )
        .await
        .map(|()| nodes),
        Err(e) => Err(e),
    };
    let nodes = match planned {
        Ok(nodes) => nodes,
        Err(e) => {
            run.status = RunStatus::Failed;
            run.error = Some(engine.sandbox.secrets().redactor().redact(&e));
            return finish(&engine, run, started, &workspace).await;
        }
    };
    let mut by_id = Map::new();
    run.steps = nodes
        .iter()
        .map(|n| keep_completed(n.records(), &previous, &mut by_id))
        .collect();
    engine.runs.put(&run.id, Some(&run), &run.steps).await?;

    let ctx = Arc::new(RunCtx {
        redactor: engine.sandbox.secrets().redactor().clone(),
        engine: engine.clone(),
        run_id: run.id.clone(),
        workflow: run.workflow.clone(),
        workspace: workspace.clone(),
        source_dir: run_dir,
        base,
        state: Mutex::new(RunState { run, by_id }),
        waiters: Default::default(),
        deciding: Default::default(),
        projects: projects.clone(),
    });
    engine
        .live
        .runs
        .lock()
        .unwrap()
        .insert(ctx.run_id.clone(), ctx.clone());
    engine.live.registered.notify_waiters();
    let outcome = tokio::select! {
        ok = run_group(&ctx, &nodes, RunAs::Sequential) => if ok { RunStatus::Succeeded } else { RunStatus::Failed },
        _ = cancel.cancelled() => RunStatus::Cancelled,
    };
    if outcome == RunStatus::Cancelled {
        ctx.cancel_running(None, "cancelled").await;
        // Child runs were driven inside this run's future, which is gone now: settle them too.
        cancel_children(&engine, &ctx.run_id).await?;
    }
    engine.live.runs.lock().unwrap().remove(&ctx.run_id);
    let mut run = ctx.state.lock().unwrap().run.clone();
    run.status = outcome;
    finish(&engine, run, started, &workspace).await
}

/// A run stored as `running` was executing when the daemon stopped. If that happened twice
/// with nothing done in between, the run itself is the likely cause (a crash loop): it fails
/// with the reason instead of being started again. Returns that reason.
fn count_interruption(run: &mut Run, previous: &[StepRun]) -> Option<String> {
    if run.status != RunStatus::Running {
        return None;
    }
    let progress = previous
        .iter()
        .fold(0u32, |n, step| n.saturating_add(step.progress()));
    run.interruptions = if run.interruptions > 0 && run.progress_at_interruption == progress {
        run.interruptions.saturating_add(1)
    } else {
        1
    };
    run.progress_at_interruption = progress;
    (run.interruptions >= 2).then(|| {
        "the daemon stopped twice while this run was executing, with no step finishing in \
         between; it is failed rather than started a third time (retry it once the cause is \
         fixed)"
            .to_string()
    })
}

/// Marks the unfinished child runs of `run_id` (and theirs) cancelled.
fn cancel_children<'a>(
    engine: &'a Engine,
    run_id: &'a str,
) -> futures::future::BoxFuture<'a, anyhow::Result<()>> {
    cancel_children_within(engine, run_id, None)
}

/// Marks the unfinished child runs of `run_id` cancelled, of every step or only of the steps
/// at or beneath `step`, and their own children with them.
fn cancel_children_within<'a>(
    engine: &'a Engine,
    run_id: &'a str,
    step: Option<&'a str>,
) -> futures::future::BoxFuture<'a, anyhow::Result<()>> {
    Box::pin(async move {
        let query = RunQuery {
            parent: Some(run_id.to_string()),
            statuses: RunStatus::ACTIVE.to_vec(),
            ..RunQuery::default()
        };
        let children = list_all(engine.runs.as_ref(), query).await?;
        for child in children {
            let started_by = child
                .parent()
                .and_then(|p| p.split_once('/'))
                .map(|(_, path)| path.to_string());
            if let Some(step) = step
                && !started_by.is_some_and(|path| crate::store::within_step(&path, step))
            {
                continue;
            }
            engine.live.runs.lock().unwrap().remove(&child.id);
            // A child driven on its own (resumed after a restart) stops with its programs.
            if let Some(token) = engine.live.cancels.lock().unwrap().get(&child.id) {
                token.cancel();
            }
            let mut run = engine.load(&child.id).await?;
            fn settle(steps: &mut [StepRun]) {
                for step in steps {
                    if matches!(step.status, StepStatus::Running | StepStatus::Waiting) {
                        step.status = StepStatus::Cancelled;
                        step.finished_at = Some(Utc::now());
                        step.summary = Some("cancelled with the parent run".into());
                    }
                    settle(&mut step.children);
                }
            }
            settle(&mut run.steps);
            run.status = RunStatus::Cancelled;
            run.finished_at = Some(Utc::now());
            engine.runs.put(&run.id, Some(&run), &run.steps).await?;
            engine.publish_run(&run);
            cancel_children(engine, &run.id).await?;
        }
        Ok(())
    })
}

/// A run cancelled while it was still queued.
pub(super) async fn mark_cancelled_before_start(
    engine: &Engine,
    run_id: &str,
) -> anyhow::Result<()> {
    let mut run = engine.load(run_id).await?;
    run.status = RunStatus::Cancelled;
    run.finished_at = Some(Utc::now());
    engine.runs.put(run_id, Some(&run), &[]).await?;
    engine.publish_run(&run);
    Ok(())
}

/// The planned record, or the stored one when an earlier attempt completed it (or parked it).
/// Everything else starts over, keeping its attempt count so attempts keep counting up.
fn keep_completed(
    planned: StepRun,
    previous: &[StepRun],
    by_id: &mut Map<String, Value>,
) -> StepRun {
    let Some(old) = find(previous, &planned.path) else {
        return planned;
    };
    let same_step = old.name == planned.name && old.kind == planned.kind;
    if same_step && matches!(old.status, StepStatus::Succeeded | StepStatus::Skipped) {
        if let (Some(id), StepStatus::Succeeded) = (&old.id, old.status) {
            by_id.insert(
                id.clone(),
                json!({"outputs": old.outputs, "status": "succeeded", "summary": old.summary}),
            );
        }
        let mut kept = old.shallow();
        kept.children = planned
            .children
            .into_iter()
            .map(|c| keep_completed(c, previous, by_id))
            .collect();
        return kept;
    }
    let mut fresh = planned;
    if same_step {
        fresh.attempts = old.attempts;
        // A parked step stays parked, and one interrupted after its decision was recorded resumes
        // with that decision instead of asking again.
        if old.wait.is_some() && !old.status.is_finished() {
            fresh.status = StepStatus::Waiting;
            fresh.wait = old.wait.clone();
            fresh.started_at = old.started_at;
            fresh.summary = old.summary.clone();
        }
    }
    fresh.children = fresh
        .children
        .into_iter()
        .map(|c| keep_completed(c, previous, by_id))
        .collect();
    fresh
}

async fn finish(
    engine: &Engine,
    mut run: Run,
    started: Instant,
    workspace: &std::path::Path,
) -> anyhow::Result<()> {
    run.finished_at = Some(Utc::now());
    let total = run
        .started_at
        .map(|s| (Utc::now() - s).num_milliseconds().max(0) as u64);
    run.duration_ms = total.or(Some(started.elapsed().as_millis() as u64));
    engine.runs.put(&run.id, Some(&run), &run.steps).await?;
    engine.publish_run(&run);
    // Outputs and logs are in the store; the scratch space is not needed after the run. A run
    // that did not succeed keeps it for a retry, less what holds a secret.
    if run.status == RunStatus::Succeeded {
        let _ = std::fs::remove_dir_all(workspace);
    } else {
        let redactor = engine.sandbox.secrets().redactor().clone();
        let workspace = workspace.to_path_buf();
        let _ = tokio::task::spawn_blocking(move || scrub_workspace(&workspace, &redactor)).await;
    }
    Ok(())
}

/// Removes from a workspace what could hold a secret in clear: the raw `$WASMOPS_OUTPUT` files
/// and the programs' temporary directory, then every other file in which the redactor finds a
/// secret in any form it knows (read in chunks, symlinks not followed). A retry that needs such a
/// file makes it again.
fn scrub_workspace(workspace: &std::path::Path, redactor: &wasmops_sandbox::Redactor) {
    // Beneath the workspace only: a program may have made `.wasmops` a link to a host directory.
    let _ =
        wasmops_sandbox::remove_beneath(workspace, std::path::Path::new(super::call::OUTPUTS_DIR));
    let _ = wasmops_sandbox::remove_beneath(workspace, std::path::Path::new(".tmp"));
    if redactor.is_empty() {
        return;
    }
    let mut dirs = vec![workspace.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => dirs.push(path),
                Ok(kind) if kind.is_file() => {
                    // A file that cannot be read cannot be shown clean either.
                    let holds = std::fs::File::open(&path)
                        .and_then(|f| redactor.found_in(std::io::BufReader::new(f)))
                        .unwrap_or(true);
                    if holds {
                        tracing::warn!(
                            file = %path.display(),
                            "removed a file the failed run left in its workspace: it held a secret"
                        );
                        let _ = std::fs::remove_file(&path);
                    }
                }
                _ => {}
            }
        }
    }
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
        if let Some(done @ (StepStatus::Succeeded | StepStatus::Skipped)) =
            ctx.status_of(&node.path)
        {
            return done;
        }
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
        let resumed_wait = ctx.status_of(&node.path) == Some(StepStatus::Waiting);
        let mut attempt =
            ctx.record(&node.path).map_or(0, |r| r.attempts) + u32::from(!resumed_wait);
        let first = attempt;
        loop {
            let started = Instant::now();
            if !(resumed_wait && attempt == first) {
                ctx.update(&node.path, |s| {
                    s.status = StepStatus::Running;
                    s.started_at = Some(Utc::now());
                    s.finished_at = None;
                    s.error = None;
                    s.attempts = attempt;
                })
                .await;
            }
            // A wait step's `timeout` is how long it may wait; its plugin decides what that means.
            let limit = node
                .step
                .timeout
                .filter(|_| !matches!(node.action, Action::Wait));
            let result = match limit {
                Some(limit) => {
                    match tokio::time::timeout(limit, run_action(&ctx, &node, attempt, Some(limit)))
                        .await
                    {
                        Ok(r) => r,
                        Err(_) => {
                            ctx.cancel_running(
                                Some(&node.path),
                                "cancelled: the enclosing step timed out",
                            )
                            .await;
                            // Child runs its workflow steps started were driven inside the
                            // future the timeout dropped: settle them too.
                            if let Err(e) =
                                cancel_children_within(&ctx.engine, &ctx.run_id, Some(&node.path))
                                    .await
                            {
                                tracing::error!(run = %ctx.run_id, "cannot cancel child runs: {e:#}");
                            }
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
                Err(e) if attempt < first + retry.attempts - 1 => {
                    let delay = retry.delay_before(attempt + 1);
                    ctx.log(
                        &node,
                        "warn",
                        &format!(
                            "attempt {attempt} failed: {e}; retrying in {}",
                            humantime::format_duration(delay)
                        ),
                    )
                    .await;
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

async fn run_action(
    ctx: &Arc<RunCtx>,
    node: &Arc<Node>,
    attempt: u32,
    timeout: Option<Duration>,
) -> Result<Done, String> {
    match &node.action {
        Action::Group(run_as) => {
            if run_group(ctx, &node.children, *run_as).await {
                Ok(Done {
                    summary: Some(group_summary(ctx, node)),
                    ..Done::default()
                })
            } else {
                Err(group_failure(ctx, node))
            }
        }
        Action::Plugin { uses, with } => {
            let mut context = ctx.template_context(&node.scope);
            if let (Value::Object(map), Some(plugin)) =
                (&mut context, ctx.engine.registry.get(uses))
            {
                let granted = ctx
                    .engine
                    .sandbox
                    .secrets()
                    .granted_json(&plugin.grants().secrets);
                map.insert("secrets".into(), granted);
            }
            let config = render_config(with, &context)?;
            ctx.call_to_completion(node, uses, config, attempt, timeout)
                .await
        }
        Action::Condition { condition } => {
            let value = template::evaluate(condition, &ctx.template_context(&node.scope))
                .map_err(|e| format!("`if` failed: {e}"))?;
            let config = json!({"if": value, "expression": condition});
            let done = ctx
                .call_to_completion(node, "condition", config, attempt, timeout)
                .await?;
            let branch = match done.outputs.get("branch").and_then(Value::as_str) {
                Some("then") => "then",
                Some("else") => "else",
                other => {
                    return Err(format!(
                        "the condition plugin chose no branch (got {other:?})"
                    ));
                }
            };
            let (taken, not_taken): (Vec<_>, Vec<_>) = node
                .children
                .iter()
                .cloned()
                .partition(|c| c.branch == Some(branch));
            for child in &not_taken {
                ctx.skip_tree(
                    child,
                    &format!(
                        "skipped: `{}` branch not taken",
                        child.branch.unwrap_or("?")
                    ),
                )
                .await;
            }
            if run_group(ctx, &taken, RunAs::Sequential).await {
                Ok(done)
            } else {
                Err(group_failure(ctx, node))
            }
        }
        Action::Wait => ctx.run_wait(node, attempt).await,
        Action::Workflow => ctx.run_children(node).await,
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
    let Some(record) = find(&state.run.steps, &node.path) else {
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
    let failed: Vec<String> = find(&state.run.steps, &node.path)
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

impl RunCtx {
    fn status_of(&self, path: &str) -> Option<StepStatus> {
        find(&self.state.lock().unwrap().run.steps, path).map(|s| s.status)
    }
}
