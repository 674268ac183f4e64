//! Parked human steps: a wait plugin asks to wait, the run is parked durably (no plugin instance
//! held), and a decision — continue, approve, reject, or the timeout — resumes the plugin.

use super::call::{CallKind, PluginOutcome};
use super::plan::Node;
use super::records::{Done, RunCtx};
use super::{Engine, EngineError};
use crate::identity::{Actor, Role};
use crate::records::find_step_mut;
use crate::records::{ApprovedResult, DecisionRecord, RunStatus, StepRun, StepStatus, WaitState};
use crate::workflow::{Approvers, OnTimeout, StepKind};
use chrono::Utc;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use wasmops_sandbox::{Decision, DecisionKind, WaitRequest};

#[derive(Clone, Debug)]
pub struct DecisionInput {
    /// `continue`, `approve` or `reject`.
    pub kind: String,
    pub comment: Option<String>,
}

/// The `with` the `wait` plugin gets from a workflow's wait step.
pub(super) fn wait_config(node: &Node) -> Value {
    let StepKind::Wait {
        approvers,
        on_timeout,
        ..
    } = &node.step.kind
    else {
        return json!({});
    };
    let approvers = approvers.clone().unwrap_or_default();
    json!({
        "user_names": approvers.user_names,
        "ldap_groups": approvers.ldap_groups,
        "timeout_ms": node.step.timeout.map(|t| t.as_millis() as u64),
        "on_timeout": match on_timeout { OnTimeout::Reject => "reject", OnTimeout::Approve => "approve" },
    })
}

impl RunCtx {
    /// Runs a wait step: the plugin parks it, a decision (or the deadline) resumes it.
    pub async fn run_wait(&self, node: &Node, attempt: u32) -> Result<Done, String> {
        if matches!(self.engine.mode, super::Mode::Embedded) {
            return Err("wait and approval steps park the run until someone decides through the API; run this workflow under the daemon (`wasmops up`)".into());
        }
        let config = wait_config(node);
        // A step already parked before a restart goes straight back to waiting.
        match self.record(&node.path).and_then(|r| r.wait) {
            None => match self
                .call_plugin(node, "wait", config.clone(), attempt, None, CallKind::Run)
                .await?
            {
                PluginOutcome::Done(done) => return Ok(done),
                PluginOutcome::Waiting(request) => self.park(node, request).await,
            },
            Some(wait) if wait.decision.is_none() => self.set_run_status(RunStatus::Waiting).await,
            Some(_) => {}
        }
        loop {
            let decision = self.await_decision(node).await;
            let wait = self
                .record(&node.path)
                .and_then(|r| r.wait)
                .unwrap_or_else(|| WaitState {
                    summary: String::new(),
                    approvers: None,
                    deadline: None,
                    state: String::new(),
                    decision: None,
                    approves: None,
                });
            self.update(&node.path, |s| s.status = StepStatus::Running)
                .await;
            self.set_run_status(RunStatus::Running).await;
            let wit = Decision {
                kind: match decision.kind.as_str() {
                    "approve" => DecisionKind::Approve,
                    "reject" => DecisionKind::Reject,
                    "timeout" => DecisionKind::Timeout,
                    _ => DecisionKind::Continue,
                },
                actor: decision.by.clone(),
                comment: decision.comment.clone(),
            };
            let resumed = self
                .call_plugin(
                    node,
                    "wait",
                    config.clone(),
                    attempt,
                    None,
                    CallKind::Resume {
                        state: wait.state,
                        decision: wit,
                    },
                )
                .await?;
            match resumed {
                PluginOutcome::Done(mut done) => {
                    if decision.kind == "approve" {
                        done.approved_by = decision.by.clone();
                        // What later steps check they act on: `{{ steps.<id>.outputs.approved_sha256 }}`.
                        if let Some(bound) = &wait.approves {
                            done.outputs
                                .insert("approved_step".into(), json!(bound.step));
                            done.outputs
                                .insert("approved_sha256".into(), json!(bound.sha256));
                        }
                    }
                    return Ok(done);
                }
                PluginOutcome::Waiting(request) => self.park(node, request).await,
            }
        }
    }

    async fn park(&self, node: &Node, request: WaitRequest) {
        let wait = WaitState {
            summary: request.summary.clone(),
            approvers: request.approvers.map(|a| Approvers {
                user_names: a.user_names,
                ldap_groups: a.groups,
            }),
            deadline: request.timeout_ms.map(|ms| {
                Utc::now() + chrono::Duration::milliseconds(ms.min(i64::MAX as u64) as i64)
            }),
            state: request.state,
            decision: None,
            approves: self.bound_result(node),
        };
        self.update(&node.path, |s| {
            s.status = StepStatus::Waiting;
            s.summary = Some(wait.summary.clone());
            s.wait = Some(wait);
        })
        .await;
        self.set_run_status(RunStatus::Waiting).await;
    }

    /// The result an approval binds to (`approves: ID`): that step's summary and its
    /// `plan_sha256` output, or a digest of all its outputs.
    fn bound_result(&self, node: &Node) -> Option<ApprovedResult> {
        let StepKind::Wait {
            approves: Some(id), ..
        } = &node.step.kind
        else {
            return None;
        };
        let step = self.state.lock().unwrap().by_id.get(id).cloned()?;
        let sha256 = match step["outputs"]["plan_sha256"].as_str() {
            Some(digest) => digest.to_string(),
            None => {
                use sha2::Digest;
                hex::encode(sha2::Sha256::digest(step["outputs"].to_string()))
            }
        };
        Some(ApprovedResult {
            step: id.clone(),
            summary: step["summary"].as_str().map(str::to_string),
            sha256,
        })
    }

    /// Holds no thread: a task waits on a notification or the deadline.
    async fn await_decision(&self, node: &Node) -> DecisionRecord {
        let notify = self.waiter(&node.path);
        loop {
            let wait = self.record(&node.path).and_then(|r| r.wait);
            if let Some(decision) = wait.as_ref().and_then(|w| w.decision.clone()) {
                return decision;
            }
            match wait.and_then(|w| w.deadline) {
                Some(deadline) => {
                    let left = (deadline - Utc::now()).to_std().unwrap_or_default();
                    tokio::select! {
                        _ = notify.notified() => {}
                        _ = tokio::time::sleep(left) => {
                            let decision = DecisionRecord { kind: "timeout".into(), by: None, comment: None, at: Utc::now() };
                            // Someone deciding at the same moment wins; a store that
                            // failed is tried again shortly.
                            if let Err(EngineError::Store(e)) = self.record_decision(&node.path, decision).await {
                                tracing::warn!(run = %self.run_id, "cannot record a timeout: {e}");
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                        }
                    }
                }
                None => notify.notified().await,
            }
        }
    }

    /// Records a decision on the parked step at `path`: durable first, then in memory, then
    /// announced and the step woken. A decision already there is a conflict; a write that does
    /// not become durable changes nothing and is the caller's error.
    async fn record_decision(
        &self,
        path: &str,
        decision: DecisionRecord,
    ) -> Result<StepRun, EngineError> {
        let _turn = self.deciding.lock().await;
        let decided = {
            let mut state = self.state.lock().unwrap();
            let step = find_step_mut(&mut state.run.steps, path).ok_or_else(|| {
                EngineError::NotFound(format!("no step {path} in run {}", self.run_id))
            })?;
            let Some(wait) = &step.wait else {
                return Err(EngineError::Conflict(format!("step {path} is not waiting")));
            };
            if wait.decision.is_some() {
                return Err(EngineError::Conflict(format!(
                    "step {path} was already decided"
                )));
            }
            let mut decided = step.shallow();
            if let Some(wait) = &mut decided.wait {
                wait.decision = Some(decision.clone());
            }
            decided
        };
        self.engine
            .runs
            .put(&self.run_id, None, std::slice::from_ref(&decided))
            .await?;
        {
            let mut state = self.state.lock().unwrap();
            if let Some(wait) =
                find_step_mut(&mut state.run.steps, path).and_then(|s| s.wait.as_mut())
            {
                wait.decision = Some(decision);
            }
        }
        self.announce(&decided);
        self.waiter(path).notify_one();
        Ok(decided)
    }
}

impl Engine {
    /// Continues, approves or rejects a parked step. The decision is durable before this returns;
    /// someone not entitled to decide (not a listed approver of a gate; below `operator` for a
    /// plain wait) gets `Forbidden` and nothing is recorded.
    pub async fn decide(
        &self,
        run_id: &str,
        step: &str,
        input: DecisionInput,
        actor: &Actor,
    ) -> Result<StepRun, EngineError> {
        if !matches!(input.kind.as_str(), "continue" | "approve" | "reject") {
            return Err(EngineError::Invalid(format!(
                "unknown decision `{}`: continue, approve or reject",
                input.kind
            )));
        }
        let run = self.load(run_id).await?;
        let record = find_by_path_or_id(&run.steps, step).ok_or_else(|| {
            EngineError::NotFound(format!(
                "run `{run_id}` has no step with path or id `{step}`"
            ))
        })?;
        let Some(wait) = record
            .wait
            .clone()
            .filter(|_| record.status == StepStatus::Waiting)
        else {
            return Err(EngineError::Conflict(format!(
                "step {} ({}) is not waiting for a decision",
                record.path, record.name
            )));
        };
        if wait.decision.is_some() {
            return Err(EngineError::Conflict(format!(
                "step {} was already decided",
                record.path
            )));
        }
        match (&wait.approvers, input.kind.as_str()) {
            // A plain wait names no one: deciding it is acting on the run, an operator's part.
            (None, "continue" | "reject") if actor.role < Role::Operator => {
                return Err(EngineError::Forbidden(format!(
                    "deciding step {} (a plain wait) needs the {} role; {} has the {} role",
                    record.path,
                    Role::Operator,
                    actor.name,
                    actor.role
                )));
            }
            (None, "continue" | "reject") => {}
            (None, other) => {
                return Err(EngineError::Invalid(format!(
                    "step {} is a plain wait: continue or reject it, not `{other}`",
                    record.path
                )));
            }
            (Some(_), "continue") => {
                return Err(EngineError::Conflict(format!(
                    "step {} is an approval gate: approve or reject it",
                    record.path
                )));
            }
            // The approvers list is the grant, whatever the role: a `viewer` it names may
            // decide, an `admin` it does not name may not.
            (Some(approvers), "approve" | "reject") => {
                let named = approvers.user_names.contains(&actor.name);
                let in_group = approvers
                    .ldap_groups
                    .iter()
                    .any(|g| actor.groups.contains(g));
                if !named && !in_group {
                    return Err(EngineError::Forbidden(format!(
                        "{} may not decide step {}: approvers are {}",
                        actor.name,
                        record.path,
                        describe(approvers)
                    )));
                }
            }
            (_, other) => {
                return Err(EngineError::Invalid(format!(
                    "unknown decision `{other}`: continue, approve or reject"
                )));
            }
        }
        let Some(ctx) = self.active_run(run_id).await else {
            return Err(EngineError::Conflict(format!(
                "run `{run_id}` is not active in this daemon yet; try again in a moment"
            )));
        };
        let decision = DecisionRecord {
            kind: input.kind,
            by: Some(actor.name.clone()),
            comment: input.comment,
            at: Utc::now(),
        };
        // On a task of its own: if the client goes away mid-request, the decision is still
        // stored and the step still woken, never one without the other.
        let path = record.path.clone();
        tokio::spawn(async move { ctx.record_decision(&path, decision).await })
            .await
            .map_err(|e| EngineError::Internal(anyhow::anyhow!("recording the decision: {e}")))?
    }
}

/// How long a decision waits for its run to be taken back after a restart.
const TAKE_BACK_WAIT: Duration = Duration::from_secs(10);

impl Engine {
    /// The run's context once this daemon drives it. Right after a restart, recovery takes
    /// parked runs back one by one; a decision posted meanwhile waits for its run (up to
    /// [`TAKE_BACK_WAIT`]) instead of being refused.
    async fn active_run(&self, run_id: &str) -> Option<Arc<RunCtx>> {
        let deadline = tokio::time::Instant::now() + TAKE_BACK_WAIT;
        loop {
            // Listening before looking: a run registered in between still wakes this.
            let registered = self.live.registered.notified();
            tokio::pin!(registered);
            registered.as_mut().enable();
            if let Some(ctx) = self.live.runs.lock().unwrap().get(run_id).cloned() {
                return Some(ctx);
            }
            if tokio::time::timeout_at(deadline, registered).await.is_err() {
                return None;
            }
        }
    }
}

fn describe(approvers: &Approvers) -> String {
    let mut who: Vec<String> = approvers.user_names.clone();
    who.extend(approvers.ldap_groups.iter().map(|g| format!("group {g}")));
    who.join(", ")
}

pub fn find_by_path_or_id<'a>(steps: &'a [StepRun], wanted: &str) -> Option<&'a StepRun> {
    steps.iter().find_map(|s| {
        if s.path == wanted || s.id.as_deref() == Some(wanted) {
            Some(s)
        } else {
            find_by_path_or_id(&s.children, wanted)
        }
    })
}
