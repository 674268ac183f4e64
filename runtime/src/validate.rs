//! Reference checks a workflow must pass before it runs or is published: plugins installed,
//! targets and actions defined, templates well-formed, `steps.<id>` pointing at real steps.

use crate::diagnostics::{Diagnostic, did_you_mean};
use crate::plugins::Registry;
use crate::project::Projects;
use crate::workflow::{Step, StepKind, Workflow, template};
use serde_json::Value;
use std::collections::BTreeSet;
use wasmops_sandbox::PluginKind;

pub fn check_references(
    workflow: &Workflow,
    registry: &Registry,
    projects: &Projects,
) -> Vec<Diagnostic> {
    let mut ids = BTreeSet::new();
    let mut errors = Vec::new();
    workflow.walk(&mut |step| {
        if let Some(id) = &step.id
            && !ids.insert(id.clone())
        {
            errors.push(diag(
                workflow,
                step,
                format!("step id `{id}` is used twice"),
                Some("give every step a unique `id`".into()),
            ));
        }
    });
    let names = registry.names(PluginKind::Step);
    let installed = Installed {
        steps: names.iter().map(String::as_str).collect(),
        registry,
    };
    workflow.walk(&mut |step| {
        let mut templates: Vec<(String, &str, bool)> = Vec::new();
        if let Some(name) = &step.name {
            templates.push(("name".into(), name, false));
        }
        if let Some(when) = &step.when {
            templates.push(("when".into(), when, true));
        }
        match &step.kind {
            StepKind::Plugin { uses, with } => {
                check_plugin(workflow, step, uses, &installed, &mut errors);
                collect_strings(with, "with", &mut |path, s| {
                    templates.push((path, s, false));
                });
            }
            StepKind::Condition { condition, .. } => {
                templates.push(("if".into(), condition, true));
                check_plugin(workflow, step, "condition", &installed, &mut errors);
            }
            StepKind::Change {
                targets, action, ..
            } => {
                for target in targets {
                    if template::is_template(target) {
                        templates.push(("target".into(), target, false));
                        continue;
                    }
                    match projects.resolve(target, action) {
                        Ok(resolved) => {
                            for action_step in &resolved.steps {
                                if let StepKind::Plugin { uses, .. } = &action_step.kind {
                                    check_plugin(workflow, step, uses, &installed, &mut errors);
                                }
                            }
                        }
                        Err(e) => errors.push(diag(workflow, step, e, None)),
                    }
                }
            }
            _ => {}
        }
        for (field, text, is_expression) in templates {
            let checked = if is_expression {
                template::check_expression(text)
            } else {
                template::check_template(text)
            };
            if let Err(e) = checked {
                errors.push(diag(
                    workflow,
                    step,
                    format!("invalid template in `{field}`: {e}"),
                    None,
                ));
                continue;
            }
            for var in template::variables(text, is_expression) {
                let mut parts = var.split('.');
                if parts.next() != Some("steps") {
                    continue;
                }
                let Some(id) = parts.next() else { continue };
                if !ids.contains(id) {
                    let hint = did_you_mean(id, ids.iter().map(String::as_str))
                        .map(|s| format!("did you mean `{s}`?"));
                    errors.push(diag(
                        workflow,
                        step,
                        format!("`{field}` refers to `steps.{id}`, but no step has `id: {id}`"),
                        hint,
                    ));
                }
            }
        }
    });
    errors
}

fn check_plugin(
    workflow: &Workflow,
    step: &Step,
    uses: &str,
    installed: &Installed<'_>,
    errors: &mut Vec<Diagnostic>,
) {
    if installed.steps.contains(&uses) {
        return;
    }
    if let Some(plugin) = installed.registry.get(uses) {
        errors.push(diag(
            workflow,
            step,
            format!("plugin `{uses}` is a {} plugin, not a step", plugin.kind()),
            Some("list triggers under `triggers:` and notifiers under `notify:`".into()),
        ));
        return;
    }
    let hint = match did_you_mean(uses, installed.steps.iter().copied()) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!(
            "installed step plugins: {}; add others with --plugins DIR",
            installed.steps.join(", ")
        ),
    };
    errors.push(diag(
        workflow,
        step,
        format!("plugin `{uses}` is not installed"),
        Some(hint),
    ));
}

/// The step plugins a workflow may use, and the registry to say what any other name is.
struct Installed<'a> {
    steps: Vec<&'a str>,
    registry: &'a Registry,
}

fn collect_strings<'a>(value: &'a Value, path: &str, out: &mut dyn FnMut(String, &'a str)) {
    match value {
        Value::String(s) if template::is_template(s) => out(path.to_string(), s),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| collect_strings(v, &format!("{path}[{i}]"), out)),
        Value::Object(map) => map
            .iter()
            .for_each(|(k, v)| collect_strings(v, &format!("{path}.{k}"), out)),
        _ => {}
    }
}

fn diag(workflow: &Workflow, step: &Step, message: String, hint: Option<String>) -> Diagnostic {
    Diagnostic {
        file: workflow.file.clone(),
        location: step.location,
        yaml_path: step.yaml_path.clone(),
        message,
        hint,
    }
}
