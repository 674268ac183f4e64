//! Checks of the workflows a workflow calls (`workflow` steps): the targets exist and are
//! published, and no chain of calls comes back to the caller.

use crate::records::WorkflowRecord;
use crate::workflow::{StepKind, Workflow, parse_workflow, template};
use std::collections::BTreeMap;

/// `workflow` step targets of a workflow that are written out (not templates), with the
/// version each pins and where the step is.
pub fn called_workflows(
    workflow: &Workflow,
) -> Vec<(String, Option<u32>, crate::diagnostics::Location)> {
    let mut calls = Vec::new();
    workflow.walk(&mut |step| {
        if let StepKind::Workflow {
            target, version, ..
        } = &step.kind
            && !template::is_template(target)
        {
            calls.push((target.clone(), *version, step.location));
        }
    });
    calls
}

/// Problems with the workflows `workflow` (about to be published as `path`) calls: unknown or
/// unpublished targets, and call cycles, spelled out (`a → b → a`). `catalog` is every
/// workflow by path.
pub fn check_calls(
    catalog: &BTreeMap<String, WorkflowRecord>,
    path: &str,
    workflow: &Workflow,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (target, version, at) in called_workflows(workflow) {
        let where_ = format!("{}:{}:{}", workflow.file, at.line, at.column);
        match catalog.get(&target) {
            Some(record) => match version {
                Some(n) if record.version(n).is_none() => {
                    problems.push(format!("{where_}: {target} has no published version {n}"));
                }
                None if record.versions.is_empty() => problems.push(format!(
                    "{where_}: {target} has no published version; publish it first"
                )),
                _ => {}
            },
            None => problems.push(format!("{where_}: workflow {target} does not exist")),
        }
    }
    if let Some(cycle) = find_cycle(catalog, path, workflow) {
        problems.push(format!(
            "{}: workflow call cycle: {}",
            workflow.file,
            cycle.join(" → ")
        ));
    }
    problems
}

fn find_cycle(
    catalog: &BTreeMap<String, WorkflowRecord>,
    start: &str,
    workflow: &Workflow,
) -> Option<Vec<String>> {
    fn visit(
        catalog: &BTreeMap<String, WorkflowRecord>,
        start: &str,
        chain: &mut Vec<String>,
        calls: Vec<String>,
    ) -> bool {
        for target in calls {
            if target == start {
                chain.push(target);
                return true;
            }
            if chain.contains(&target) {
                continue;
            }
            let Some(latest) = catalog.get(&target).and_then(WorkflowRecord::latest) else {
                continue;
            };
            let Ok(parsed) = parse_workflow(&target, &latest.yaml) else {
                continue;
            };
            chain.push(target);
            let next = called_workflows(&parsed)
                .into_iter()
                .map(|(t, ..)| t)
                .collect();
            if visit(catalog, start, chain, next) {
                return true;
            }
            chain.pop();
        }
        false
    }
    let mut chain = vec![start.to_string()];
    let calls = called_workflows(workflow)
        .into_iter()
        .map(|(t, ..)| t)
        .collect();
    visit(catalog, start, &mut chain, calls).then_some(chain)
}
