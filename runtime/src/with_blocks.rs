//! Each plugin step's `with:` block checked by its own plugin's `validate`, at validate and
//! publish time: a wrong key or value is an error at the step's line, before anything runs.
//!
//! The blocks of the asset template actions a `change` step runs are checked too, reported in the
//! project file. A block with a template in it (`url: "{{ properties.base }}/health"`) is left
//! to the run: what it says is known only once it is rendered, and the plugin checks it then.

use crate::diagnostics::Diagnostic;
use crate::plugins::Registry;
use crate::project::Projects;
use crate::validate::walk_step;
use crate::workflow::{Step, StepKind, Workflow, template};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;
use wasmops_sandbox::PluginKind;

/// The most distinct blocks checked for one workflow: each check is a plugin call, and a
/// workflow of thousands of steps repeats a few blocks.
const MAX_CHECKED: usize = 2_000;
/// A plugin's `validate` gets this long per block.
const VALIDATE_TIMEOUT: Duration = Duration::from_secs(5);

/// The problems the plugins find in a workflow's blocks (and those of the template actions
/// its `change` steps run), one diagnostic per line they report.
pub async fn check_with_blocks(
    workflow: &Workflow,
    registry: &Registry,
    projects: &Projects,
) -> Vec<Diagnostic> {
    let mut blocks = Blocks::default();
    workflow.walk(&mut |step| {
        blocks.add(step);
        if let StepKind::Change {
            targets, action, ..
        } = &step.kind
        {
            // An unknown target or action is the reference checks' to report.
            let resolved = targets
                .iter()
                .filter(|t| !template::is_template(t))
                .filter_map(|t| projects.resolve(t, action).ok());
            for target in resolved {
                target
                    .steps
                    .iter()
                    .for_each(|s| walk_step(s, &mut |s| blocks.add(s)));
            }
        }
    });
    blocks.check(registry).await
}

/// The problems the plugins find in the blocks of every template action of `projects`: checked
/// when the projects are applied, whether or not a workflow runs the action yet.
pub async fn check_template_actions(projects: &Projects, registry: &Registry) -> Vec<Diagnostic> {
    let mut blocks = Blocks::default();
    let actions = projects
        .projects
        .values()
        .flat_map(|p| p.templates.values())
        .flat_map(|t| t.actions.values());
    for steps in actions {
        steps
            .iter()
            .for_each(|s| walk_step(s, &mut |s| blocks.add(s)));
    }
    blocks.check(registry).await
}

/// Distinct plugin blocks to check, with the first step that has each.
#[derive(Default)]
struct Blocks {
    blocks: Vec<(Step, String, Value)>,
    seen: BTreeSet<(String, String)>,
}

impl Blocks {
    fn add(&mut self, step: &Step) {
        if let StepKind::Plugin { uses, with } = &step.kind
            && !has_template(with)
            && self.blocks.len() < MAX_CHECKED
            && self.seen.insert((uses.clone(), with.to_string()))
        {
            self.blocks.push((step.clone(), uses.clone(), with.clone()));
        }
    }

    async fn check(self, registry: &Registry) -> Vec<Diagnostic> {
        let mut problems = Vec::new();
        // A plugin whose `validate` traps or times out once is not asked again: a hostile one
        // must not hold a validation for its timeout once per block.
        let mut broken = BTreeSet::new();
        for (step, uses, with) in &self.blocks {
            let uses = uses.as_str();
            if broken.contains(uses) {
                continue;
            }
            let Some(plugin) = registry.get(uses).filter(|p| p.is(PluginKind::Step)) else {
                // Not installed, or not a step: the reference checks say so.
                continue;
            };
            let env = registry.detached_env(Some(VALIDATE_TIMEOUT));
            let config = if with.is_null() {
                "{}".to_string()
            } else {
                with.to_string()
            };
            let diagnostic = |message: String| Diagnostic {
                file: step.file.clone(),
                location: step.location_of("with"),
                yaml_path: format!("{}.with", step.yaml_path),
                message,
                hint: None,
            };
            match registry
                .sandbox()
                .step_validate(&plugin, env, &config)
                .await
            {
                Ok(lines) => problems.extend(
                    lines
                        .into_iter()
                        .map(|line| diagnostic(format!("invalid `with` for {uses}: {line}"))),
                ),
                Err(failure) => {
                    broken.insert(uses);
                    problems.push(diagnostic(format!(
                        "plugin `{uses}` could not check its `with` block: {failure}"
                    )));
                }
            }
        }
        problems
    }
}

fn has_template(value: &Value) -> bool {
    match value {
        Value::String(s) => template::is_template(s),
        Value::Array(items) => items.iter().any(has_template),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| template::is_template(k) || has_template(v)),
        _ => false,
    }
}
