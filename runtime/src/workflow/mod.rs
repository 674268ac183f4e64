//! The workflow language: the step tree a YAML workflow describes, parsed and validated.

mod parse;
pub mod template;

pub use parse::{parse_steps, parse_workflow};
/// Durations read the same in a workflow (`timeout: 5m`) as in `plugin.toml`.
pub use wasmops_sandbox::parse_duration;

use crate::diagnostics::Location;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// A parsed, structurally valid workflow.
#[derive(Clone, Debug)]
pub struct Workflow {
    pub name: Option<String>,
    /// The file it came from, as shown in errors.
    pub file: String,
    /// Workflow-level default properties; `--set` overrides win over them.
    pub properties: serde_json::Map<String, Value>,
    /// Runs allowed at once; further runs queue.
    pub concurrency: u32,
    pub triggers: Vec<Value>,
    pub notify: Vec<Value>,
    pub steps: Vec<Step>,
}

#[derive(Clone, Debug)]
pub struct Step {
    pub name: Option<String>,
    pub id: Option<String>,
    /// Skip the step unless this expression is true.
    pub when: Option<String>,
    pub timeout: Option<Duration>,
    pub retry: Retry,
    pub continue_on_error: bool,
    pub kind: StepKind,
    /// Where the step starts in its file, for run-time errors.
    pub location: Location,
    pub yaml_path: String,
    /// The file the step was written in: the workflow's, or a project's for an asset template
    /// action.
    pub file: String,
    /// Where each template string of the step's own keys is, by its path below the step
    /// (`name`, `when`, `with.env.TOKEN`, `targets[1]`, `property_overrides[0].env`), so a
    /// problem in one is reported at its line and column; and the `with` block itself.
    pub templates: BTreeMap<String, Location>,
}

impl Step {
    /// Where the template at `field` (a path below the step) is, or where the step starts.
    pub fn location_of(&self, field: &str) -> Location {
        self.templates.get(field).copied().unwrap_or(self.location)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RunAs {
    #[default]
    Sequential,
    Parallel,
}

#[derive(Clone, Debug)]
pub enum StepKind {
    Stage {
        run_as: RunAs,
        children: Vec<Step>,
    },
    /// Runs an asset template action on one or more targets.
    Change {
        /// Asset paths (templates allowed); one child per entry when `targets` was used.
        targets: Vec<String>,
        /// `targets:` rather than `target:` was written, so the step fans out.
        fan_out: bool,
        action: String,
        run_as: RunAs,
    },
    Plugin {
        uses: String,
        with: Value,
    },
    Wait {
        approvers: Option<Approvers>,
        on_timeout: OnTimeout,
        /// The id of the step whose result this approval binds to (`approves: plan`).
        approves: Option<String>,
    },
    Condition {
        /// The expression without any surrounding `{{ }}`.
        condition: String,
        then: Vec<Step>,
        otherwise: Vec<Step>,
    },
    Workflow {
        target: String,
        version: Option<u32>,
        run_as: RunAs,
        property_overrides: Vec<serde_json::Map<String, Value>>,
    },
}

impl StepKind {
    /// The name used for `type:` and in run records.
    pub fn type_name(&self) -> &'static str {
        match self {
            StepKind::Stage { .. } => "stage",
            StepKind::Change { .. } => "change",
            StepKind::Plugin { .. } => "plugin",
            StepKind::Wait { .. } => "wait",
            StepKind::Condition { .. } => "condition",
            StepKind::Workflow { .. } => "workflow",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Approvers {
    pub user_names: Vec<String>,
    pub ldap_groups: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnTimeout {
    #[default]
    Reject,
    Approve,
}

/// `retry: {attempts, delay, backoff}`; `attempts` counts the first try.
#[derive(Clone, Debug, PartialEq)]
pub struct Retry {
    pub attempts: u32,
    pub delay: Duration,
    pub backoff: f64,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 1,
            delay: Duration::ZERO,
            backoff: 1.0,
        }
    }
}

impl Retry {
    /// How long to wait before attempt `next` (2 for the first retry).
    pub fn delay_before(&self, next: u32) -> Duration {
        // In floating point, where a factor past any duration is infinite rather than a panic.
        let factor = self
            .backoff
            .powi(i32::try_from(next.saturating_sub(2)).unwrap_or(i32::MAX));
        let secs = (self.delay.as_secs_f64() * factor).min(3600.0);
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::from_secs(3600))
    }
}

impl Workflow {
    /// Every step, depth first, with the ids they declare.
    pub fn walk<'a>(&'a self, visit: &mut dyn FnMut(&'a Step)) {
        fn go<'a>(steps: &'a [Step], visit: &mut dyn FnMut(&'a Step)) {
            for step in steps {
                visit(step);
                match &step.kind {
                    StepKind::Stage { children, .. } => go(children, visit),
                    StepKind::Condition {
                        then, otherwise, ..
                    } => {
                        go(then, visit);
                        go(otherwise, visit);
                    }
                    _ => {}
                }
            }
        }
        go(&self.steps, visit);
    }
}
