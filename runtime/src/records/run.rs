//! Run records: a run and its tree of step runs, as stored, shown and returned by the API, and
//! the spec a run is (re)started from.

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::PathBuf;

/// One line of a step's log, as the sandbox records it.
pub use wasmops_sandbox::LogLine;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Queued,
    Running,
    Waiting,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunStatus {
    /// Every state, in the order a run goes through them.
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Waiting,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];

    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// States named in a comma-separated list (`failed,cancelled`), in any case.
    pub fn parse_list(text: &str) -> Result<Vec<RunStatus>, String> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                RunStatus::ALL
                    .into_iter()
                    .find(|status| status.as_str().eq_ignore_ascii_case(s))
                    .ok_or_else(|| {
                        let known: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
                        let shown: String = s.chars().take(40).collect();
                        format!("unknown status `{shown}`; use {}", known.join(", "))
                    })
            })
            .collect()
    }

    /// The states of a run that has not ended.
    pub const ACTIVE: [RunStatus; 3] = [RunStatus::Queued, RunStatus::Running, RunStatus::Waiting];

    /// Queued, running or waiting: the run has not ended.
    pub fn is_active(self) -> bool {
        RunStatus::ACTIVE.contains(&self)
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Pending,
    Running,
    Waiting,
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
}

impl StepRun {
    /// Steps in this tree that have finished or are parked: what a run has got done.
    pub fn progress(&self) -> u32 {
        let own = u32::from(self.status.is_finished() || self.status == StepStatus::Waiting);
        self.children
            .iter()
            .fold(own, |n, child| n.saturating_add(child.progress()))
    }
}

impl StepStatus {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded
                | StepStatus::Failed
                | StepStatus::Skipped
                | StepStatus::Cancelled
        )
    }
}

/// What started a run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Trigger {
    /// `manual`, `cron`, `webhook`, `git`, `incident`, `workflow`.
    pub kind: String,
    /// Who, for manual runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// What the trigger passed in (`trigger.*` in templates).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub inputs: Map<String, Value>,
}

impl Trigger {
    pub fn manual(by: Option<String>) -> Trigger {
        Trigger {
            kind: "manual".into(),
            by,
            inputs: Map::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Run {
    pub id: String,
    /// The workflow's path (`/projects/p/workflows/w`), or its name when run from a file.
    pub workflow: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The file it was run from, for `wasmops run FILE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub status: RunStatus,
    pub trigger: Trigger,
    /// `--set` / API property overrides.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub property_overrides: Map<String, Value>,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Why the run failed before or outside any step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How many times in a row the daemon stopped while this run was executing with no step
    /// finishing in between (see `engine::executor`): at two the run is failed, not started a
    /// third time.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interruptions: u32,
    /// Steps finished or parked when the last interruption was counted.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub progress_at_interruption: u32,
    #[serde(default)]
    pub steps: Vec<StepRun>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Run {
    /// For a child run, `wfr_…/PATH`: the run and the step that started it.
    pub fn parent(&self) -> Option<&str> {
        self.trigger.inputs.get("parent").and_then(Value::as_str)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StepRun {
    /// Position in the tree, `1`, `2.1`…; stable within the run.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub name: String,
    /// `stage|change|plugin|wait|condition|workflow`.
    pub kind: String,
    /// The plugin a plugin step uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<String>,
    /// The asset a change step runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `then` or `else`, for steps inside a condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// `parallel` for stages whose children overlap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<String>,
    pub status: StepStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default)]
    pub outputs: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// A parked step: who may decide, until when, and the decision once made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<WaitState>,
    #[serde(default)]
    pub children: Vec<StepRun>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WaitState {
    pub summary: String,
    /// None: anyone with API access may continue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvers: Option<crate::workflow::Approvers>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DateTime<Utc>>,
    /// The plugin's opaque state, handed back to it on resume.
    #[serde(default)]
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<DecisionRecord>,
    /// What an approval with `approves:` binds to, recorded when the step parks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approves: Option<ApprovedResult>,
}

/// The result an approval is for: the step, its summary, and the digest a later step verifies
/// (a terraform plan's `plan_sha256`, or the SHA-256 of the step's outputs as JSON).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ApprovedResult {
    pub step: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    pub sha256: String,
}

/// A decision on a parked step, recorded before it is acted on.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DecisionRecord {
    /// `continue|approve|reject|timeout`
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub at: DateTime<Utc>,
}

impl StepRun {
    pub fn new(path: String, name: String, kind: &str) -> StepRun {
        StepRun {
            path,
            id: None,
            name,
            kind: kind.to_string(),
            uses: None,
            target: None,
            branch: None,
            run_as: None,
            status: StepStatus::Pending,
            started_at: None,
            finished_at: None,
            duration_ms: None,
            summary: None,
            outputs: Map::new(),
            error: None,
            attempts: 0,
            approved_by: None,
            wait: None,
            children: Vec::new(),
        }
    }

    /// This record without its children, as stored per step.
    pub fn shallow(&self) -> StepRun {
        StepRun {
            children: Vec::new(),
            ..self.clone()
        }
    }
}

/// Everything needed to (re)start a run, stored with it so a restart or a retry plans the very
/// same workflow version.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunSpec {
    pub workflow_yaml: String,
    /// Shown in errors: the file or the workflow path.
    pub file: String,
    /// The workflow's path, or its name when run from a file.
    pub label: String,
    pub version: Option<u32>,
    /// Where relative paths in the workflow (script files…) are resolved.
    pub source_dir: Option<PathBuf>,
    pub overrides: Map<String, Value>,
    pub trigger: Trigger,
    /// Whether the run record names its file (`wasmops run FILE`).
    #[serde(default)]
    pub from_file: bool,
    /// The digest of the projects the run started with ([`RunStore::snapshot`]); none for a
    /// run without projects, or one stored before snapshots.
    ///
    /// [`RunStore::snapshot`]: crate::store::RunStore::snapshot
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projects_sha256: Option<String>,
}

/// `wfr_` + 8 lowercase alphanumerics.
pub fn new_run_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let suffix: String = (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("wfr_{suffix}")
}

/// Finds the step at `path` (`2.1` → steps[1].children[0]).
pub fn find_step_mut<'a>(steps: &'a mut [StepRun], path: &str) -> Option<&'a mut StepRun> {
    let mut indices = path
        .split('.')
        .map(|i| i.parse::<usize>().ok()?.checked_sub(1));
    let first = indices.next()??;
    let mut node = steps.get_mut(first)?;
    for index in indices {
        node = node.children.get_mut(index?)?;
    }
    Some(node)
}

/// Rebuilds the tree from flat records, ordering siblings by their position.
pub fn assemble_tree(mut flat: Vec<StepRun>) -> Vec<StepRun> {
    fn key(path: &str) -> Vec<usize> {
        path.split('.').filter_map(|p| p.parse().ok()).collect()
    }
    flat.sort_by_key(|s| key(&s.path));
    let mut roots: Vec<StepRun> = Vec::new();
    for step in flat {
        let parent = step.path.rsplit_once('.').map(|(p, _)| p.to_string());
        match parent.and_then(|p| find_step_mut(&mut roots, &p)) {
            Some(parent) => parent.children.push(step),
            None => roots.push(step),
        }
    }
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_have_the_documented_shape() {
        let id = new_run_id();
        assert_eq!(id.len(), 12);
        assert!(id.starts_with("wfr_"));
        assert!(
            id[4..]
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
    }

    #[test]
    fn trees_round_trip_through_flat_records() {
        let flat = ["2", "1", "2.10", "2.2", "2.1", "1.1"]
            .iter()
            .map(|p| StepRun::new(p.to_string(), p.to_string(), "plugin"))
            .collect();
        let tree = assemble_tree(flat);
        assert_eq!(tree.len(), 2);
        let second: Vec<&str> = tree[1].children.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(second, ["2.1", "2.2", "2.10"]);
    }
}
