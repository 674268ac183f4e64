//! The engine: turns a workflow into a run, walks its step tree on tokio (sequential and
//! parallel stages, conditions, retries, timeouts) and records every state change durably.

mod executor;
mod plan;

use crate::plugins::{Registry, Runtime};
use crate::project::Projects;
use crate::runs::{Run, RunStatus, StepRun, Trigger, new_run_id};
use crate::secrets::Secrets;
use crate::store::Store;
use crate::workflow::Workflow;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::Arc;

/// Everything runs share: plugins, the store, projects and secrets.
pub struct Engine {
    pub runtime: Arc<Runtime>,
    pub registry: Arc<Registry>,
    pub store: Store,
    pub projects: Arc<Projects>,
    pub secrets: Secrets,
    /// Parent of every run's workspace directory.
    pub workspaces: PathBuf,
    /// What to do when programs cannot be confined on this host.
    pub unconfined: crate::plugins::confine::Unconfined,
}

/// A request to run a workflow.
pub struct RunRequest {
    pub workflow: Arc<Workflow>,
    /// The workflow's path, or its name when run from a file.
    pub label: String,
    pub version: Option<u32>,
    pub file: Option<String>,
    /// Where relative paths in the workflow (script files…) are resolved.
    pub source_dir: Option<PathBuf>,
    pub overrides: Map<String, Value>,
    pub trigger: Trigger,
}

impl Engine {
    /// Creates the run record, runs it to the end and returns the final record.
    pub async fn run(self: &Arc<Self>, req: RunRequest) -> anyhow::Result<Run> {
        let now = chrono::Utc::now();
        let mut run = Run {
            id: new_run_id(),
            workflow: req.label.clone(),
            version: req.version,
            file: req.file.clone(),
            status: RunStatus::Queued,
            trigger: req.trigger.clone(),
            property_overrides: req.overrides.clone(),
            created_at: now,
            started_at: None,
            finished_at: None,
            duration_ms: None,
            error: None,
            steps: Vec::<StepRun>::new(),
        };
        self.store.put_run(&run)?;
        self.store.flush().await?;
        executor::execute(self.clone(), &mut run, req).await?;
        Ok(run)
    }
}
