//! Reference checks a workflow must pass before it runs or is published: plugins installed,
//! targets and actions defined, templates well-formed, `steps.<id>` pointing at real steps.

use crate::diagnostics::{Diagnostic, did_you_mean};
use crate::plugins::Registry;
use crate::project::Projects;
use crate::workflow::{Step, StepKind, Workflow, template};
use serde_json::Value;
use std::collections::BTreeSet;
use wasmops_sandbox::PluginKind;
use wasmops_sandbox::capabilities::secrets::SecretsGrant;

/// How many references to missing steps get a did-you-mean hint.
const MAX_HINTED: usize = 50;

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
    // An approval binds to a step that runs before it: one with that id.
    workflow.walk(&mut |step| {
        if let StepKind::Wait {
            approves: Some(id), ..
        } = &step.kind
            && !ids.contains(id)
        {
            let hint = did_you_mean(id, ids.iter().map(String::as_str))
                .map(|s| format!("did you mean `{s}`?"))
                .or_else(|| Some("give the step it approves an `id` and name it here".into()));
            errors.push(diag(
                workflow,
                step,
                format!("`approves: {id}` names no step"),
                hint,
            ));
        }
    });
    let names = registry.names(PluginKind::Step);
    let installed = Installed {
        steps: names.iter().map(String::as_str).collect(),
        registry,
    };
    let mut checked_actions = BTreeSet::new();
    workflow.walk(&mut |step| {
        match &step.kind {
            StepKind::Plugin { uses, .. } => {
                check_plugin(workflow, step, uses, &installed, &mut errors);
            }
            StepKind::Condition { .. } => {
                check_plugin(workflow, step, "condition", &installed, &mut errors);
            }
            StepKind::Change {
                targets, action, ..
            } => {
                for target in targets.iter().filter(|t| !template::is_template(t)) {
                    match projects.resolve(target, action) {
                        Ok(resolved) => {
                            for action_step in &resolved.steps {
                                if let StepKind::Plugin { uses, .. } = &action_step.kind {
                                    check_plugin(workflow, step, uses, &installed, &mut errors);
                                }
                            }
                            // Each template action once, however many targets use it.
                            let key = (action_step_key(&resolved.steps), action.clone());
                            if checked_actions.insert(key) {
                                for action_step in &resolved.steps {
                                    walk_step(action_step, &mut |s| {
                                        for t in templates_of(s) {
                                            check_secrets(s, &t, registry, &mut errors);
                                        }
                                    });
                                }
                            }
                        }
                        Err(e) => errors.push(diag(workflow, step, e, None)),
                    }
                }
            }
            _ => {}
        }
        for t in templates_of(step) {
            let checked = if t.is_expression {
                template::check_expression(t.text)
            } else {
                template::check_template(t.text)
            };
            if let Err(e) = checked {
                errors.push(at_field(
                    step,
                    &t.field,
                    format!("invalid template in `{}`: {e}", t.field),
                    None,
                ));
                continue;
            }
            check_secrets(step, &t, registry, &mut errors);
            for var in template::variables(t.text, t.is_expression) {
                let mut parts = var.split('.');
                if parts.next() != Some("steps") {
                    continue;
                }
                let Some(id) = parts.next() else { continue };
                if !ids.contains(id) {
                    // Hints for the first few: a document naming thousands of missing ids
                    // would otherwise cost a comparison of each with every id there is.
                    let hint = (errors.len() < MAX_HINTED)
                        .then(|| did_you_mean(id, ids.iter().map(String::as_str)))
                        .flatten()
                        .map(|s| format!("did you mean `{s}`?"));
                    errors.push(at_field(
                        step,
                        &t.field,
                        format!(
                            "`{}` refers to `steps.{id}`, but no step has `id: {id}`",
                            t.field
                        ),
                        hint,
                    ));
                }
            }
        }
    });
    errors
}

/// One template string of a step: where it is below the step, and whether it is an
/// expression (`when`, `if`) or a template.
struct Template<'a> {
    field: String,
    text: &'a str,
    is_expression: bool,
    /// The plugin whose `with:` this is, the one place secrets may be read.
    with_of: Option<&'a str>,
}

/// Every template string in a step's own keys (not its children's).
fn templates_of(step: &Step) -> Vec<Template<'_>> {
    let mut out = Vec::new();
    let template = |field: String, text| Template {
        field,
        text,
        is_expression: false,
        with_of: None,
    };
    if let Some(name) = &step.name {
        out.push(template("name".into(), name));
    }
    if let Some(when) = &step.when {
        out.push(Template {
            is_expression: true,
            ..template("when".into(), when)
        });
    }
    match &step.kind {
        StepKind::Plugin { uses, with } => collect_strings(with, "with", &mut |field, text| {
            out.push(Template {
                with_of: Some(uses),
                ..template(field, text)
            });
        }),
        StepKind::Condition { condition, .. } => out.push(Template {
            is_expression: true,
            ..template("if".into(), condition)
        }),
        StepKind::Change {
            targets, fan_out, ..
        } => {
            for (i, target) in targets.iter().enumerate() {
                if template::is_template(target) {
                    let field = if *fan_out {
                        format!("targets[{i}]")
                    } else {
                        "target".into()
                    };
                    out.push(template(field, target));
                }
            }
        }
        StepKind::Workflow {
            target,
            property_overrides,
            ..
        } => {
            if template::is_template(target) {
                out.push(template("target".into(), target));
            }
            for (i, overrides) in property_overrides.iter().enumerate() {
                for (key, value) in overrides {
                    collect_strings(
                        value,
                        &format!("property_overrides[{i}].{key}"),
                        &mut |field, text| out.push(template(field, text)),
                    );
                }
            }
        }
        StepKind::Stage { .. } | StepKind::Wait { .. } => {}
    }
    out
}

/// Secrets may be read only as `secrets.NAME` in the `with:` of a plugin step whose plugin is
/// granted NAME; anywhere else (names, `when`, targets, overrides) a template would put them
/// where no grant decides who sees them.
fn check_secrets(step: &Step, t: &Template<'_>, registry: &Registry, errors: &mut Vec<Diagnostic>) {
    for read in template::secret_reads(t.text, t.is_expression) {
        let field = &t.field;
        let problem = match (read, t.with_of) {
            (None, _) => Some((
                format!("`{field}` reads `secrets` as a whole"),
                "read one secret by name, `secrets.NAME`, in the `with:` of a plugin step whose plugin is granted it".to_string(),
            )),
            (Some(name), None) => Some((
                format!(
                    "`{field}` reads `secrets.{name}`; secrets may only be read in the `with:` of a plugin step whose plugin is granted them"
                ),
                format!(
                    "pass it in the `with:` of the step that needs it (e.g. `env: {{ TOKEN: \"{{{{ secrets.{name} }}}}\" }}` of a `script` step), or have the plugin read it through the secrets capability"
                ),
            )),
            (Some(name), Some(uses)) => registry.get(uses).and_then(|plugin| {
                let granted = &plugin.grants().secrets;
                if granted.allows(&name) {
                    return None;
                }
                let requested = SecretsGrant {
                    secrets: plugin.manifest.capabilities.secrets.secrets.clone(),
                };
                let hint = if requested.allows(&name) {
                    format!(
                        "the config's `[plugins.{uses}] secrets` leaves it out; add `{name}` there to grant it"
                    )
                } else {
                    format!(
                        "plugin `{uses}` does not request it (its plugin.toml asks for {}), and the config can only narrow a request: use a plugin whose `[capabilities] secrets` covers `{name}` and grant it in `[plugins.NAME] secrets`, or have the plugin read it through the secrets capability",
                        if requested.secrets.is_empty() {
                            "no secrets".to_string()
                        } else {
                            requested.secrets.join(", ")
                        }
                    )
                };
                Some((
                    format!(
                        "`{field}` reads `secrets.{name}`, which plugin `{uses}` is not granted"
                    ),
                    hint,
                ))
            }),
        };
        if let Some((message, hint)) = problem {
            errors.push(at_field(step, field, message, Some(hint)));
        }
    }
}

/// A step and every step below it.
/// `step` and every step beneath it, parents first.
pub(crate) fn walk_step(step: &Step, visit: &mut dyn FnMut(&Step)) {
    visit(step);
    match &step.kind {
        StepKind::Stage { children, .. } => children.iter().for_each(|c| walk_step(c, visit)),
        StepKind::Condition {
            then, otherwise, ..
        } => then
            .iter()
            .chain(otherwise)
            .for_each(|c| walk_step(c, visit)),
        _ => {}
    }
}

/// Tells template actions apart: where their steps are written.
fn action_step_key(steps: &[Step]) -> String {
    steps
        .first()
        .map(|s| format!("{}:{}", s.file, s.yaml_path))
        .unwrap_or_default()
}

/// A problem in one template of a step, at its own line and column.
fn at_field(step: &Step, field: &str, message: String, hint: Option<String>) -> Diagnostic {
    Diagnostic {
        file: step.file.clone(),
        location: step.location_of(field),
        yaml_path: format!("{}.{field}", step.yaml_path),
        message,
        hint,
    }
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
