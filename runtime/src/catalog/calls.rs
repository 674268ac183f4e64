//! Checks of the workflows a workflow calls (`workflow` steps): the targets exist and are
//! published, and no chain of calls comes back to the caller.

use crate::records::WorkflowRecord;
use crate::workflow::{StepKind, Workflow, parse_workflow, template};
use std::collections::{BTreeMap, HashSet};

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

/// A chain of calls from `start` back to itself, if there is one: a depth-first search that
/// explores each workflow once (a workflow explored without reaching `start` cannot reach it
/// later either), so diamond-shaped call graphs cost their size, not the number of paths; with
/// its own stack, so a long chain of calls cannot overflow the thread's.
fn find_cycle(
    catalog: &BTreeMap<String, WorkflowRecord>,
    start: &str,
    workflow: &Workflow,
) -> Option<Vec<String>> {
    let calls_of = |parsed: &Workflow| -> Vec<String> {
        called_workflows(parsed)
            .into_iter()
            .map(|(t, ..)| t)
            .collect()
    };
    let mut explored: HashSet<String> = HashSet::new();
    let mut on_chain: HashSet<String> = HashSet::from([start.to_string()]);
    // The chain being followed: each workflow with the calls of it still to try.
    let mut chain: Vec<(String, std::vec::IntoIter<String>)> =
        vec![(start.to_string(), calls_of(workflow).into_iter())];
    while let Some((_, calls)) = chain.last_mut() {
        let Some(target) = calls.next() else {
            let (done, _) = chain.pop().expect("the chain is not empty");
            on_chain.remove(&done);
            explored.insert(done);
            continue;
        };
        if target == start {
            let mut cycle: Vec<String> = chain.into_iter().map(|(path, _)| path).collect();
            cycle.push(target);
            return Some(cycle);
        }
        if explored.contains(&target) || on_chain.contains(&target) {
            continue;
        }
        let parsed = catalog
            .get(&target)
            .and_then(WorkflowRecord::latest)
            .and_then(|latest| parse_workflow(&target, &latest.yaml).ok());
        match parsed {
            Some(parsed) => {
                on_chain.insert(target.clone());
                chain.push((target, calls_of(&parsed).into_iter()));
            }
            None => {
                explored.insert(target);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Version;

    fn published(path: &str, calls: &[String]) -> (String, WorkflowRecord) {
        let steps: String = calls
            .iter()
            .map(|t| format!("  - type: workflow\n    target: {t}\n"))
            .collect();
        let yaml = if steps.is_empty() {
            "steps:\n  - uses: noop\n".to_string()
        } else {
            format!("steps:\n{steps}")
        };
        let now = chrono::Utc::now();
        let record = WorkflowRecord {
            path: path.into(),
            project: "p".into(),
            code: path.rsplit('/').next().unwrap().into(),
            draft: yaml.clone(),
            versions: vec![Version {
                number: 1,
                yaml,
                published_at: now,
                published_by: "t".into(),
            }],
            paused: false,
            source_dir: None,
            created_at: now,
            updated_at: now,
        };
        (path.to_string(), record)
    }

    /// `levels` levels of two workflows, each calling both of the next level: 2^levels paths.
    fn diamonds(levels: usize, last_calls: &[String]) -> BTreeMap<String, WorkflowRecord> {
        let name = |level: usize, side: usize| format!("/projects/p/workflows/l{level}s{side}");
        (0..levels)
            .flat_map(|level| [0, 1].map(move |side| (level, side)))
            .map(|(level, side)| {
                let calls = if level + 1 == levels {
                    last_calls.to_vec()
                } else {
                    vec![name(level + 1, 0), name(level + 1, 1)]
                };
                published(&name(level, side), &calls)
            })
            .collect()
    }

    #[test]
    fn a_diamond_shaped_call_graph_is_searched_once_per_workflow() {
        let start = "/projects/p/workflows/start";
        let first = vec![
            "/projects/p/workflows/l0s0".to_string(),
            "/projects/p/workflows/l0s1".to_string(),
        ];
        let workflow = parse_workflow(start, &published(start, &first).1.draft).unwrap();
        // 2^60 paths, none back to the start.
        assert_eq!(find_cycle(&diamonds(60, &[]), start, &workflow), None);
        // The same, with the last level calling the start: found, as a chain of calls.
        let cycle = find_cycle(&diamonds(60, &[start.to_string()]), start, &workflow).unwrap();
        assert_eq!(cycle.len(), 62, "{cycle:?}");
        assert_eq!((cycle[0].as_str(), cycle[61].as_str()), (start, start));
    }
}
