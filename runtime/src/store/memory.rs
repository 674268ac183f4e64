//! The in-memory backend: everything in maps behind one lock. For tests and throwaway daemons;
//! nothing survives the process.

use super::staged::{CatalogRead, Staged};
use super::{
    CatalogChange, CatalogStore, RunKey, RunPage, RunQuery, RunStore, StoreError, TxError,
    within_step,
};
use crate::project::ProjectSource;
use crate::records::{LogLine, Run, RunSpec, RunStatus, StepRun, WorkflowRecord, assemble_tree};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    claims: super::LocalClaims,
}

#[derive(Default)]
struct State {
    runs: BTreeMap<String, Run>,
    specs: BTreeMap<String, RunSpec>,
    /// (run id, step path) → record without children.
    steps: BTreeMap<(String, String), StepRun>,
    /// (sequence, run id, step path, line).
    logs: Vec<(u64, String, String, LogLine)>,
    projects: BTreeMap<String, ProjectSource>,
    workflows: BTreeMap<String, WorkflowRecord>,
    /// SHA-256 → project file contents.
    blobs: BTreeMap<String, Vec<u8>>,
    /// SHA-256 → the projects runs started with.
    snapshots: BTreeMap<String, Vec<u8>>,
}

impl MemoryStore {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl CatalogRead for State {
    fn committed_workflow(&self, path: &str) -> Result<Option<WorkflowRecord>, StoreError> {
        Ok(self.workflows.get(path).cloned())
    }

    fn committed_projects(&self) -> Result<BTreeMap<String, ProjectSource>, StoreError> {
        Ok(self.projects.clone())
    }
}

fn add_steps(state: &mut State, run_id: &str, steps: &[StepRun]) {
    for step in steps {
        state
            .steps
            .insert((run_id.to_string(), step.path.clone()), step.shallow());
        add_steps(state, run_id, &step.children);
    }
}

#[async_trait]
impl RunStore for MemoryStore {
    async fn create(&self, run: &Run, spec: &RunSpec) -> Result<(), StoreError> {
        let mut state = self.state();
        state.specs.insert(run.id.clone(), spec.clone());
        state.runs.insert(
            run.id.clone(),
            Run {
                steps: Vec::new(),
                ..run.clone()
            },
        );
        Ok(())
    }

    async fn put(
        &self,
        run_id: &str,
        header: Option<&Run>,
        steps: &[StepRun],
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        if let Some(run) = header {
            state.runs.insert(
                run.id.clone(),
                Run {
                    steps: Vec::new(),
                    ..run.clone()
                },
            );
        }
        add_steps(&mut state, run_id, steps);
        Ok(())
    }

    async fn append_logs(
        &self,
        run_id: &str,
        step: &str,
        lines: &[LogLine],
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        for line in lines {
            let seq = state.logs.len() as u64;
            state
                .logs
                .push((seq, run_id.to_string(), step.to_string(), line.clone()));
        }
        Ok(())
    }

    async fn run(&self, id: &str) -> Result<Option<Run>, StoreError> {
        let state = self.state();
        let Some(header) = state.runs.get(id) else {
            return Ok(None);
        };
        let flat = state
            .steps
            .range((id.to_string(), String::new())..)
            .take_while(|((run, _), _)| run == id)
            .map(|(_, step)| step.clone())
            .collect();
        Ok(Some(Run {
            steps: assemble_tree(flat),
            ..header.clone()
        }))
    }

    async fn spec(&self, id: &str) -> Result<Option<RunSpec>, StoreError> {
        Ok(self.state().specs.get(id).cloned())
    }

    async fn list(&self, query: &RunQuery) -> Result<RunPage, StoreError> {
        let before = query
            .cursor
            .as_deref()
            .map(RunKey::parse_cursor)
            .transpose()?;
        let state = self.state();
        let mut matching: Vec<&Run> = state
            .runs
            .values()
            .filter(|run| query.matches(run))
            .filter(|run| before.as_ref().is_none_or(|b| RunKey::of(run) < *b))
            .collect();
        matching.sort_by_key(|run| std::cmp::Reverse(RunKey::of(run)));
        let limit = query.page_size();
        let next = (matching.len() > limit).then(|| RunKey::of(matching[limit - 1]).cursor());
        Ok(RunPage {
            runs: matching.into_iter().take(limit).cloned().collect(),
            next,
        })
    }

    async fn keep_snapshot(&self, sha256: &str, json: &[u8]) -> Result<(), StoreError> {
        self.state()
            .snapshots
            .entry(sha256.to_string())
            .or_insert_with(|| json.to_vec());
        Ok(())
    }

    async fn snapshot(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.state().snapshots.get(sha256).cloned())
    }

    async fn count_by_status(&self) -> Result<BTreeMap<RunStatus, u64>, StoreError> {
        let mut counts: BTreeMap<RunStatus, u64> = RunStatus::ALL.iter().map(|s| (*s, 0)).collect();
        for run in self.state().runs.values() {
            *counts.entry(run.status).or_default() += 1;
        }
        Ok(counts)
    }

    async fn logs(
        &self,
        run_id: &str,
        step: Option<&str>,
    ) -> Result<Vec<(String, LogLine)>, StoreError> {
        Ok(self
            .state()
            .logs
            .iter()
            .filter(|(_, run, path, _)| run == run_id && step.is_none_or(|s| within_step(path, s)))
            .map(|(_, _, path, line)| (path.clone(), line.clone()))
            .collect())
    }

    fn claims(&self) -> &dyn crate::store::RunClaims {
        &self.claims
    }
}

#[async_trait]
impl CatalogStore for MemoryStore {
    async fn projects(&self) -> Result<Vec<ProjectSource>, StoreError> {
        Ok(self.state().projects.values().cloned().collect())
    }

    async fn workflow(&self, path: &str) -> Result<Option<WorkflowRecord>, StoreError> {
        Ok(self.state().workflows.get(path).cloned())
    }

    async fn workflows(&self) -> Result<Vec<WorkflowRecord>, StoreError> {
        Ok(self.state().workflows.values().cloned().collect())
    }

    async fn transact(&self, change: CatalogChange<'_>) -> Result<(), TxError> {
        let mut state = self.state();
        let (workflows, projects) = {
            let mut staged = Staged::new(&*state);
            change(&mut staged)?;
            (staged.workflows, staged.projects)
        };
        for (path, record) in workflows {
            match record {
                Some(record) => state.workflows.insert(path, record),
                None => state.workflows.remove(&path),
            };
        }
        state.projects.extend(projects);
        Ok(())
    }

    async fn put_blob(&self, sha256: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.state()
            .blobs
            .entry(sha256.to_string())
            .or_insert_with(|| bytes.to_vec());
        Ok(())
    }

    async fn blob(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.state().blobs.get(sha256).cloned())
    }

    async fn has_blob(&self, sha256: &str) -> Result<bool, StoreError> {
        Ok(self.state().blobs.contains_key(sha256))
    }
}
