//! The live state of one run: its records in memory, mirrored to the store on every change.

use super::Engine;
use super::plan::{Node, Scope};
use crate::records::{Run, RunStatus, StepRun, StepStatus, find_step_mut};
use chrono::Utc;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use wasmops_sandbox::Redactor;

/// Shared by every task of one run.
pub(super) struct RunCtx {
    pub engine: Arc<Engine>,
    pub run_id: String,
    pub workflow: String,
    pub workspace: std::path::PathBuf,
    pub source_dir: Option<std::path::PathBuf>,
    /// Top-level template variables: workflow properties and overrides, `run`, `trigger`; never
    /// `secrets`, which only a plugin step's `with:` gets.
    pub base: Map<String, Value>,
    pub redactor: Redactor,
    pub state: Mutex<RunState>,
    /// Parked steps wait on these; a decision wakes them.
    pub waiters: Mutex<HashMap<String, Arc<Notify>>>,
    /// Held while a decision is checked, stored and applied, so two at once cannot both pass
    /// the check.
    pub deciding: tokio::sync::Mutex<()>,
    /// The projects the run started with; child runs start with them too.
    pub projects: Arc<crate::project::Projects>,
}

pub(super) struct RunState {
    pub run: Run,
    /// Step id → `{outputs, status, summary}` for `steps.<id>` in templates.
    pub by_id: Map<String, Value>,
}

/// What a finished step reports.
#[derive(Default)]
pub(super) struct Done {
    pub summary: Option<String>,
    pub outputs: Map<String, Value>,
    pub approved_by: Option<String>,
}

pub(super) fn find<'a>(steps: &'a [StepRun], path: &str) -> Option<&'a StepRun> {
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
    pub fn template_context(&self, scope: &Scope) -> Value {
        let mut ctx = self.base.clone();
        scope.enter(&mut ctx);
        ctx.insert(
            "steps".into(),
            Value::Object(self.state.lock().unwrap().by_id.clone()),
        );
        Value::Object(ctx)
    }

    pub fn record(&self, path: &str) -> Option<StepRun> {
        find(&self.state.lock().unwrap().run.steps, path).map(StepRun::shallow)
    }

    /// Applies a change to a step record and makes it durable.
    pub async fn update(&self, path: &str, change: impl FnOnce(&mut StepRun)) {
        let record = {
            let mut state = self.state.lock().unwrap();
            let Some(step) = find_step_mut(&mut state.run.steps, path) else {
                return;
            };
            change(step);
            step.shallow()
        };
        self.persist(&[record]).await;
    }

    pub async fn set_run_status(&self, status: RunStatus) {
        let header = {
            let mut state = self.state.lock().unwrap();
            if state.run.status == status {
                return;
            }
            state.run.status = status;
            state.run.clone()
        };
        if let Err(e) = self.engine.runs.put(&self.run_id, Some(&header), &[]).await {
            tracing::error!(run = %self.run_id, "cannot store run: {e:#}");
        }
        self.engine.publish_run(&header);
    }

    pub async fn persist(&self, records: &[StepRun]) {
        if records.is_empty() {
            return;
        }
        if let Err(e) = self.engine.runs.put(&self.run_id, None, records).await {
            // Not durable, so not announced: a watcher must never see what a crash could
            // take back.
            tracing::error!(run = %self.run_id, "cannot store steps: {e:#}");
            return;
        }
        for record in records {
            self.announce(record);
            if record.status.is_finished() && record.status != StepStatus::Skipped {
                let status = format!("{:?}", record.status).to_lowercase();
                let mut totals = self.engine.live.step_totals.lock().unwrap();
                let entry = totals.entry(status).or_default();
                entry.0 += 1;
                entry.1 += record.duration_ms.unwrap_or(0);
            }
        }
    }

    /// Tells event watchers about a step record that is durable.
    pub fn announce(&self, record: &StepRun) {
        let _ = self.engine.live.events.send(super::RunEvent {
            run: self.run_id.clone(),
            kind: "step",
            data: serde_json::to_value(record).unwrap_or_default(),
        });
    }

    pub async fn log(&self, node: &Node, stream: &str, text: &str) {
        let line = crate::records::LogLine {
            ts: Utc::now().timestamp_millis(),
            stream: stream.into(),
            text: self.redactor.redact(text),
        };
        if let Err(e) = self
            .engine
            .runs
            .append_logs(&self.run_id, &node.path, &[line])
            .await
        {
            tracing::error!(run = %self.run_id, "cannot store logs: {e:#}");
        }
    }

    pub async fn complete(&self, node: &Node, done: Done, elapsed: Duration) {
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
            if done.approved_by.is_some() {
                s.approved_by = done.approved_by;
            }
        })
        .await;
    }

    pub async fn fail(&self, node: &Node, error: String, attempts: u32) {
        self.fail_after(node, error, attempts, Duration::ZERO).await;
    }

    pub async fn fail_after(&self, node: &Node, error: String, attempts: u32, elapsed: Duration) {
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
    pub async fn skip_tree(&self, node: &Node, reason: &str) {
        let mut records = Vec::new();
        {
            let mut state = self.state.lock().unwrap();
            let mut stack = vec![node];
            while let Some(n) = stack.pop() {
                if let Some(step) = find_step_mut(&mut state.run.steps, &n.path) {
                    step.status = StepStatus::Skipped;
                    step.summary = Some(reason.to_string());
                    records.push(step.shallow());
                }
                stack.extend(n.children.iter().map(AsRef::as_ref));
            }
        }
        self.persist(&records).await;
    }

    /// After a timeout or a cancel dropped a subtree's futures: whatever was still running or
    /// waiting in it is cancelled.
    pub async fn cancel_running(&self, path_prefix: Option<&str>, reason: &str) {
        fn walk(steps: &mut [StepRun], prefix: Option<&str>, reason: &str, out: &mut Vec<StepRun>) {
            for step in steps {
                let inside = prefix.is_none_or(|p| step.path.starts_with(&format!("{p}.")));
                if inside && matches!(step.status, StepStatus::Running | StepStatus::Waiting) {
                    step.status = StepStatus::Cancelled;
                    step.finished_at = Some(Utc::now());
                    step.summary = Some(reason.to_string());
                    out.push(step.shallow());
                }
                walk(&mut step.children, prefix, reason, out);
            }
        }
        let mut records = Vec::new();
        walk(
            &mut self.state.lock().unwrap().run.steps,
            path_prefix,
            reason,
            &mut records,
        );
        self.persist(&records).await;
    }

    pub fn waiter(&self, path: &str) -> Arc<Notify> {
        self.waiters
            .lock()
            .unwrap()
            .entry(path.to_string())
            .or_default()
            .clone()
    }
}
