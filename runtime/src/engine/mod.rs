//! The engine: turns a workflow into a run, walks its step tree on tokio (sequential and
//! parallel stages, conditions, retries, timeouts, parked human steps) and records every state
//! change durably, so a run can be resumed after a restart, retried, or cancelled.

mod call;
mod children;
mod claims;
mod executor;
mod files;
mod logs;
mod plan;
mod records;
mod waits;

pub use waits::{DecisionInput, find_by_path_or_id};

use crate::plugins::Registry;
use crate::project::Projects;
use crate::records::{Run, RunSpec, RunStatus, new_run_id};
use crate::store::{CatalogStore, RunQuery, RunStore, StoreError, list_all};
use crate::workflow::Workflow;
use records::RunCtx;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Everything runs share: the sandbox and its plugins, the store, projects.
pub struct Engine {
    /// Where plugins run; it holds the operator's secrets.
    pub sandbox: Arc<wasmops_sandbox::Sandbox>,
    pub registry: Arc<Registry>,
    /// Runs, their steps, specs and logs.
    pub runs: Arc<dyn RunStore>,
    /// Replaced whole when projects are applied; a run plans against the snapshot it started with.
    pub projects: std::sync::RwLock<Arc<Projects>>,
    /// Parent of every run's workspace directory.
    pub workspaces: PathBuf,
    pub mode: Mode,
    pub live: LiveRuns,
}

/// Where the engine runs, which decides what steps that need the outside world can do.
pub enum Mode {
    /// `wasmops run FILE` with no daemon: nobody can decide a parked step and there is no
    /// catalog to call, so `wait` and `workflow` steps fail with the reason.
    Embedded,
    /// Under `wasmops up`: the API decides parked steps, and `workflow` steps call the
    /// catalog's published workflows.
    Daemon { catalog: Arc<dyn CatalogStore> },
}

/// What an engine is made of; [`Engine::new`] is the one way to make one.
pub struct EngineParts {
    /// The plugins (and through them, the sandbox).
    pub registry: Arc<Registry>,
    pub runs: Arc<dyn RunStore>,
    pub projects: Projects,
    /// Parent of every run's workspace directory.
    pub workspaces: PathBuf,
    pub mode: Mode,
}

/// Runs this process is driving, the per-workflow slots that queue them, the event feed and
/// the counters behind `/metrics`.
pub struct LiveRuns {
    runs: Mutex<HashMap<String, Arc<RunCtx>>>,
    /// Told each time a run is added to `runs`.
    registered: tokio::sync::Notify,
    cancels: Mutex<HashMap<String, CancellationToken>>,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
    claims: claims::Claims,
    /// The tasks driving runs, so that a shutdown can stop them (and with them their
    /// programs) before the process exits.
    tasks: Mutex<tokio::task::JoinSet<()>>,
    pub events: tokio::sync::broadcast::Sender<RunEvent>,
    /// Finished steps by status: (count, total milliseconds).
    pub step_totals: Mutex<std::collections::BTreeMap<String, (u64, u64)>>,
}

impl Default for LiveRuns {
    fn default() -> Self {
        LiveRuns {
            runs: Default::default(),
            registered: Default::default(),
            cancels: Default::default(),
            slots: Default::default(),
            claims: Default::default(),
            tasks: Default::default(),
            events: tokio::sync::broadcast::channel(4096).0,
            step_totals: Default::default(),
        }
    }
}

/// A durable state change, for `/runs/{id}/events`: `step` (a step record) or `run` (the run
/// without its steps).
#[derive(Clone, Debug, Serialize)]
pub struct RunEvent {
    pub run: String,
    pub kind: &'static str,
    pub data: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Engine {
    pub fn new(parts: EngineParts) -> Arc<Engine> {
        Arc::new(Engine {
            sandbox: parts.registry.sandbox().clone(),
            registry: parts.registry,
            runs: parts.runs,
            projects: std::sync::RwLock::new(Arc::new(parts.projects)),
            // Absolute, whatever the data directory was given as: every path handed to a
            // plugin or a program (workspace, HOME, TMPDIR, $WASMOPS_OUTPUT) must mean the same
            // in the program's working directory as in the daemon's.
            workspaces: std::path::absolute(&parts.workspaces).unwrap_or(parts.workspaces),
            mode: parts.mode,
            live: LiveRuns::default(),
        })
    }

    /// Tells event watchers about a run's new state (after it is durable).
    pub fn publish_run(&self, run: &Run) {
        let header = Run {
            steps: Vec::new(),
            ..run.clone()
        };
        let _ = self.live.events.send(RunEvent {
            run: run.id.clone(),
            kind: "run",
            data: serde_json::to_value(&header).unwrap_or_default(),
        });
    }

    pub fn projects(&self) -> Arc<Projects> {
        self.projects.read().unwrap().clone()
    }

    pub fn parse_spec(spec: &RunSpec) -> Result<Workflow, EngineError> {
        crate::workflow::parse_workflow(&spec.file, &spec.workflow_yaml)
            .map_err(|e| EngineError::Invalid(e.to_string()))
    }

    /// The projects a run plans against: those it started with, whatever was applied since.
    pub(crate) async fn projects_for(&self, spec: &RunSpec) -> Result<Arc<Projects>, EngineError> {
        let current = self.projects();
        let Some(digest) = &spec.projects_sha256 else {
            // Started without projects, or stored before runs kept them.
            return Ok(current);
        };
        if current.digest() == Some(digest.as_str()) {
            return Ok(current);
        }
        let json = self.runs.snapshot(digest).await?.ok_or_else(|| {
            EngineError::Invalid(format!(
                "the projects this run started with ({digest}) are not in the store"
            ))
        })?;
        let sources: Vec<crate::project::ProjectSource> =
            serde_json::from_slice(&json).map_err(|e| {
                EngineError::Invalid(format!("the projects this run started with: {e}"))
            })?;
        crate::blocking::run(move || Projects::from_sources(&sources))
            .await
            .map_err(EngineError::Invalid)?
            .map(Arc::new)
            .map_err(|e| EngineError::Invalid(format!("the projects this run started with: {e}")))
    }

    /// Records a queued run durably and returns it; `drive` runs it.
    pub async fn create(&self, mut spec: RunSpec) -> Result<Run, EngineError> {
        // Refuse a run whose workflow does not parse before anything is stored (on a blocking
        // thread: a large workflow takes a while to parse).
        let checked = spec.clone();
        crate::blocking::run(move || Self::parse_spec(&checked).map(drop))
            .await
            .map_err(EngineError::Invalid)??;
        if spec.projects_sha256.is_none() {
            let projects = self.projects();
            if let Some(snapshot) = projects.snapshot_to_keep() {
                self.runs
                    .keep_snapshot(&snapshot.sha256, &snapshot.json)
                    .await?;
                projects.kept();
            }
            spec.projects_sha256 = projects.digest().map(str::to_string);
        }
        let run = Run {
            id: new_run_id(),
            workflow: spec.label.clone(),
            version: spec.version,
            file: spec.from_file.then(|| spec.file.clone()),
            status: RunStatus::Queued,
            trigger: spec.trigger.clone(),
            property_overrides: spec.overrides.clone(),
            created_at: chrono::Utc::now(),
            started_at: None,
            finished_at: None,
            duration_ms: None,
            error: None,
            interruptions: 0,
            progress_at_interruption: 0,
            steps: Vec::new(),
        };
        self.runs.create(&run, &spec).await?;
        Ok(run)
    }

    /// Starts a run in the background and returns its queued record.
    pub async fn submit(self: &Arc<Self>, spec: RunSpec) -> Result<Run, EngineError> {
        let run = self.create(spec).await?;
        self.spawn(run.id.clone());
        Ok(run)
    }

    pub fn spawn(self: &Arc<Self>, run_id: String) {
        let engine = self.clone();
        self.track(async move {
            if let Err(e) = engine.drive(&run_id).await {
                tracing::error!(run = %run_id, "run failed to execute: {e:#}");
            }
        });
    }

    /// Runs `task` in the background where [`Engine::stop`] can reach it.
    fn track(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = self.live.tasks.lock().unwrap();
        // Forget the ones that have ended, so the set holds only what still runs.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }

    /// Stops driving every run (a shutdown): their tasks are dropped, which stops their
    /// plugins and kills their programs' process groups. The runs stay as stored; the next
    /// start resumes them.
    pub async fn stop(&self) {
        let mut tasks = std::mem::take(&mut *self.live.tasks.lock().unwrap());
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }

    /// Runs to the end in this task (embedded `wasmops run`) and returns the final record.
    pub async fn run_to_end(self: &Arc<Self>, spec: RunSpec) -> Result<Run, EngineError> {
        let run = self.create(spec).await?;
        self.drive(&run.id).await?;
        self.load(&run.id).await
    }

    pub async fn load(&self, run_id: &str) -> Result<Run, EngineError> {
        self.runs
            .run(run_id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("no run `{run_id}`")))
    }

    /// Waits for a slot of the run's workflow (one run at a time unless `concurrency` says
    /// otherwise; waiting runs queue in order), then executes or resumes it. A run someone
    /// else is driving is not driven twice: this waits for that driver to finish.
    pub async fn drive(self: &Arc<Self>, run_id: &str) -> anyhow::Result<()> {
        match self.claim(run_id) {
            Ok(claim) => self.drive_claimed(claim).await,
            Err(busy) => {
                busy.finished().await;
                Ok(())
            }
        }
    }

    async fn drive_claimed(self: &Arc<Self>, claim: claims::Claim) -> anyhow::Result<()> {
        let run_id = claim.run_id();
        let spec = self
            .runs
            .spec(run_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("run `{run_id}` has no stored spec"))?;
        let concurrency = Self::parse_spec(&spec).map(|w| w.concurrency).unwrap_or(1);
        let cancel = claim.cancel.clone();
        // A child run is part of its parent's run: it takes no slot of its own, or a parallel
        // fan-out of one workflow would run one child at a time.
        if spec.trigger.inputs.contains_key("parent") {
            return executor::execute(self.clone(), run_id, spec, cancel).await;
        }
        let slot = {
            let mut slots = self.live.slots.lock().unwrap();
            slots
                .entry(spec.label.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(concurrency as usize)))
                .clone()
        };
        let permit = tokio::select! {
            permit = slot.acquire_owned() => permit?,
            _ = cancel.cancelled() => {
                return executor::mark_cancelled_before_start(self, run_id).await;
            }
        };
        let result = executor::execute(self.clone(), run_id, spec, cancel).await;
        drop(permit);
        result
    }

    /// After a restart: queued runs start (in the order they were created) and runs that were
    /// running or waiting resume; completed steps are kept, interrupted ones run again.
    ///
    /// `stopped_cleanly`: the last daemon was shut down (SIGTERM) and stopped its runs itself,
    /// so runs it left `running` were not interrupted by a crash and go back to `queued`
    /// instead of counting towards a crash loop.
    pub async fn recover(self: &Arc<Self>, stopped_cleanly: bool) -> Result<usize, EngineError> {
        let query = RunQuery {
            statuses: RunStatus::ACTIVE.to_vec(),
            ..RunQuery::default()
        };
        let mut pending = list_all(self.runs.as_ref(), query).await?;
        pending.sort_by_key(|r| r.created_at);
        for run in pending.iter_mut() {
            if stopped_cleanly && run.status == RunStatus::Running {
                run.status = RunStatus::Queued;
                self.runs.put(&run.id, Some(run), &[]).await?;
            }
        }
        for run in &pending {
            self.spawn(run.id.clone());
        }
        Ok(pending.len())
    }

    /// Stops a queued, running or waiting run: running plugins and their programs are stopped.
    pub async fn cancel(&self, run_id: &str) -> Result<Run, EngineError> {
        let run = self.load(run_id).await?;
        if !run.status.is_active() {
            return Err(EngineError::Conflict(format!(
                "run `{run_id}` is {}; only queued, running or waiting runs can be cancelled",
                run.status.as_str()
            )));
        }
        let token = self.live.cancels.lock().unwrap().get(run_id).cloned();
        match token {
            Some(token) => token.cancel(),
            None => {
                return Err(EngineError::Conflict(format!(
                    "run `{run_id}` is not being driven by this daemon"
                )));
            }
        }
        self.load(run_id).await
    }

    /// Runs a failed or cancelled run again: completed steps are kept, failed and unfinished
    /// ones run again.
    pub async fn retry(self: &Arc<Self>, run_id: &str) -> Result<Run, EngineError> {
        // Claimed before the status is read: of two retries at once, one drives and the other
        // is refused, and no earlier drive's cancel reaches this one.
        let claim = self.claim(run_id).map_err(|_| {
            EngineError::Conflict(format!(
                "run `{run_id}` is being driven; it cannot be retried now"
            ))
        })?;
        let mut run = self.load(run_id).await?;
        if !matches!(run.status, RunStatus::Failed | RunStatus::Cancelled) {
            return Err(EngineError::Conflict(format!(
                "run `{run_id}` is {}; only failed or cancelled runs can be retried",
                run.status.as_str()
            )));
        }
        run.status = RunStatus::Queued;
        run.finished_at = None;
        run.error = None;
        self.runs.put(run_id, Some(&run), &[]).await?;
        let engine = self.clone();
        self.track(async move {
            let run_id = claim.run_id().to_string();
            if let Err(e) = engine.drive_claimed(claim).await {
                tracing::error!(run = %run_id, "run failed to execute: {e:#}");
            }
        });
        Ok(run)
    }
}
#[cfg(test)]
mod tests;
