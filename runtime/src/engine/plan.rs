//! Expands a workflow into the tree of step runs it will execute: names rendered, change targets
//! resolved to their template actions, condition branches laid out, paths assigned.

use crate::project::{Projects, merge};
use crate::records::StepRun;
use crate::workflow::{RunAs, Step, StepKind, template};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::Arc;

/// What a subtree sees as `properties` and `env`, and where its files are.
#[derive(Debug)]
pub struct Scope {
    pub properties: Map<String, Value>,
    pub dir: Option<PathBuf>,
    /// The environment of the asset a `change` step runs on; outside one, the run's own `env`
    /// property (if it has one) stands.
    pub environment: Option<String>,
}

impl Scope {
    /// Puts this scope's `properties` (and `env`, inside a change) into a template context.
    pub fn enter(&self, ctx: &mut Map<String, Value>) {
        ctx.insert("properties".into(), Value::Object(self.properties.clone()));
        if let Some(environment) = &self.environment {
            ctx.insert("env".into(), Value::String(environment.clone()));
        }
    }
}

#[derive(Debug)]
pub enum Action {
    /// Children run as a group (stages, change steps, targets).
    Group(RunAs),
    Plugin {
        uses: String,
        with: Value,
    },
    Condition {
        condition: String,
    },
    Wait,
    Workflow,
}

#[derive(Debug)]
pub struct Node {
    pub path: String,
    /// The workflow step this node comes from (for `when`, `timeout`, `retry`…).
    pub step: Arc<Step>,
    pub action: Action,
    pub scope: Arc<Scope>,
    /// `then`/`else` for the children of a condition.
    pub branch: Option<&'static str>,
    pub children: Vec<Arc<Node>>,
    /// The record as it starts: pending, with name and kind.
    pub record: StepRun,
}

pub struct Planner<'a> {
    pub projects: &'a Projects,
    /// Top-level template variables (workflow properties and overrides).
    pub context: &'a Value,
    pub overrides: &'a Map<String, Value>,
}

impl Planner<'_> {
    pub fn plan(&self, steps: &[Step], scope: &Arc<Scope>) -> Result<Vec<Arc<Node>>, String> {
        self.plan_list(steps, "", scope, None)
    }

    fn plan_list(
        &self,
        steps: &[Step],
        parent: &str,
        scope: &Arc<Scope>,
        branch: Option<&'static str>,
    ) -> Result<Vec<Arc<Node>>, String> {
        steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let path = child_path(parent, i);
                self.plan_step(Arc::new(step.clone()), path, scope, branch)
                    .map(Arc::new)
            })
            .collect()
    }

    fn plan_step(
        &self,
        step: Arc<Step>,
        path: String,
        scope: &Arc<Scope>,
        branch: Option<&'static str>,
    ) -> Result<Node, String> {
        let at = |e: String| format!("{} ({}): {e}", step.yaml_path, step_label(&step));
        let render = |text: &str| template::render(text, &self.scope_context(scope)).map_err(at);
        let name = match &step.name {
            Some(n) => render(n)?,
            None => default_name(&step),
        };
        let mut record = StepRun::new(path.clone(), name, step.kind.type_name());
        record.id = step.id.clone();
        record.branch = branch.map(str::to_string);
        let mut children = Vec::new();
        let action = match &step.kind {
            StepKind::Stage {
                run_as,
                children: c,
            } => {
                children = self.plan_list(c, &path, scope, None)?;
                record.run_as = Some(run_as_name(*run_as).into());
                Action::Group(*run_as)
            }
            StepKind::Plugin { uses, with } => {
                record.uses = Some(uses.clone());
                Action::Plugin {
                    uses: uses.clone(),
                    with: with.clone(),
                }
            }
            StepKind::Condition {
                condition,
                then,
                otherwise,
            } => {
                children = self.plan_list(then, &path, scope, Some("then"))?;
                let offset = children.len();
                for (i, step) in otherwise.iter().enumerate() {
                    let child = child_path(&path, offset + i);
                    children.push(Arc::new(self.plan_step(
                        Arc::new(step.clone()),
                        child,
                        scope,
                        Some("else"),
                    )?));
                }
                Action::Condition {
                    condition: condition.clone(),
                }
            }
            StepKind::Wait { .. } => Action::Wait,
            StepKind::Workflow { target, .. } => {
                record.target = Some(render(target)?);
                Action::Workflow
            }
            StepKind::Change {
                targets,
                fan_out,
                action,
                run_as,
            } => {
                let targets: Vec<String> = targets
                    .iter()
                    .map(|t| render(t))
                    .collect::<Result<_, _>>()?;
                if *fan_out {
                    record.run_as = Some(run_as_name(*run_as).into());
                    for (i, target) in targets.iter().enumerate() {
                        let child = child_path(&path, i);
                        children.push(Arc::new(self.plan_target(&step, target, action, child)?));
                    }
                    Action::Group(*run_as)
                } else {
                    let node = self.plan_target(&step, &targets[0], action, path)?;
                    return Ok(Node {
                        record: StepRun {
                            name: record.name,
                            id: record.id,
                            branch: record.branch,
                            ..node.record
                        },
                        branch,
                        ..node
                    });
                }
            }
        };
        Ok(Node {
            path,
            step,
            action,
            scope: scope.clone(),
            branch,
            children,
            record,
        })
    }

    /// One target of a change step: the action's steps with the asset's properties.
    fn plan_target(
        &self,
        step: &Arc<Step>,
        target: &str,
        action: &str,
        path: String,
    ) -> Result<Node, String> {
        let resolved = self
            .projects
            .resolve(target, action)
            .map_err(|e| format!("{} ({}): {e}", step.yaml_path, step_label(step)))?;
        let mut properties = resolved.properties;
        merge(&mut properties, self.overrides);
        let scope = Arc::new(Scope {
            properties,
            dir: resolved.dir,
            environment: Some(resolved.environment.clone()),
        });
        let mut record = StepRun::new(
            path.clone(),
            format!("{action} on {}", resolved.path),
            "change",
        );
        record.target = Some(resolved.path.clone());
        record.run_as = Some("sequential".into());
        let children = self.plan_list(&resolved.steps, &path, &scope, None)?;
        Ok(Node {
            path,
            step: step.clone(),
            action: Action::Group(RunAs::Sequential),
            scope,
            branch: None,
            children,
            record,
        })
    }

    fn scope_context(&self, scope: &Scope) -> Value {
        let mut ctx = self.context.clone();
        if let Value::Object(map) = &mut ctx {
            scope.enter(map);
        }
        ctx
    }
}

impl Node {
    /// The record tree for this node and its descendants.
    pub fn records(&self) -> StepRun {
        let mut record = self.record.clone();
        record.children = self.children.iter().map(|c| c.records()).collect();
        record
    }
}

fn child_path(parent: &str, index: usize) -> String {
    if parent.is_empty() {
        (index + 1).to_string()
    } else {
        format!("{parent}.{}", index + 1)
    }
}

fn run_as_name(run_as: RunAs) -> &'static str {
    match run_as {
        RunAs::Sequential => "sequential",
        RunAs::Parallel => "parallel",
    }
}

fn step_label(step: &Step) -> String {
    step.name.clone().unwrap_or_else(|| default_name(step))
}

fn default_name(step: &Step) -> String {
    match &step.kind {
        StepKind::Plugin { uses, .. } => uses.clone(),
        StepKind::Stage { .. } => "Stage".into(),
        StepKind::Change { action, .. } => format!("Change: {action}"),
        StepKind::Wait {
            approvers: Some(_), ..
        } => "Approval".into(),
        StepKind::Wait { .. } => "Wait".into(),
        StepKind::Condition { .. } => "Condition".into(),
        StepKind::Workflow { target, .. } => format!("Workflow {target}"),
    }
}
