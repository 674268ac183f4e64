//! Each plugin step's `with:` block checked by its own plugin's `validate`, at validate and
//! publish time: a wrong key or value is an error at the step's line, before anything runs.
//!
//! A block with a template in it (`url: "{{ properties.base }}/health"`) is left to the run:
//! what it says is known only once it is rendered, and the plugin checks it again then.

use crate::diagnostics::Diagnostic;
use crate::plugins::Registry;
use crate::workflow::{Step, StepKind, Workflow, template};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;
use wasmops_sandbox::{CallEnv, CallLog, PluginKind};

/// The most distinct blocks checked for one workflow: each check is a plugin call, and a
/// workflow of thousands of steps repeats a few blocks.
const MAX_CHECKED: usize = 2_000;
/// A plugin's `validate` gets this long per block.
const VALIDATE_TIMEOUT: Duration = Duration::from_secs(5);

/// The problems the plugins find, one diagnostic per line they report.
pub async fn check_with_blocks(workflow: &Workflow, registry: &Registry) -> Vec<Diagnostic> {
    let mut blocks: Vec<(&Step, &str, &Value)> = Vec::new();
    let mut seen = BTreeSet::new();
    workflow.walk(&mut |step| {
        if let StepKind::Plugin { uses, with } = &step.kind
            && !has_template(with)
            && blocks.len() < MAX_CHECKED
            && seen.insert((uses.clone(), with.to_string()))
        {
            blocks.push((step, uses, with));
        }
    });
    let mut problems = Vec::new();
    // A plugin whose `validate` traps or times out once is not asked again: a hostile one must
    // not hold a validation for its timeout once per block.
    let mut broken = BTreeSet::new();
    for (step, uses, with) in blocks {
        if broken.contains(uses) {
            continue;
        }
        let Some(plugin) = registry.get(uses).filter(|p| p.kind() == PluginKind::Step) else {
            // Not installed, or not a step: the reference checks say so.
            continue;
        };
        let env = CallEnv {
            log: CallLog::new(registry.sandbox().secrets().redactor().clone()),
            workspace: None,
            sources: Vec::new(),
            timeout: Some(VALIDATE_TIMEOUT),
        };
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
